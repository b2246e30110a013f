// Card deposits (realtime flow) through seigo's own paths, with the Stripe simulator
// playing Stripe over loopback: success, decline, timeout after success resolved by the janitor,
// by the late webhook or by both at once (one credit in every order), the limit pre-check, escrow
// when a concurrent deposit filled the wallet, and a property over concurrent deposits with faults.
import { request } from 'undici';
import fc from 'fast-check';
import { propertyParams } from '../../test/helpers/property.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { creditDeposit, ensureAccount, findAccount, getBalance, setBalanceLimit } from '../ledger/index.ts';
import { StripeSimulator, type StripeSimulatorOptions } from '../providers/stripe/simulator.ts';
import { eventually, startTestEngine, VIEWER_TOKEN, type TestEngine } from '../../test/helpers/engine.ts';
import type { Deposits } from './index.ts';
import type { Deposit } from './state.ts';

const WEBHOOK_SECRET = 'whsec_test_seigo_deposits';
let sim: StripeSimulator;
let simOpts: StripeSimulatorOptions;
let t: TestEngine;
let deposits: Deposits;

beforeAll(async () => {
  simOpts = { seed: 11, secretKey: 'sk_test_seigo', webhookSecret: WEBHOOK_SECRET };
  sim = new StripeSimulator(simOpts);
  const { url } = await sim.start();
  t = await startTestEngine({
    config: {
      providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [WEBHOOK_SECRET], apiBase: url, searchLagSeconds: 0 } },
      // The breaker stays closed: the property below injects many timeouts on purpose.
      endpoints: { stripe: { timeoutMs: 1_000, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } } },
      apiClients: [{ name: 'wallet', key: 'wallet-backend-key-0123456789abcdef' }],
    },
  });
  simOpts.webhookUrl = `${t.url}/webhooks/stripe`;
  deposits = t.engine.deposits;
});

// The wallet's backend, calling the real server over HTTP with its API key.
const API_KEY = 'wallet-backend-key-0123456789abcdef';
const api = {
  async inject(o: { method: 'GET' | 'POST'; url: string; payload?: unknown; key?: string | null }) {
    const headers: Record<string, string> = {};
    if (o.key !== null) headers.authorization = `Bearer ${o.key ?? API_KEY}`;
    if (o.payload !== undefined) headers['content-type'] = 'application/json';
    const res = await request(`${t.url}${o.url}`, { method: o.method, headers, ...(o.payload !== undefined ? { body: JSON.stringify(o.payload) } : {}) });
    const text = await res.body.text();
    return { statusCode: res.statusCode, headers: res.headers as Record<string, string>, json: () => JSON.parse(text) as Record<string, unknown> };
  },
};

afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

const pool = () => t.tdb.db.pool;

async function balanceOf(kind: 'wallet' | 'escrow', user: string): Promise<bigint> {
  const a = await findAccount(pool(), kind, user);
  return a ? (await getBalance(pool(), a.id))!.posted : 0n;
}
async function creditsOf(depositId: string): Promise<number> {
  const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM ledger_transactions WHERE metadata->>'deposit_id' = $1`, [depositId]);
  return Number(r.rows[0]!.n);
}
async function messagesOf(depositId: string, topic: string): Promise<number> {
  const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM outbox_messages WHERE entity_type = 'deposit' AND entity_id = $1 AND topic = $2`, [depositId, topic]);
  return Number(r.rows[0]!.n);
}
const intentsOf = (depositId: string) => sim.paymentIntents().filter((p) => (p.metadata as Record<string, string>).deposit_id === depositId);
const makeDue = (operationId: string) => pool().query(`UPDATE operations SET next_inquiry_at = now() WHERE id = $1`, [operationId]);

async function card(userId: string, amount: bigint, paymentMethod = 'pm_card_visa'): Promise<Deposit> {
  const r = await deposits.createCardDeposit({ userId, amount, paymentMethod });
  if (!r.ok) throw new Error(`refused: ${r.error.code}`);
  return r.value;
}

