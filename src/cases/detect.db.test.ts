// The detectors on real PostgreSQL, each fed by the real path that produces its condition: an
// operation left unknown past its deadline (a provider that loses its answers), a delivery that
// died against a real HTTP receiver, a konbini deposit credited to a restricted user's suspense, a
// preliminary notice cancelled after the wallet spent it (KOMOJU simulator), a bank transfer to an
// unknown account, a notification whose handler failed every retry. Each sweep opens exactly one case per problem and none on the next sweep; the
// actions retry_operation, redrive_delivery and replay_inbox resolve through the admin API.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { err, ok } from '../kernel/errors.ts';
import { findAccount, post, ensureAccount, restrictOwner } from '../ledger/index.ts';
import { importTransfer } from '../deposits/index.ts';
import { publish, upsertSubscription } from '../outbox/index.ts';
import type { KomojuSimulator } from '../providers/komoju/index.ts';
import type { CallOutcome, InquiryResult, OperationRequest, ProviderAdapter } from '../providers/types.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startKomojuEngine, type KomojuEngine } from '../../test/helpers/komoju.ts';
import { startReceiver, type Receiver } from '../../test/helpers/receiver.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';
import { caseEvents, detectCases, listCases, type Case } from './index.ts';

/**
 * Plays a provider that performs every charge but, while `answering` is off, loses the answer on
 * the way back (a timeout after success) and cannot say what became of a charge when asked.
 */
class LossyProvider {
  answering = false;
  readonly charges = new Set<string>();
  adapter(): ProviderAdapter {
    return {
      name: 'lossy', kind: 'test-simulator',
      verify: () => err({ code: 'invalid_signature', message: 'this simulator sends no notifications' }),
      eventId: () => undefined,
      normalize: () => ok([]),
      client: async (op: OperationRequest): Promise<CallOutcome> => {
        this.charges.add(op.idempotencyKey);
        if (!this.answering) throw new Error('socket hang up');
        return { status: 'succeeded', response: { charged: true } };
      },
      inquire: async (op: OperationRequest): Promise<InquiryResult> => {
        if (!this.answering) return { status: 'unknown', message: 'provider status API unavailable' };
        return this.charges.has(op.idempotencyKey) ? { status: 'succeeded', response: { charged: true } } : { status: 'not_found' };
      },
    };
  }
}

async function casesFor(t: TestEngine, cause: string, subjectId?: string): Promise<Case[]> {
  return listCases(t.tdb.db.pool, { cause, ...(subjectId ? { subjectId } : {}), limit: 100 });
}

