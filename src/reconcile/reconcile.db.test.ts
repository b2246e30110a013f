// Reconciliation on real PostgreSQL, against the Stripe and KOMOJU simulators over loopback and
// real Zengin / CSV files: every break class, repair through the intake path with exactly one
// credit whichever of the synthetic and the real notification comes first, inquiries for what the
// provider does not have, re-runs that open nothing twice, malformed input that changes nothing,
// the admin API with its CSV export, and the CLI with --json.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignVirtualAccount, importTransferNoticeFile } from '../deposits/index.ts';
import type { Deposit } from '../deposits/index.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { KomojuSimulator, sign as signKomoju } from '../providers/komoju/index.ts';
import type { KomojuEvent } from '../providers/komoju/payment.ts';
import { StripeSimulator, type StripeSimulatorOptions } from '../providers/stripe/simulator.ts';
import { formatTransferNotice, type TransferNoticeInput } from '../providers/zengin/index.ts';
import { publish, upsertSubscription } from '../outbox/index.ts';
import { admin } from '../../test/helpers/admin.ts';
import { startTestEngine, VIEWER_TOKEN, type TestEngine } from '../../test/helpers/engine.ts';
import { checkCsvMapping, reconcileDepsOf, runReconcile, ReconcileInputError, type ReconcileRequest, type RunSummary } from './index.ts';

const STRIPE_SECRET = 'whsec_test_seigo_reconcile';
const KOMOJU_SECRET = 'komoju_whsec_seigo_reconcile';
let stripe: StripeSimulator;
const stripeOpts: StripeSimulatorOptions = { seed: 5, secretKey: 'sk_test_seigo', webhookSecret: STRIPE_SECRET };
let komoju: KomojuSimulator;
let t: TestEngine;
let dir: string;

beforeAll(async () => {
  stripe = new StripeSimulator(stripeOpts);
  const s = await stripe.start();
  komoju = new KomojuSimulator({ seed: 5, secretKey: 'sk_test_komoju', webhookSecret: KOMOJU_SECRET });
  const k = await komoju.start();
  t = await startTestEngine({
    config: {
      // Below the ledger's ¥1,000,000 default, so that a repair shows which limit it books with.
      deposits: { defaultLimit: 50_000 },
      providers: {
        stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [STRIPE_SECRET], apiBase: s.url, searchLagSeconds: 0 },
        komoju: { kind: 'komoju', secretKey: 'sk_test_komoju', webhookSecrets: [KOMOJU_SECRET], apiBase: k.url },
      },
      endpoints: {
        stripe: { timeoutMs: 500, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } },
        komoju: { timeoutMs: 1_000, maxAttempts: 1, breaker: { consecutiveFailures: 100_000, halfOpenAfterMs: 1_000 } },
      },
    },
  });
  stripeOpts.webhookUrl = `${t.url}/webhooks/stripe`;
  komoju.webhookUrl = `${t.url}/webhooks/komoju`;
  dir = await mkdtemp(join(tmpdir(), 'seigo-reconcile-test-'));
});