async function unknownDeposit(userId: string, amount = 5_000n): Promise<Deposit> {
  sim.setFaults({ timeoutAfterSuccess: 1 });
  try {
    const d = await card(userId, amount);
    expect(d.status).toBe('unknown');
    return d;
  } finally {
    sim.setFaults({ timeoutAfterSuccess: 0 });
  }
}

async function expectOneCredit(d: Deposit, amount: bigint): Promise<void> {
  const now = (await deposits.getDeposit(d.id))!;
  expect(now).toMatchObject({ status: 'succeeded', credited: amount, escrowed: 0n });
  expect(await balanceOf('wallet', d.userId)).toBe(amount);
  expect(await creditsOf(d.id)).toBe(1);
  expect(await messagesOf(d.id, 'deposit.succeeded')).toBe(1);
  expect(intentsOf(d.id)).toHaveLength(1);
}

describe('card deposits', () => {
  it('charges, credits the wallet once, publishes deposit.succeeded, and shows its integration status', async () => {
    const d = await card('u-ok', 5_000n);
    expect(d).toMatchObject({ status: 'succeeded', method: 'card', amount: 5_000n, credited: 5_000n, escrowed: 0n, provider: 'stripe' });
    expect(d.providerPaymentId).toMatch(/^pi_/);
    expect(d.ledgerTransactionId).not.toBeNull();
    expect((await deposits.depositEvents(d.id)).map((e) => [e.fromStatus, e.toStatus])).toEqual([[null, 'pending'], ['pending', 'processing'], ['processing', 'succeeded']]);
    // The provider's webhook for the same charge changes nothing.
    await sim.idle();
    await t.engine.inbox.runOnce(100);
    await expectOneCredit(d, 5_000n);

    const res = await fetch(`${t.url}/admin/v1/status/deposit/${d.id}`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    expect(res.status).toBe(200);
    const status = await res.json() as { items: { kind: string; id: string; status: string }[] };
    expect(status.items).toContainEqual(expect.objectContaining({ kind: 'operation', id: d.operationId, status: 'succeeded' }));
  });

  it('records a decline as failed with its code, credits nothing, publishes deposit.failed', async () => {
    const d = await card('u-declined', 5_000n, 'pm_card_chargeDeclined');
    expect(d).toMatchObject({ status: 'failed', failureCode: 'generic_decline', credited: 0n });
    expect(await balanceOf('wallet', 'u-declined')).toBe(0n);
    expect(await creditsOf(d.id)).toBe(0);
    expect(await messagesOf(d.id, 'deposit.failed')).toBe(1);
  });

  describe('timeout after success: the deposit is unknown, then resolved with exactly one credit', () => {
    it('janitor first, late webhook after', async () => {
      const d = await unknownDeposit('u-unknown-janitor');
      expect(await balanceOf('wallet', d.userId)).toBe(0n);
      await makeDue(d.operationId!);
      await t.engine.operations.janitorOnce();
      await expectOneCredit(d, 5_000n);
      await sim.idle();
      await t.engine.inbox.runOnce(100);
      await t.engine.operations.janitorOnce();
      await expectOneCredit(d, 5_000n);
      expect((await deposits.depositEvents(d.id)).map((e) => e.toStatus)).toEqual(['pending', 'processing', 'unknown', 'succeeded']);
    });

    it('late webhook first: it makes the inquiry due, and the janitor resolves it', async () => {
      const d = await unknownDeposit('u-unknown-webhook');
      // Not due yet (the first inquiry is 30 s away): the janitor alone does nothing now.
      await t.engine.operations.janitorOnce();
      expect((await deposits.getDeposit(d.id))!.status).toBe('unknown');
      await sim.idle();
      await t.engine.inbox.runOnce(100);
      const op = await t.engine.operations.get(d.operationId!);
      expect(op!.next_inquiry_at!.getTime()).toBeLessThanOrEqual(Date.now() + 1_000);
      await t.engine.operations.janitorOnce();
      await expectOneCredit(d, 5_000n);
      // The webhook again (a replay, or Stripe's retry) and another janitor round: nothing more.
      await t.engine.inbox.runOnce(100);
      await t.engine.operations.janitorOnce();
      await expectOneCredit(d, 5_000n);
    });

    it('webhook and two janitors at once', async () => {
      const d = await unknownDeposit('u-unknown-both');
      await sim.idle();
      await makeDue(d.operationId!);
      await Promise.all([t.engine.inbox.runOnce(100), t.engine.operations.janitorOnce(), t.engine.operations.janitorOnce()]);
      // A janitor skips a row the inbox transaction holds; the webhook made it due again.
      await eventually(async () => {
        await t.engine.operations.janitorOnce();
        return (await deposits.getDeposit(d.id))!.status === 'succeeded';
      }, 10_000, 100);
      await expectOneCredit(d, 5_000n);
    });

    it('syncOnce moves a processing deposit whose charge became unknown behind its back', async () => {
      const d = await unknownDeposit('u-sync', 1_000n);
      // As if the janitor had declared an abandoned call unknown: execute never saw it, the deposit is still processing.
      await pool().query(`UPDATE deposits SET status = 'processing' WHERE id = $1`, [d.id]);
      expect(await deposits.syncOnce()).toBe(1);
      expect((await deposits.getDeposit(d.id))!.status).toBe('unknown');
      expect(await deposits.syncOnce()).toBe(0);
      await makeDue(d.operationId!);
      await t.engine.operations.janitorOnce();
      await expectOneCredit(d, 1_000n);
    });
  });

  it('refuses over the limit at request time, creating nothing', async () => {
    const user = 'u-limit';
    await setBalanceLimit(pool(), user, 10_000n);
    await card(user, 6_000n);
    const before = sim.paymentIntents().length;
    const r = await deposits.createCardDeposit({ userId: user, amount: 6_000n, paymentMethod: 'pm_card_visa' });
    expect(r).toEqual({ ok: false, error: { code: 'balance_limit_exceeded', headroom: 4_000n } });
    expect(await deposits.listDeposits(user)).toHaveLength(1);
    expect(sim.paymentIntents().length).toBe(before);
    const ops = await pool().query(`SELECT count(*)::int AS n FROM operations o JOIN deposits d ON d.operation_id = o.id WHERE d.user_id = $1`, [user]);
    expect(ops.rows[0]).toEqual({ n: 1 });

    // The same through the API: 422 problem with the headroom as a string.
    const res = await api.inject({ method: 'POST', url: '/v1/deposits', payload: { method: 'card', user_id: user, amount: 6_000, payment_method: 'pm_card_visa' } });
    expect(res.statusCode).toBe(422);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({ code: 'balance_limit_exceeded', headroom: '4000', status: 422 });
    // Only API clients may call it.
    expect((await api.inject({ method: 'POST', url: '/v1/deposits', key: null, payload: { method: 'card', user_id: user, amount: 1, payment_method: 'pm_card_visa' } })).statusCode).toBe(401);
  });

  it('counts deposits still in flight (unknown) toward the limit', async () => {
    const user = 'u-inflight';
    await setBalanceLimit(pool(), user, 10_000n);
    const d = await unknownDeposit(user, 7_000n);
    const r = await deposits.createCardDeposit({ userId: user, amount: 4_000n, paymentMethod: 'pm_card_visa' });
    expect(r).toEqual({ ok: false, error: { code: 'balance_limit_exceeded', headroom: 3_000n } });
    await makeDue(d.operationId!);
    await t.engine.operations.janitorOnce();
    expect(await balanceOf('wallet', user)).toBe(7_000n);
  });

  it('credits up to the limit and escrows the rest when a concurrent deposit filled the wallet during the charge', async () => {
    const user = 'u-escrow';
    await setBalanceLimit(pool(), user, 10_000n);
    sim.setFaults({ latencyMs: 500 });
    const pending = deposits.createCardDeposit({ userId: user, amount: 6_000n, paymentMethod: 'pm_card_visa' });
    try {
      await eventually(async () => (await deposits.listDeposits(user))[0]?.status === 'processing', 5_000, 10);
      // A bank transfer (cannot be refused) lands while the card is being charged.
      const bank = await ensureAccount(pool(), { kind: 'clearing', owner: 'bank' });
      const transfer = await creditDeposit(pool(), { owner: user, amount: 8_000n, sourceAccountId: bank.id, idempotencyKey: 'bank:u-escrow:1', mode: 'unrefusable' });
      expect(transfer).toMatchObject({ ok: true, value: { credited: 8_000n, escrowed: 0n } });
    } finally {
      const r = await pending;
      sim.setFaults({ latencyMs: 0 });
      expect(r.ok).toBe(true);
    }
    const [d] = await deposits.listDeposits(user);
    expect(d).toMatchObject({ status: 'succeeded', amount: 6_000n, credited: 2_000n, escrowed: 4_000n });
    expect(await balanceOf('wallet', user)).toBe(10_000n);
    expect(await balanceOf('escrow', user)).toBe(4_000n);
    expect(await messagesOf(d!.id, 'deposit.escrowed')).toBe(1);
  });

  it('serves the API: money as strings, konbini not offered without its provider, list by user', async () => {
    const res = await api.inject({ method: 'POST', url: '/v1/deposits', payload: { method: 'card', user_id: 'u-api', amount: '1200', payment_method: 'pm_card_visa' } });
    expect(res.statusCode).toBe(201);
    const body = res.json() as Record<string, unknown>;
    expect(body).toMatchObject({ user_id: 'u-api', amount: '1200', credited: '1200', escrowed: '0', status: 'succeeded', currency: 'JPY' });
    const one = await api.inject({ method: 'GET', url: `/v1/deposits/${String(body.id)}` });
    expect(one.json()).toMatchObject({ id: body.id, amount: '1200' });
    expect((await api.inject({ method: 'GET', url: '/v1/deposits/0190a0a0-0000-7000-8000-000000000000' })).statusCode).toBe(404);
    const list = await api.inject({ method: 'GET', url: '/v1/deposits?user_id=u-api' });
    expect(list.json()).toMatchObject({ object: 'list', data: [{ id: body.id }], has_more: false, next_cursor: null });
    const konbini = await api.inject({ method: 'POST', url: '/v1/deposits', payload: { method: 'konbini', user_id: 'u-api', amount: 1000 } });
    expect(konbini.statusCode).toBe(422);
    expect(konbini.json()).toMatchObject({ code: 'method_not_available' });
    // A bank transfer needs no provider, only the user's virtual account (bank-transfer-deposit.db.test.ts).
    const bank = await api.inject({ method: 'POST', url: '/v1/deposits', payload: { method: 'bank_transfer', user_id: 'u-api', amount: 1000 } });
    expect(bank.statusCode).toBe(422);
    expect(bank.json()).toMatchObject({ code: 'virtual_account_required' });
    const tooMuch = await api.inject({ method: 'POST', url: '/v1/deposits', payload: { method: 'card', user_id: 'u-api', amount: 10_000_001, payment_method: 'pm_card_visa' } });
    expect(tooMuch.statusCode).toBe(400);
  });

  it('returns the first deposit for a repeated client key, charging once', async () => {
    const a = await deposits.createCardDeposit({ userId: 'u-key', amount: 700n, paymentMethod: 'pm_card_visa', clientKey: 'k1' });
    const b = await deposits.createCardDeposit({ userId: 'u-key', amount: 700n, paymentMethod: 'pm_card_visa', clientKey: 'k1' });
    expect(a.ok && b.ok && a.value.id === b.value.id).toBe(true);
    const c = await deposits.createCardDeposit({ userId: 'u-key', amount: 800n, paymentMethod: 'pm_card_visa', clientKey: 'k1' });
    expect(c).toMatchObject({ ok: false, error: { code: 'client_key_reused' } });
    expect(await balanceOf('wallet', 'u-key')).toBe(700n);
  });

  it('property: concurrent deposits with random faults never breach the limit; Σ credited + escrowed = Σ charged', async () => {
    const LIMIT = 10_000n;
    let run = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ amount: fc.integer({ min: 1, max: 6_000 }), pm: fc.constantFrom('pm_card_visa', 'pm_card_visa', 'pm_card_chargeDeclined') }), { minLength: 1, maxLength: 6 }),
      fc.record({
        timeoutAfterSuccess: fc.constantFrom(0, 0.5, 1), error500: fc.constantFrom(0, 0.2),
        // A bank transfer (unrefusable, unaware of card charges in flight) landing before or during the charges.
        bankTransfer: fc.integer({ min: 0, max: 8_000 }), bankDelayMs: fc.constantFrom(0, 100),
      }),
      async (reqs, faults) => {
        const user = `u-prop-${run++}`;
        await setBalanceLimit(pool(), user, LIMIT);
        const bank = await ensureAccount(pool(), { kind: 'clearing', owner: 'bank' });
        sim.setFaults({ timeoutAfterSuccess: faults.timeoutAfterSuccess, error500: faults.error500, latencyMs: 200 });
        let results;
        try {
          const transfer = faults.bankTransfer > 0
            ? new Promise((r) => setTimeout(r, faults.bankDelayMs)).then(() =>
              creditDeposit(pool(), { owner: user, amount: BigInt(faults.bankTransfer), sourceAccountId: bank.id, idempotencyKey: `bank:${user}`, mode: 'unrefusable' }))
            : Promise.resolve(null);
          [results] = await Promise.all([Promise.all(reqs.map((q) => deposits.createCardDeposit({ userId: user, amount: BigInt(q.amount), paymentMethod: q.pm }))), transfer]);
        } finally {
          sim.setFaults({ timeoutAfterSuccess: 0, error500: 0, latencyMs: 0 });
        }
        // Resolve whatever is unknown.
        await eventually(async () => {
          await deposits.syncOnce();
          await pool().query(`UPDATE operations o SET next_inquiry_at = now() FROM deposits d WHERE d.operation_id = o.id AND d.user_id = $1 AND o.status = 'unknown'`, [user]);
          await t.engine.operations.janitorOnce();
          return (await deposits.listDeposits(user, { limit: 100 })).every((d) => d.status === 'succeeded' || d.status === 'failed');
        }, 20_000, 50);

        const all = await deposits.listDeposits(user, { limit: 100 });
        expect(all.length).toBe(results.filter((r) => r.ok).length);
        const wallet = await balanceOf('wallet', user);
        const escrow = await balanceOf('escrow', user);
        expect(wallet).toBeLessThanOrEqual(LIMIT);
        const succeeded = all.filter((d) => d.status === 'succeeded');
        const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);
        const charged = sum(all.flatMap((d) => intentsOf(d.id).filter((p) => p.status === 'succeeded').map((p) => BigInt(p.amount as number))));
        expect(sum(succeeded.map((d) => d.credited + d.escrowed))).toBe(charged);
        expect(wallet).toBe(sum(succeeded.map((d) => d.credited)) + BigInt(faults.bankTransfer > 0 ? faults.bankTransfer : 0) - (await bankEscrowed(user)));
        expect(escrow).toBe(sum(succeeded.map((d) => d.escrowed)) + (await bankEscrowed(user)));
        for (const d of all) {
          expect(await creditsOf(d.id)).toBe(d.status === 'succeeded' ? 1 : 0);
          expect(intentsOf(d.id).filter((p) => p.status === 'succeeded').length).toBe(d.status === 'succeeded' ? 1 : 0);
        }
      },
    ), propertyParams('concurrent card deposits with faults'));
  }, 900_000);
});

/** What the bank transfer of the property put in escrow (it can overflow too). */
async function bankEscrowed(user: string): Promise<bigint> {
  const r = await pool().query<{ e: string | null }>(`SELECT metadata->>'escrowed' AS e FROM ledger_transactions WHERE idempotency_key = $1`, [`bank:${user}`]);
  return r.rows[0]?.e ? BigInt(r.rows[0].e) : 0n;
}