describe('operations unknown past their deadline, and dead deliveries', () => {
  const provider = new LossyProvider();
  let t: TestEngine;
  const receivers: Receiver[] = [];
  beforeAll(async () => {
    t = await startTestEngine({
      providers: [provider.adapter()],
      config: {
        // Overdue as soon as it is unknown; the janitor's own inquiries far away, so the test decides when to ask.
        operations: { unknownDeadlineMs: 1, inquirySchedule: ['1h'] },
        endpoints: { lossy: { timeoutMs: 1_000, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } } },
        // One retry, at once: a failing notification is `failed` after two attempts.
        intake: { retrySchedule: [0] },
      },
    });
  });
  afterEach(async () => { await Promise.all(receivers.splice(0).map((r) => r.close())); });
  afterAll(async () => { await t?.close(); });

  async function unknownOperation(key: string): Promise<string> {
    const { operation } = await t.engine.operations.record(t.tdb.db.pool, {
      provider: 'lossy', kind: 'charge', idempotencyKey: key, request: { amount: 1_000 }, entity: { type: 'deposit', id: `dep-${key}` },
    });
    expect((await t.engine.operations.execute(operation.id)).status).toBe('unknown');
    return operation.id;
  }

  it('opens one case per overdue unknown operation, none on the next sweep; retry_operation resolves it once the provider answers', async () => {
    provider.answering = false;
    const opId = await unknownOperation('op-retry');
    const first = await detectCases(t.tdb.db.pool);
    expect(first.opened.operation_unknown_overdue).toBe(1);
    expect((await detectCases(t.tdb.db.pool)).opened.operation_unknown_overdue).toBeUndefined();
    const [c] = await casesFor(t, 'operation_unknown_overdue', opId);
    expect(c).toMatchObject({ kind: 'operation', status: 'open', seenCount: 1, related: [{ type: 'deposit', id: 'dep-op-retry' }] });
    expect(c!.details).toMatchObject({ provider: 'lossy', operation_kind: 'charge', error_message: 'socket hang up' });
    // The deposit's integration status shows the case among its items, and as a failure needing a person.
    const status = await admin<{ state: string; items: { kind: string; id: string; state: string; detail: string }[] }>(t.url, 'GET', '/status/deposit/dep-op-retry');
    expect(status.json.state).toBe('failed');
    expect(status.json.items).toContainEqual(expect.objectContaining({ kind: 'case', id: c!.id, state: 'failed', detail: 'operation: operation_unknown_overdue' }));

    // The provider still cannot say: the action is refused, the case stays open, the attempt is in its history.
    const refused = await admin(t.url, 'POST', `/cases/${c!.id}/resolve`, { action: { type: 'retry_operation' } });
    expect(refused).toMatchObject({ status: 422, json: { code: 'operation_still_unknown' } });
    expect((await caseEvents(t.tdb.db.pool, c!.id)).at(-1)).toMatchObject({ type: 'action_failed', actor: 'op' });

    provider.answering = true;
    const done = await admin<{ status: string; resolution: Record<string, unknown>; action: Record<string, unknown> }>(
      t.url, 'POST', `/cases/${c!.id}/resolve`, { note: 'asked again', action: { type: 'retry_operation' } });
    expect(done.status).toBe(200);
    expect(done.json.status).toBe('resolved');
    expect(done.json.resolution).toEqual({ action: 'retry_operation', result: { operation_id: opId, status: 'succeeded', error_code: null } });
    expect((await t.engine.operations.get(opId))!.status).toBe('succeeded');
    // The provider was charged once: asked about, never sent again.
    expect([...provider.charges].filter((k) => k === 'op-retry')).toHaveLength(1);
    expect((await detectCases(t.tdb.db.pool)).opened.operation_unknown_overdue).toBeUndefined();
  });

  it('resolves a case by itself, as system with the reason, when the janitor learns the outcome', async () => {
    provider.answering = false;
    const opId = await unknownOperation('op-auto');
    await detectCases(t.tdb.db.pool);
    const [c] = await casesFor(t, 'operation_unknown_overdue', opId);
    expect(c!.status).toBe('open');
    provider.answering = true;
    expect((await t.engine.operations.inquireNow(opId))!.status).toBe('succeeded');
    expect((await detectCases(t.tdb.db.pool)).autoResolved).toBe(1);
    const ev = (await caseEvents(t.tdb.db.pool, c!.id)).at(-1)!;
    expect(ev).toMatchObject({ type: 'transitioned', actor: 'system', fromStatus: 'open', toStatus: 'resolved' });
    expect(ev.note).toContain('the operation is succeeded');
  });

  it('opens one case per dead delivery; redrive_delivery resolves it and the redriven delivery arrives', async () => {
    const rx = await startReceiver(() => ({ status: 503, body: 'down' }));
    receivers.push(rx);
    await upsertSubscription(t.tdb.db.pool, { name: 'ledger-sync', topic: 'x.dead', filter: {}, target: { type: 'http', url: rx.url, timeoutMs: 5_000 }, retrySchedule: [0], source: 'api' });
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'x.dead', { n: 1 }, { entity: { type: 'deposit', id: 'dep-dead' } }));
    const deliveryId = await eventually(async () => {
      await t.engine.httpDeliveries.runOnce(10);
      const r = await t.tdb.db.pool.query<{ id: string; status: string }>(
        `SELECT d.id, d.status FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = 'ledger-sync'`);
      return r.rows[0]?.status === 'dead' && r.rows[0].id;
    });

    expect((await detectCases(t.tdb.db.pool)).opened.delivery_dead).toBe(1);
    expect((await detectCases(t.tdb.db.pool)).opened.delivery_dead).toBeUndefined();
    const [c] = await casesFor(t, 'delivery_dead', deliveryId);
    expect(c).toMatchObject({ kind: 'delivery', related: [{ type: 'deposit', id: 'dep-dead' }] });
    expect(c!.details).toMatchObject({ subscription: 'ledger-sync', topic: 'x.dead', attempts: 2, last_status_code: 503 });

    rx.answer(() => ({ status: 204 }));
    const done = await admin<{ status: string; resolution: Record<string, unknown> }>(t.url, 'POST', `/cases/${c!.id}/resolve`,
      { note: 'receiver fixed', action: { type: 'redrive_delivery' } });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ status: 'resolved', resolution: { action: 'redrive_delivery', result: { delivery_id: deliveryId, redriven: 1 } } });
    await eventually(async () => {
      await t.engine.httpDeliveries.runOnce(10);
      const r = await t.tdb.db.pool.query<{ status: string }>('SELECT status FROM deliveries WHERE id = $1', [deliveryId]);
      return r.rows[0]?.status === 'delivered';
    });
    expect(rx.requests.at(-1)!.headers['webhook-id']).toBe(deliveryId);
    expect((await detectCases(t.tdb.db.pool)).opened.delivery_dead).toBeUndefined();
    expect(await casesFor(t, 'delivery_dead', deliveryId)).toHaveLength(1);
  });

  it('opens one case per notification that failed every retry; replay_inbox resolves it and the replay applies it', async () => {
    let ledgerOpen = false;
    const applied: string[] = [];
    t.engine.handlers.on('order.poison', async (_ctx, event) => {
      if (!ledgerOpen) throw new Error('ledger is closed');
      applied.push(String(event.entityId));
    });
    const sent = await sendWebhook(t.url, { id: 'msg_poison', type: 'order.poison', data: { id: 'ord_p' } });
    expect(sent.status).toBe(200);
    const inboxId = String(sent.json.id);
    await eventually(async () => {
      await t.engine.inbox.runOnce(10);
      const r = await t.tdb.db.pool.query<{ status: string }>('SELECT status FROM inbox WHERE id = $1', [inboxId]);
      return r.rows[0]?.status === 'failed';
    });
    expect((await detectCases(t.tdb.db.pool)).opened.inbox_failed).toBe(1);
    expect((await detectCases(t.tdb.db.pool)).opened.inbox_failed).toBeUndefined();
    const [c] = await casesFor(t, 'inbox_failed', inboxId);
    expect(c).toMatchObject({ kind: 'intake', details: { provider: 'acme', event_id: 'msg_poison', attempts: 2, last_error: 'ledger is closed' } });

    ledgerOpen = true;
    const done = await admin<{ status: string; resolution: Record<string, unknown> }>(t.url, 'POST', `/cases/${c!.id}/resolve`,
      { note: 'ledger reopened', action: { type: 'replay_inbox' } });
    expect(done.json).toMatchObject({ status: 'resolved', resolution: { action: 'replay_inbox', result: { inbox_id: inboxId, replayed: true } } });
    await t.engine.inbox.runOnce(10);
    expect(applied).toEqual(['ord_p']);
    expect((await t.tdb.db.pool.query('SELECT status FROM inbox WHERE id = $1', [inboxId])).rows[0]).toEqual({ status: 'processed' });
  });

  it('a worker runs the sweep as the periodic job cases.detect', async () => {
    provider.answering = false;
    const opId = await unknownOperation('op-worker');
    await t.startWorker();
    await eventually(async () => (await casesFor(t, 'operation_unknown_overdue', opId)).length === 1);
    const jobs = await t.tdb.db.pool.query<{ name: string }>(`SELECT name FROM periodic_jobs WHERE name = 'cases.detect'`);
    expect(jobs.rows).toHaveLength(1);
  });
});