afterAll(async () => {
  await t?.close();
  await stripe?.stop();
  await komoju?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const pool = () => t.tdb.db.pool;
const deps = () => reconcileDepsOf(t.engine);
const run = (req: ReconcileRequest, o: { repair?: boolean; escalateAfterMs?: number } = {}): Promise<RunSummary> => runReconcile(deps(), req, o);
const around = () => ({ from: new Date(Date.now() - 3_600_000), to: new Date(Date.now() + 3_600_000) });

async function credits(depositId: string): Promise<number> {
  const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM ledger_transactions WHERE metadata->>'deposit_id' = $1`, [depositId]);
  return Number(r.rows[0]!.n);
}
async function deposit(id: string): Promise<Deposit> {
  return (await t.engine.deposits.getDeposit(id))!;
}
async function breaks(runId: string) {
  return (await pool().query<{ id: string; class: string; match_key: string; repair: string; repair_ref: string | null; seen_count: number; status: string; external_id: string | null; internal_id: string | null }>(
    'SELECT * FROM reconcile_breaks WHERE run_id = $1 ORDER BY class, match_key', [runId])).rows;
}
async function tableCounts() {
  const r = await pool().query<{ runs: string; breaks: string; transfers: string; inbox: string }>(
    `SELECT (SELECT count(*) FROM reconcile_runs) AS runs, (SELECT count(*) FROM reconcile_breaks) AS breaks,
       (SELECT count(*) FROM bank_transfers) AS transfers, (SELECT count(*) FROM inbox) AS inbox`);
  return r.rows[0]!;
}
/** Processes the inbox and the janitor until both are idle. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const n = await t.engine.inbox.runOnce(100) + await t.engine.operations.janitorOnce();
    if (n === 0) return;
  }
}
async function reserve(user: string, amount: bigint): Promise<Deposit> {
  const r = await t.engine.deposits.createReservationDeposit({ userId: user, method: 'konbini', amount, email: 'taro@example.jp', store: 'lawson' });
  if (!r.ok) throw new Error(r.error.code);
  await komoju.idle();
  await settle();
  return r.value;
}
/** The customer pays, and KOMOJU's paid notices are lost on the way; returns the events it sent. */
async function payWithLostNotice(d: Deposit): Promise<KomojuEvent[]> {
  const before = komoju.events.length;
  komoju.setFaults({ dropWebhook: 1 });
  try {
    komoju.pay(d.providerPaymentId!);
    await komoju.idle();
  } finally {
    komoju.setFaults({});
  }
  return komoju.events.slice(before);
}
async function deliverKomoju(events: readonly KomojuEvent[]): Promise<void> {
  for (const e of events) {
    const body = JSON.stringify(e);
    const res = await request(`${t.url}/webhooks/komoju`, {
      method: 'POST', body, headers: { 'content-type': 'application/json', 'x-komoju-signature': signKomoju(KOMOJU_SECRET, body) },
    });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
  }
}

describe('provider history: a lost KOMOJU paid notice (missing here)', () => {
  it('is found, fed through intake as a notification from reconciliation, and credited once; the real webhook arriving afterwards changes nothing', async () => {
    const d = await reserve('u-late-real', 3_000n);
    expect(d.status).toBe('awaiting_payment');
    const lost = await payWithLostNotice(await deposit(d.id));
    expect((await deposit(d.id)).status).toBe('awaiting_payment');

    const r = await run({ source: 'provider', provider: 'komoju', ...around() });
    expect(r.counts.missing_here).toBe(1);
    expect(r.repairs.notifications).toBe(1);
    const [b] = (await breaks(r.id)).filter((x) => x.internal_id === d.id);
    expect(b).toMatchObject({ class: 'missing_here', repair: 'notification' });
    const inbox = (await pool().query('SELECT source, event_id, provider FROM inbox WHERE id = $1', [b!.repair_ref])).rows[0];
    expect(inbox).toEqual({ source: 'reconciliation', event_id: `reconcile:${d.providerPaymentId}:captured`, provider: 'komoju' });

    await settle();
    expect(await deposit(d.id)).toMatchObject({ status: 'succeeded', credited: 3_000n });
    expect(await credits(d.id)).toBe(1);

    // The real notice turns up late: one effect.
    await deliverKomoju(lost);
    await settle();
    expect(await credits(d.id)).toBe(1);

    // The next run sees nothing to repair, and resolves the break.
    const again = await run({ source: 'provider', provider: 'komoju', ...around() });
    expect(again.counts.missing_here).toBe(0);
    expect((await pool().query('SELECT status FROM reconcile_breaks WHERE id = $1', [b!.id])).rows[0]).toEqual({ status: 'resolved' });
  });

  it('credits once when the real webhook is processed before the synthetic notification', async () => {
    const d = await reserve('u-early-real', 4_000n);
    const lost = await payWithLostNotice(await deposit(d.id));
    const r = await run({ source: 'provider', provider: 'komoju', ...around() });
    expect(r.repairs.notifications).toBe(1);
    // The synthetic row waits in the inbox; the real one is delivered and processed first.
    await deliverKomoju(lost);
    const real = (await pool().query<{ id: string }>(`SELECT id FROM inbox WHERE provider = 'komoju' AND source = 'webhook' AND event_id = $1`, [lost.at(-1)!.id])).rows[0]!;
    const claimed = await pool().query(`UPDATE inbox SET next_attempt_at = now() + interval '1 hour' WHERE source = 'reconciliation' AND status = 'pending'`);
    expect(claimed.rowCount).toBe(1);
    await settle();
    expect((await pool().query('SELECT status FROM inbox WHERE id = $1', [real.id])).rows[0]).toEqual({ status: 'processed' });
    expect(await credits(d.id)).toBe(1);
    await pool().query(`UPDATE inbox SET next_attempt_at = now() WHERE source = 'reconciliation' AND status = 'pending'`);
    await settle();
    expect(await deposit(d.id)).toMatchObject({ status: 'succeeded', credited: 4_000n });
    expect(await credits(d.id)).toBe(1);
  });
});

describe('provider history: Stripe', () => {
  it('a charge whose answer and webhook were both lost is settled through the synthetic notification and the janitor', async () => {
    stripe.setFaults({ timeoutAfterSuccess: 1, hangMs: 2_000, dropWebhook: 1 });
    let d: Deposit;
    try {
      const r = await t.engine.deposits.createCardDeposit({ userId: 'u-card', amount: 7_000n, paymentMethod: 'pm_card_visa' });
      if (!r.ok) throw new Error(r.error.code);
      d = r.value;
    } finally {
      stripe.setFaults({ timeoutAfterSuccess: 0, dropWebhook: 0 });
    }
    expect(d.status).toBe('unknown');
    // The janitor's next inquiry is not due yet: reconciliation finds the lost payment first.
    const r = await run({ source: 'provider', provider: 'stripe', ...around() });
    expect(r.counts.missing_here).toBe(1);
    expect(r.repairs.notifications).toBe(1);
    await settle();
    expect(await deposit(d.id)).toMatchObject({ status: 'succeeded', credited: 7_000n });
    expect(await credits(d.id)).toBe(1);
  });

  it('a deposit the provider has no record of (missing there) makes the janitor ask now', async () => {
    // A charge recorded and sent, whose outcome nobody knows, and which never reached Stripe.
    const id = uuidv7();
    await pool().query(
      `INSERT INTO deposits (id, user_id, method, amount, currency, status, provider) VALUES ($1, 'u-lost', 'card', 500, 'JPY', 'unknown', 'stripe')`, [id]);
    const { operation } = await t.engine.operations.record(pool(), {
      provider: 'stripe', kind: 'charge', idempotencyKey: `deposit:${id}`, entity: { type: 'deposit', id },
      request: { amount: '500', currency: 'jpy', payment_method: 'pm_card_visa', metadata: { deposit_id: id } },
    });
    await pool().query(`UPDATE operations SET status = 'unknown', next_inquiry_at = now() + interval '1 hour' WHERE id = $1`, [operation.id]);
    await pool().query('UPDATE deposits SET operation_id = $2 WHERE id = $1', [id, operation.id]);

    const r = await run({ source: 'provider', provider: 'stripe', ...around() });
    expect(r.counts.missing_there).toBe(1);
    expect(r.repairs.inquiries).toBe(1);
    const [b] = (await breaks(r.id)).filter((x) => x.internal_id === id);
    expect(b).toMatchObject({ class: 'missing_there', repair: 'inquiry', repair_ref: operation.id });
    const op = (await pool().query<{ due: boolean }>('SELECT next_inquiry_at <= now() AS due FROM operations WHERE id = $1', [operation.id])).rows[0];
    expect(op).toEqual({ due: true });

    // The inquiry finds nothing at Stripe: the charge never happened, the deposit fails, the break goes.
    await settle();
    expect((await deposit(id)).status).toBe('failed');
    const again = await run({ source: 'provider', provider: 'stripe', ...around() });
    expect(again.counts.missing_there).toBe(0);
    expect((await pool().query('SELECT status FROM reconcile_breaks WHERE id = $1', [b!.id])).rows[0]).toEqual({ status: 'resolved' });
  });
});

const MAPPING = {
  provider: 'stripe',
  columns: { external_id: 'id', amount: 'amount', currency: 'currency', status: 'status', date: 'created' },
  statuses: { succeeded: 'paid', failed: 'failed', processing: 'pending' },
};

describe('a CSV export with a declared mapping', () => {
  let paid: Deposit[] = [];
  let csvPath: string;
  let firstRun: RunSummary;
  beforeAll(async () => {
    paid = [];
    for (let i = 0; i < 5; i++) {
      const r = await t.engine.deposits.createCardDeposit({ userId: `u-csv-${i}`, amount: 1_000n + BigInt(i), paymentMethod: 'pm_card_visa' });
      if (!r.ok) throw new Error(r.error.code);
      paid.push(r.value);
    }
    await stripe.idle();
    await settle();
    const at = new Date().toISOString();
    const [a, b, c, d, e] = paid.map((p) => p.providerPaymentId!);
    csvPath = join(dir, 'stripe-export.csv');
    await writeFile(csvPath, [
      'id,amount,currency,status,created',
      `${a},1000,jpy,succeeded,${at}`, // matched
      `${b},1999,jpy,succeeded,${at}`, // amount mismatch (ours 1001)
      `${c},1002,jpy,failed,${at}`, // status mismatch
      `${d},1003,jpy,succeeded,${at}`, // duplicate there
      `${d},1003,jpy,succeeded,${at}`,
      `pi_unknown_to_us,2500,jpy,succeeded,${at}`, // missing here
      // e (1004) is absent: missing there
      `pi_still_processing,300,jpy,processing,${at}`, // theirs only, not paid: no break
    ].join('\n') + '\n');
    void e;
  });

  const window = () => around();

  it('finds each class once', async () => {
    firstRun = await run({ source: 'csv', file: csvPath, mapping: checkCsvMapping(MAPPING), ...window() });
    expect(firstRun.external_rows).toBe(7);
    const mine = (await breaks(firstRun.id)).filter((b) => b.external_id?.startsWith('pi_') && (paid.some((p) => p.providerPaymentId === b.external_id || p.providerPaymentId === b.match_key) || b.external_id === 'pi_unknown_to_us'));
    const byClass = Object.fromEntries(mine.map((b) => [b.class, b.match_key]));
    expect(byClass).toEqual({
      amount_mismatch: paid[1]!.providerPaymentId, status_mismatch: paid[2]!.providerPaymentId,
      duplicate_there: paid[3]!.providerPaymentId, missing_here: 'pi_unknown_to_us',
    });
    const there = (await breaks(firstRun.id)).find((b) => b.class === 'missing_there' && b.internal_id === paid[4]!.id);
    expect(there).toBeDefined();
    // Nothing the CSV says can be replayed as a notification: what is not a lost notice goes to a person.
    expect(firstRun.repairs.notifications).toBe(0);
  });

  it('a file without a window covers the whole days its rows span, no more', async () => {
    const made: Deposit[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await t.engine.deposits.createCardDeposit({ userId: `u-csv-day-${i}`, amount: 700n + BigInt(i), paymentMethod: 'pm_card_visa' });
      if (!r.ok) throw new Error(r.error.code);
      made.push(r.value);
    }
    await stripe.idle();
    await settle();
    // The file's one row is at 10:00 on 2026-11-20 (UTC, the mapping's zone). Ours: that deposit;
    // one earlier the same day that the file lacks (missing there); one the next morning (not covered).
    const [inFile, sameDay, nextDay] = made;
    const at = [['2026-11-20T09:59:00Z', inFile!], ['2026-11-20T01:00:00Z', sameDay!], ['2026-11-21T05:00:00Z', nextDay!]] as const;
    for (const [when, d] of at) await pool().query('UPDATE deposits SET created_at = $2 WHERE id = $1', [d.id, when]);
    const path = join(dir, 'one-day.csv');
    await writeFile(path, `id,amount,currency,status,created\n${inFile!.providerPaymentId},700,jpy,succeeded,2026-11-20T10:00:00Z\n`);
    const r = await run({ source: 'csv', file: path, mapping: checkCsvMapping(MAPPING) }, { repair: false });
    expect(r.window).toEqual({ from: '2026-11-20T00:00:00.000Z', to: '2026-11-21T00:00:00.000Z' });
    expect((await breaks(r.id)).map((b) => [b.class, b.internal_id])).toEqual([['missing_there', sameDay!.id]]);
  });

  it('re-running the same file opens no break twice', async () => {
    const before = await tableCounts();
    const again = await run({ source: 'csv', file: csvPath, mapping: checkCsvMapping(MAPPING), ...window() });
    expect(again.counts).toEqual(firstRun.counts);
    expect((await tableCounts()).breaks).toBe(before.breaks);
    const seen = (await breaks(again.id)).filter((b) => b.match_key === paid[1]!.providerPaymentId);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ seen_count: 2, repair: 'case' });
    // One case per break, however often it is seen.
    const cases = await pool().query<{ n: string }>(
      `SELECT count(*) AS n FROM cases WHERE subject_type = 'recon_break' AND subject_id = $1 AND cause = 'recon_amount_mismatch'`, [seen[0]!.id]);
    expect(cases.rows[0]!.n).toBe('1');
  });

  it('a malformed file or mapping is refused with the line and column, and changes nothing', async () => {
    const before = await tableCounts();
    const bad = join(dir, 'bad.csv');
    const at = new Date().toISOString();
    const cases: [string, string, RegExp][] = [
      [`id,amount,currency,status,created\npi_1,100,jpy,succeeded,${at}\npi_2,12.5,jpy,succeeded,${at}\n`, '', /line 3, column amount: cannot read "12\.5"/],
      [`id,amount,currency,status,created\npi_1,100,jpy,refunded_partially,${at}\n`, '', /line 2, column status: status "refunded_partially" is not in the mapping/],
      [`id,amount,currency,status,created\npi_1,100,jpy,succeeded,2026-13-45\n`, '', /line 2, column created: cannot read "2026-13-45" as a date/],
      [`id,amount,currency,status,created\npi_1,100,jpy,succeeded\n`, '', /missing data for column/],
      [`ident,amount,currency,status,created\npi_1,100,jpy,succeeded,${at}\n`, '', /column "id" \(external_id in the mapping\) is not in the header/],
    ];
    for (const [text, , message] of cases) {
      await writeFile(bad, text);
      const e = await run({ source: 'csv', file: bad, mapping: checkCsvMapping(MAPPING), ...window() }).catch((x: unknown) => x);
      expect(e, `${text} → ${JSON.stringify(e)}`).toBeInstanceOf(ReconcileInputError);
      expect((e as Error).message).toMatch(message);
    }
    expect(() => checkCsvMapping({ ...MAPPING, statuses: { succeeded: 'settled' } })).toThrow(/statuses\.succeeded/);
    expect(() => checkCsvMapping({ ...MAPPING, match: 'reference' })).toThrow(/columns\.reference: match "reference" needs columns.reference/);
    expect(await tableCounts()).toEqual(before);
  });

  it('the admin API lists runs and breaks by class with a cursor, exports CSV, and starts a run', async () => {
    const list = await admin<{ data: { id: string; counts: Record<string, number> }[]; next_cursor: string | null }>(t.url, 'GET', '/reconcile/runs?limit=1', undefined, VIEWER_TOKEN);
    expect(list.status).toBe(200);
    expect(list.json.data).toHaveLength(1);
    expect(list.json.next_cursor).toBe(list.json.data[0]!.id);
    const latest = list.json.data[0]!;
    const one = await admin<{ id: string; counts: Record<string, number>; status: string }>(t.url, 'GET', `/reconcile/runs/${latest.id}`, undefined, VIEWER_TOKEN);
    expect(one.json).toMatchObject({ id: latest.id, status: 'succeeded', counts: latest.counts });

    const page1 = await admin<{ data: { id: string; class: string }[]; next_cursor: string | null }>(t.url, 'GET', `/reconcile/runs/${latest.id}/breaks?limit=1`, undefined, VIEWER_TOKEN);
    expect(page1.json.data).toHaveLength(1);
    const page2 = await admin<{ data: { id: string }[] }>(t.url, 'GET', `/reconcile/runs/${latest.id}/breaks?limit=100&starting_after=${page1.json.next_cursor}`, undefined, VIEWER_TOKEN);
    const all = await admin<{ data: { id: string; class: string }[] }>(t.url, 'GET', `/reconcile/runs/${latest.id}/breaks?limit=1000`, undefined, VIEWER_TOKEN);
    expect([page1.json.data[0]!.id, ...page2.json.data.map((b) => b.id)]).toEqual(all.json.data.map((b) => b.id));
    const amount = await admin<{ data: { class: string }[] }>(t.url, 'GET', `/reconcile/runs/${latest.id}/breaks?class=amount_mismatch`, undefined, VIEWER_TOKEN);
    expect(amount.json.data.length).toBeGreaterThan(0);
    expect(amount.json.data.every((b) => b.class === 'amount_mismatch')).toBe(true);
    expect((await admin(t.url, 'GET', `/reconcile/runs/${latest.id}/breaks?class=nonsense`, undefined, VIEWER_TOKEN)).status).toBe(400);
    expect((await admin(t.url, 'GET', `/reconcile/runs/${uuidv7()}`, undefined, VIEWER_TOKEN)).status).toBe(404);

    const csv = await request(`${t.url}/admin/v1/reconcile/runs/${latest.id}/breaks.csv`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const lines = (await csv.body.text()).trim().split('\r\n');
    expect(lines[0]).toMatch(/^id,class,status,scope,external_id/);
    expect(lines).toHaveLength(all.json.data.length + 1);

    // Starting a run needs the operator role; a bad mapping is a 400 naming the field.
    const body = { source: 'csv', csv: `id,amount,currency,status,created\n${paid[0]!.providerPaymentId},1000,jpy,succeeded,${new Date().toISOString()}\n`, mapping: MAPPING };
    expect((await admin(t.url, 'POST', '/reconcile/runs', body, VIEWER_TOKEN)).status).toBe(403);
    const started = await admin<{ id: string; counts: Record<string, number> }>(t.url, 'POST', '/reconcile/runs', body);
    expect(started.status).toBe(201);
    expect(started.json.counts.matched).toBeGreaterThan(0);
    const refused = await admin<{ code: string; detail: string }>(t.url, 'POST', '/reconcile/runs', { ...body, mapping: { ...MAPPING, columns: {} } });
    expect(refused.status).toBe(400);
    expect(refused.json.code).toBe('invalid_mapping');
    const unknown = await admin<{ code: string }>(t.url, 'POST', '/reconcile/runs', { source: 'provider', provider: 'nope', ...around() });
    expect(unknown).toMatchObject({ status: 400, json: { code: 'unknown_provider' } });
  });

  it('the CLI runs a file and prints the run as JSON', async () => {
    const mappingPath = join(dir, 'mapping.json');
    await writeFile(mappingPath, JSON.stringify(MAPPING));
    await writeFile(join(dir, 'none.json'), '{}');
    const { from, to } = around();
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(import.meta.dirname, '../../bin/seigo.js'), 'reconcile', '--file', csvPath, '--format', 'csv', '--mapping', mappingPath,
      '--from', from.toISOString(), '--to', to.toISOString(), '--no-repair', '--json',
    ], { cwd: dir, env: { ...process.env, DATABASE_URL: t.tdb.url, SEIGO_CONFIG: join(dir, 'none.json') }, timeout: 60_000 });
    const out = JSON.parse(stdout) as RunSummary;
    expect(out).toMatchObject({ source: 'csv', scope: 'csv:stripe', status: 'succeeded', external_rows: 7 });
    expect(out.counts).toEqual(firstRun.counts);

    const bad = await promisify(execFile)(process.execPath, [
      join(import.meta.dirname, '../../bin/seigo.js'), 'reconcile', '--file', join(dir, 'missing.csv'), '--format', 'csv', '--mapping', mappingPath, '--json',
    ], { cwd: dir, env: { ...process.env, DATABASE_URL: t.tdb.url, SEIGO_CONFIG: join(dir, 'none.json') }, timeout: 60_000 }).catch((e: { code: number; stdout: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect(JSON.parse((bad as { stdout: string }).stdout)).toMatchObject({ status: 400, code: 'invalid_csv' });
  });
});

describe('Zengin transfer-notice files against bank transfers', () => {
  let seq = 0;
  const transfer = (amount: bigint, payerName: string): TransferNoticeInput => ({
    inquiryNumber: String(++seq).padStart(6, '0'), transactionDate: '2026-11-20', valueDate: '2026-11-20', amount, otherBankChequeAmount: 0n,
    payerCode: null, payerName, remittingBankName: 'ﾐｽﾞﾎ', remittingBranchName: 'ﾎﾝﾃﾝ', cancelled: false, ediInfo: '',
  });
  const notice = (accountNumber: string, transfers: TransferNoticeInput[]) => formatTransferNotice({
    groups: [{
      header: {
        createdOn: '2026-11-20', accountingFrom: '2026-11-20', accountingTo: '2026-11-20', bankCode: '0001', bankName: 'ｾｲｺﾞｷﾞﾝｺｳ',
        branchCode: '001', branchName: 'ﾎﾝﾃﾝ', depositType: '1', accountNumber, accountName: 'ｾｲｺﾞ',
      },
      transfers,
    }],
  });

  it('a transfer in the bank file that we never imported is imported once through the import path; a different amount is a break', async () => {
    const va = await assignVirtualAccount(pool(), { userId: 'u-zengin', registeredNameKana: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    const first = transfer(10_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ');
    const lost = transfer(20_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ');
    const changed = transfer(30_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ');
    // Our import saw the first and third transfers; the third with another amount (the bank corrected it).
    const imported = await importTransferNoticeFile(pool(), notice(va.accountNumber, [first, { ...changed, amount: 31_000n }]));
    expect(imported.ok).toBe(true);
    const path = join(dir, 'statement.txt');
    await writeFile(path, notice(va.accountNumber, [first, lost, changed]));

    const r = await run({ source: 'zengin', file: path });
    expect(r).toMatchObject({ scope: 'zengin', external_rows: 3 });
    expect(r.counts).toMatchObject({ matched: 1, missing_here: 1, amount_mismatch: 1 });
    expect(r.repairs).toMatchObject({ imports: 1, cases: 1 });
    const rows = (await pool().query<{ amount: string; status: string }>('SELECT amount::text, status FROM bank_transfers WHERE account_number = $1 ORDER BY amount', [va.accountNumber])).rows;
    expect(rows).toEqual([{ amount: '10000', status: 'credited' }, { amount: '20000', status: 'credited' }, { amount: '31000', status: 'credited' }]);
    // Imported with the configured limit (¥50,000), as the file import would have: 41,000 were
    // already in the wallet, so 9,000 of the lost transfer are credited and 11,000 escrowed.
    const repaired = (await pool().query<{ credited: string; escrowed: string }>(
      'SELECT credited::text, escrowed::text FROM bank_transfers WHERE account_number = $1 AND amount = 20000', [va.accountNumber])).rows[0];
    expect(repaired).toEqual({ credited: '9000', escrowed: '11000' });

    const again = await run({ source: 'zengin', file: path });
    expect(again.counts).toMatchObject({ matched: 2, missing_here: 0, amount_mismatch: 1 });
    expect(again.repairs).toMatchObject({ imports: 0, cases: 0 });

    // The case about the amount: an operator resolves it by re-importing the bank's row (the
    // import path keeps the first booking: the transfer is already there).
    const [mismatch] = (await breaks(again.id)).filter((b) => b.class === 'amount_mismatch');
    const c = (await pool().query<{ id: string }>(`SELECT id FROM cases WHERE subject_type = 'recon_break' AND subject_id = $1`, [mismatch!.id])).rows[0]!;
    const resolved = await admin<{ status: string; action: { result: Record<string, unknown> } }>(t.url, 'POST', `/cases/${c.id}/resolve`, { action: { type: 'reimport_row' } });
    expect(resolved.status).toBe(200);
    expect(resolved.json.status).toBe('resolved');
    expect(resolved.json.action.result).toMatchObject({ break_id: mismatch!.id, external_id: mismatch!.match_key });

    const broken = join(dir, 'broken.txt');
    await writeFile(broken, Buffer.from('1'.padEnd(200, ' ')));
    await expect(run({ source: 'zengin', file: broken })).rejects.toThrow(/line 1/);
  });

  it('a file covering one account compares only that account: no break for another account, a missing transfer in it found', async () => {
    const a = await assignVirtualAccount(pool(), { userId: 'u-zengin-cover-a', registeredNameKana: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    const b = await assignVirtualAccount(pool(), { userId: 'u-zengin-cover-b', registeredNameKana: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    const [a1, a2, b1] = [transfer(1_100n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(1_200n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(1_300n, 'ﾔﾏﾀﾞ ﾀﾛｳ')];
    expect(await importTransferNoticeFile(pool(), notice(a.accountNumber, [a1, a2]))).toMatchObject({ ok: true, value: { credited: 2 } });
    expect(await importTransferNoticeFile(pool(), notice(b.accountNumber, [b1]))).toMatchObject({ ok: true, value: { credited: 1 } });
    const a2Id = (await pool().query<{ external_id: string }>('SELECT external_id FROM bank_transfers WHERE account_number = $1 AND amount = 1200', [a.accountNumber])).rows[0]!.external_id;
    // The bank's file for account a alone, and a2 is not in it: we booked a transfer the bank does not report.
    const path = join(dir, 'one-account.txt');
    await writeFile(path, notice(a.accountNumber, [a1]));
    const casesBefore = (await pool().query<{ n: string }>('SELECT count(*) AS n FROM cases')).rows[0]!.n;
    const r = await run({ source: 'zengin', file: path });
    const found = await breaks(r.id);
    expect(found.map((x) => [x.class, x.internal_id])).toEqual([['missing_there', a2Id]]);
    expect(r.counts).toMatchObject({ matched: 1, missing_there: 1, missing_here: 0 });
    // One case, about a2; none about b (or any other account the file does not cover).
    const cases = (await pool().query<{ details: { internal_id: string | null } }>('SELECT details FROM cases ORDER BY id OFFSET $1', [Number(casesBefore)])).rows;
    expect(cases.map((c) => c.details.internal_id)).toEqual([a2Id]);

    // b's own file, without b1: a break for b. The next file for a alone leaves it open (it says nothing of b).
    const bPath = join(dir, 'other-account.txt');
    await writeFile(bPath, notice(b.accountNumber, []));
    const rb = await run({ source: 'zengin', file: bPath });
    const [bBreak] = await breaks(rb.id);
    expect(bBreak).toMatchObject({ class: 'missing_there', internal_id: expect.stringContaining(b.accountNumber) });
    const again = await run({ source: 'zengin', file: path });
    expect(again.resolved).toBe(0);
    const still = await pool().query<{ status: string }>('SELECT status FROM reconcile_breaks WHERE id = $1', [bBreak!.id]);
    expect(still.rows[0]!.status).toBe('open');
  });

  it('a file with a 取消 record: the cancellation the import booked is no break, the cancelled transfer still matches', async () => {
    const va = await assignVirtualAccount(pool(), { userId: 'u-zengin-cancel', registeredNameKana: 'ﾔﾏﾀﾞ ﾊﾅｺ' });
    const tr = transfer(4_000n, 'ﾔﾏﾀﾞ ﾊﾅｺ');
    const file = notice(va.accountNumber, [tr, { ...tr, cancelled: true }]);
    expect(await importTransferNoticeFile(pool(), file)).toMatchObject({ ok: true, value: { credited: 1, cancellations: 1 } });
    const path = join(dir, 'with-cancel.txt');
    await writeFile(path, file);
    const r = await run({ source: 'zengin', file: path });
    expect(r.counts).toMatchObject({ matched: 1, missing_here: 0 });
    // The file covers this account only: other tests' transfers of the same day are no break here.
    expect(await breaks(r.id)).toEqual([]);
  });
});

describe('HTTP deliveries to internal services', () => {
  it('a dead delivery and one unacknowledged past the deadline are missing there; delivered ones match', async () => {
    const sub = await upsertSubscription(pool(), { name: 'ledger-service', topic: 'recon.test', target: { type: 'http', url: 'http://127.0.0.1:9/hook', timeoutMs: 1_000 } });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await publish(pool(), 'recon.test', { i }));
    const d = (await pool().query<{ id: string; message_id: string }>('SELECT id, message_id FROM deliveries WHERE subscription_id = $1 ORDER BY created_at, id', [sub.id])).rows;
    const byMessage = (m: string) => d.find((x) => x.message_id === m)!.id;
    await pool().query(`UPDATE deliveries SET status = 'dead', attempts = 8 WHERE id = $1`, [byMessage(ids[0]!)]);
    await pool().query(`UPDATE deliveries SET status = 'delivered', delivered_at = now() WHERE id = $1`, [byMessage(ids[1]!)]);
    await pool().query(`UPDATE deliveries SET created_at = now() - interval '2 days', next_attempt_at = now() + interval '1 hour' WHERE id = $1`, [byMessage(ids[2]!)]);

    const r = await run({ source: 'deliveries', from: new Date(Date.now() - 3 * 86_400_000), to: new Date(Date.now() + 60_000), deadlineMs: 86_400_000 });
    expect(r.counts).toMatchObject({ matched: 1, missing_there: 2 });
    const b = await breaks(r.id);
    expect(b.map((x) => x.internal_id).sort()).toEqual([byMessage(ids[0]!), byMessage(ids[2]!)].sort());
    expect(b.every((x) => x.repair === 'case')).toBe(true);
    // Cases about the deliveries themselves: the dead one is the case the cases sweep would open.
    const cases = (await pool().query<{ subject_id: string; cause: string }>(`SELECT subject_id, cause FROM cases WHERE subject_type = 'delivery' ORDER BY cause`)).rows;
    expect(cases).toEqual([{ subject_id: byMessage(ids[0]!), cause: 'delivery_dead' }, { subject_id: byMessage(ids[2]!), cause: 'delivery_unacknowledged' }]);
  });
});