describe('money in suspense and preliminary notices cancelled after spending', () => {
  const WEBHOOK_SECRET = 'komoju_whsec_seigo_cases';
  let k: KomojuEngine;
  let sim: KomojuSimulator;
  let t: TestEngine;
  beforeAll(async () => {
    k = await startKomojuEngine({
      seed: 11,
      webhookSecret: WEBHOOK_SECRET,
      config: {
        endpoints: { komoju: { timeoutMs: 2_000, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } } },
        deposits: { cardProvider: 'stripe', defaultLimit: 1_000_000, creditOn: 'preliminary', reservationProvider: 'komoju' },
      },
    });
    ({ t, sim } = k);
  });
  afterAll(async () => { await k?.close(); });

  async function reserve(userId: string, amount: bigint) {
    const r = await t.engine.deposits.createReservationDeposit({ userId, method: 'konbini', amount, email: 'taro@example.jp', store: 'lawson' });
    if (!r.ok) throw new Error(`refused: ${r.error.code}`);
    return r.value;
  }
  async function flush() {
    await sim.idle();
    await t.engine.inbox.runOnce(100);
  }

  it('a deposit credited to a restricted user\'s suspense opens one deposit_suspense case', async () => {
    const d = await reserve('u-frozen', 4_000n);
    await restrictOwner(t.tdb.db.pool, 'u-frozen', 'fraud review');
    sim.pay(d.providerPaymentId!);
    await flush();
    expect(await t.engine.deposits.getDeposit(d.id)).toMatchObject({ status: 'succeeded', suspended: 4_000n });
    expect((await detectCases(t.tdb.db.pool)).opened.deposit_suspense).toBe(1);
    expect((await detectCases(t.tdb.db.pool)).opened.deposit_suspense).toBeUndefined();
    const [c] = await casesFor(t, 'deposit_suspense', d.id);
    expect(c).toMatchObject({ kind: 'deposit', status: 'open', details: { user_id: 'u-frozen', suspended: '4000', method: 'konbini' } });
  });

  it('a cancelled preliminary notice that took the wallet below zero opens one shortfall case naming the wallet', async () => {
    const d = await reserve('u-spent', 5_000n);
    sim.pay(d.providerPaymentId!, { preliminary: true, holdFinal: true });
    await flush();
    const wallet = (await findAccount(t.tdb.db.pool, 'wallet', 'u-spent'))!;
    const shop = await ensureAccount(t.tdb.db.pool, { kind: 'clearing', owner: 'shop', currency: 'JPY' });
    expect((await post(t.tdb.db.pool, { idempotencyKey: 'spend-u-spent', entries: [{ accountId: wallet.id, amount: -3_000n }, { accountId: shop.id, amount: 3_000n }] })).ok).toBe(true);
    sim.cancelPreliminary(d.providerPaymentId!);
    await flush();
    expect(await t.engine.deposits.getDeposit(d.id)).toMatchObject({ shortfall: 3_000n });
    expect((await detectCases(t.tdb.db.pool)).opened.preliminary_cancel_shortfall).toBe(1);
    expect((await detectCases(t.tdb.db.pool)).opened.preliminary_cancel_shortfall).toBeUndefined();
    const [c] = await casesFor(t, 'preliminary_cancel_shortfall', d.id);
    expect(c).toMatchObject({ kind: 'deposit', related: [{ type: 'ledger_account', id: wallet.id }], details: { shortfall: '3000', user_id: 'u-spent' } });
  });

  it('a bank transfer to an unknown account opens one case; closed as won\'t fix, it is not reopened', async () => {
    const r = await importTransfer(t.tdb.db.pool, { externalId: 'zengin:unknown-1', account: { accountNumber: '0000000' }, amount: 7_000n, payerName: 'ﾀﾞﾚｶ' });
    expect(r.transfer.status).toBe('suspense');
    expect((await detectCases(t.tdb.db.pool)).opened.bank_transfer_suspense).toBe(1);
    const [c] = await casesFor(t, 'bank_transfer_suspense', 'zengin:unknown-1');
    expect(c).toMatchObject({ kind: 'deposit', subject: { type: 'bank_transfer', id: 'zengin:unknown-1' }, details: { reason: 'unknown_account', amount: '7000' } });
    expect((await admin(t.url, 'POST', `/cases/${c!.id}/wont-fix`, { note: 'returned to the payer by the bank' })).status).toBe(200);
    expect((await detectCases(t.tdb.db.pool)).opened.bank_transfer_suspense).toBeUndefined();
    expect(await casesFor(t, 'bank_transfer_suspense', 'zengin:unknown-1')).toHaveLength(1);
  });

  it('two sweeps at once (a worker and `seigo cases detect`) still open one case per problem', async () => {
    for (const n of [1, 2, 3]) {
      await importTransfer(t.tdb.db.pool, { externalId: `zengin:race-${n}`, account: { accountNumber: '0000002' }, amount: 1_000n, payerName: 'ﾀﾞﾚｶ' });
    }
    const [a, b] = await Promise.all([detectCases(t.tdb.db.pool), detectCases(t.tdb.db.pool)]);
    expect((a.opened.bank_transfer_suspense ?? 0) + (b.opened.bank_transfer_suspense ?? 0)).toBe(3);
    for (const n of [1, 2, 3]) expect(await casesFor(t, 'bank_transfer_suspense', `zengin:race-${n}`)).toHaveLength(1);
  });

  it('`seigo cases detect` runs the sweep once and `seigo cases list --json` shows what it opened', async () => {
    await importTransfer(t.tdb.db.pool, { externalId: 'zengin:unknown-cli', account: { accountNumber: '0000001' }, amount: 2_000n, payerName: 'ﾀﾞﾚｶ' });
    const dir = await mkdtemp(join(tmpdir(), 'seigo-cases-cli-'));
    try {
      await writeFile(join(dir, 'none.json'), '{}');
      const seigo = (...args: string[]) => promisify(execFile)(process.execPath, [join(import.meta.dirname, '../../bin/seigo.js'), ...args],
        { cwd: dir, env: { ...process.env, DATABASE_URL: t.tdb.url, SEIGO_CONFIG: join(dir, 'none.json') }, timeout: 60_000 });
      expect(JSON.parse((await seigo('cases', 'detect')).stdout)).toEqual({ opened: { bank_transfer_suspense: 1 }, auto_resolved: 0 });
      expect(JSON.parse((await seigo('cases', 'detect')).stdout)).toEqual({ opened: {}, auto_resolved: 0 });
      const listed = (await seigo('cases', 'list', '--cause', 'bank_transfer_suspense', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l) as Case);
      // Newest first: the case the CLI just opened, then the ones opened before it.
      expect(listed[0]).toMatchObject({ subject: { type: 'bank_transfer', id: 'zengin:unknown-cli' }, status: 'open' });
      expect(listed.every((c) => c.cause === 'bank_transfer_suspense' && c.status === 'open')).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
