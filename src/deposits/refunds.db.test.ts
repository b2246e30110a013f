// Refunds of escrowed money through seigo's own paths, with the KOMOJU simulator over loopback: a
// konbini payment over the limit refunded by a KOMOJU refund request once the user registers an
// account (and reported while none is registered), a Zengin bank transfer over the limit paid back
// as a KOMOJU disbursement, a rejected payout returning the money to escrow, a payout request whose
// answer is lost resolved by inquiry, and the account's validation.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance, setBalanceLimit, type AccountKind } from '../ledger/index.ts';
import type { KomojuSimulator } from '../providers/komoju/index.ts';
import { eventually, VIEWER_TOKEN, type TestEngine } from '../../test/helpers/engine.ts';
import { startKomojuEngine, type KomojuEngine } from '../../test/helpers/komoju.ts';
import { assignVirtualAccount, importTransfer } from './bank-transfer.ts';
import type { Deposit } from './state.ts';

/** The bank, branch and type of every virtual account these tests assign (bank-transfer.ts's defaults). */
const OUR_BANK = { bankCode: '0001', branchCode: '001', depositType: '1' } as const;

const WEBHOOK_SECRET = 'komoju_whsec_seigo_refunds';
const API_KEY = 'wallet-backend-key-0123456789abcdef';
const ACCOUNT = { bank_code: '0005', bank_name: 'ﾐﾂﾋﾞｼUFJ', branch_code: '123', account_type: 'ordinary', account_number: '1234567', holder_kana: 'ﾔﾏﾀﾞ ﾀﾛｳ' };

let k: KomojuEngine;
let t: TestEngine;
let sim: KomojuSimulator;

beforeAll(async () => {
  k = await startKomojuEngine({
    seed: 11,
    webhookSecret: WEBHOOK_SECRET,
    config: {
      apiClients: [{ name: 'wallet', key: API_KEY }],
      operations: { unknownDeadlineMs: 3_600_000, inquirySchedule: [1, 1, 1] },
    },
  });
  ({ t, sim } = k);
});
afterAll(async () => { await k?.close(); });

const pool = () => t.tdb.db.pool;

async function posted(kind: AccountKind, owner: string): Promise<bigint> {
  const a = await findAccount(pool(), kind, owner);
  return a ? (await getBalance(pool(), a.id))!.posted : 0n;
}

async function api(method: 'GET' | 'POST', path: string, body?: unknown) {
  const res = await request(`${t.url}${path}`, {
    method, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.statusCode, json: await res.body.json() as Record<string, unknown> };
}

/** A konbini deposit of `amount` for `user` paid when the wallet takes only `fits`: the rest goes to escrow. */
async function konbiniOverLimit(user: string, amount: bigint, fits: bigint): Promise<Deposit> {
  const r = await t.engine.deposits.createReservationDeposit({ userId: user, method: 'konbini', amount, email: 'taro@example.jp', store: 'lawson' });
  if (!r.ok) throw new Error(r.error.code);
  await setBalanceLimit(pool(), user, fits);
  sim.pay(r.value.providerPaymentId!);
  await sim.idle();
  await t.engine.inbox.runOnce(100);
  const d = (await t.engine.deposits.getDeposit(r.value.id))!;
  expect(d).toMatchObject({ status: 'succeeded', credited: fits, escrowed: amount - fits });
  return d;
}

async function topics(entityId: string): Promise<string[]> {
  const r = await pool().query<{ topic: string }>(
    `SELECT m.topic FROM outbox_messages m JOIN deposit_refunds r ON r.id::text = m.entity_id WHERE m.entity_type = 'deposit_refund' AND r.source_id = $1 ORDER BY m.id`, [entityId]);
  return r.rows.map((x) => x.topic);
}

async function cases(subjectId: string): Promise<{ cause: string; status: string; subject_type: string }[]> {
  const r = await pool().query<{ cause: string; status: string; subject_type: string }>(
    'SELECT cause, status, subject_type FROM cases WHERE subject_id = $1 ORDER BY opened_at, cause', [subjectId]);
  return r.rows;
}

async function ledgerSumsToZero(): Promise<void> {
  const r = await pool().query<{ s: string }>('SELECT coalesce(sum(amount), 0)::text AS s FROM ledger_entries');
  expect(r.rows[0]!.s).toBe('0');
}

describe('refunds of escrowed money', () => {
  it('no account: the escrow stays and is reported once; registering one starts the refund request, which completes', async () => {
    const d = await konbiniOverLimit('u-ref-1', 30_000n, 20_000n);
    expect(await posted('escrow', 'u-ref-1')).toBe(10_000n);

    const first = await t.engine.refunds.runOnce(100, { askAll: true });
    expect(first.reported).toBe(1);
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).reported).toBe(0); // once
    const rep = await pool().query('SELECT cause, amount::text AS amount FROM escrow_reports WHERE source_id = $1', [d.id]);
    expect(rep.rows).toEqual([{ cause: 'escrow_no_refund_account', amount: '10000' }]);
    expect(await cases(d.id)).toEqual([{ cause: 'escrow_no_refund_account', status: 'open', subject_type: 'deposit' }]);
    expect(await posted('escrow', 'u-ref-1')).toBe(10_000n);

    const reg = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-1', ...ACCOUNT });
    expect(reg.status).toBe(200);
    const started = reg.json.started_refunds as Record<string, unknown>[];
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({
      deposit_id: d.id, route: 'komoju_refund_request', status: 'sent', amount: '10000', payout_amount: '10000', fee: '300', fee_payer: 'platform',
    });
    // In flight: out of escrow, into refunds payable; the report is cleared.
    expect(await posted('escrow', 'u-ref-1')).toBe(0n);
    expect(await posted('refunds_payable', '')).toBe(10_000n);
    expect((await pool().query('SELECT 1 FROM escrow_reports WHERE source_id = $1', [d.id])).rowCount).toBe(0);
    expect(await cases(d.id)).toEqual([{ cause: 'escrow_no_refund_account', status: 'resolved', subject_type: 'deposit' }]);
    // KOMOJU holds the request on the payment, with the account in its own field names.
    const payment = sim.payment(d.providerPaymentId!) as { refund_requests: Record<string, unknown>[] };
    expect(payment.refund_requests).toHaveLength(1);
    expect(payment.refund_requests[0]).toMatchObject({
      amount: 10_000, customer_name: 'ﾔﾏﾀﾞ ﾀﾛｳ', bank_code: '0005', branch_number: '123', account_type: 'normal', account_number: '1234567',
      include_payment_method_fee: false, status: 'pending',
    });

    // Still pending at KOMOJU: nothing settles. Then KOMOJU makes the transfer.
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).settled).toBe(0);
    expect(sim.settlePayouts('completed')).toBe(1);
    // The periodic sweep asks about a sent payout only every few minutes.
    expect((await t.engine.refunds.runOnce()).settled).toBe(0);
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).settled).toBe(1);
    const done = (await api('GET', `/v1/refunds?user_id=u-ref-1`)).json.data as Record<string, unknown>[];
    expect(done[0]).toMatchObject({ status: 'succeeded', provider_refund_id: expect.stringMatching(/^refreq/) });
    expect(await posted('refunds_payable', '')).toBe(0n);
    expect(await posted('fees', 'komoju')).toBe(-300n);
    expect(await topics(d.id)).toEqual(['deposit.refund_started', 'deposit.refund_succeeded']);
    // Nothing more to refund for this deposit.
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).started).toBe(0);
    await ledgerSumsToZero();
  });

  it('a Zengin bank transfer over the limit is paid back as a KOMOJU disbursement; a rejected payout returns to escrow until the account changes', async () => {
    await assignVirtualAccount(pool(), { userId: 'u-ref-2', registeredNameKana: 'ｽｽﾞｷ ﾊﾅｺ' });
    const va = (await pool().query<{ account_number: string }>('SELECT account_number FROM virtual_accounts WHERE user_id = $1', ['u-ref-2'])).rows[0]!;
    await setBalanceLimit(pool(), 'u-ref-2', 50_000n);
    const reg = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-2', ...ACCOUNT, holder_kana: 'ｽｽﾞｷ ﾊﾅｺ' });
    expect(reg.json.started_refunds).toEqual([]);
    const imported = await importTransfer(pool(), {
      externalId: 'zengin:test:1', account: { ...OUR_BANK, accountNumber: va.account_number }, amount: 80_000n, payerName: 'ｽｽﾞｷ ﾊﾅｺ', transactionDate: '2026-11-20',
    });
    expect(imported.transfer).toMatchObject({ credited: 50_000n, escrowed: 30_000n });

    expect((await t.engine.refunds.runOnce(100, { askAll: true })).started).toBe(1);
    const [r1] = await t.engine.refunds.listRefunds('u-ref-2');
    expect(r1).toMatchObject({ route: 'komoju_disbursement', status: 'sent', sourceType: 'bank_transfer', sourceId: 'zengin:test:1', amount: 30_000n });
    expect(sim.pendingPayouts().disbursements).toEqual([expect.objectContaining({ amount: 30_000, external_id: r1!.id, account_name_kana: 'ｽｽﾞｷ ﾊﾅｺ' })]);

    // The bank refuses the account: the money goes back to escrow, reported.
    sim.settlePayouts('rejected');
    await t.engine.refunds.runOnce(100, { askAll: true });
    expect(await t.engine.refunds.getRefund(r1!.id)).toMatchObject({ status: 'failed', failureCode: 'payout_rejected' });
    expect(await posted('escrow', 'u-ref-2')).toBe(30_000n);
    expect(await posted('refunds_payable', '')).toBe(0n);
    expect((await pool().query(`SELECT 1 FROM escrow_reports WHERE source_id = 'zengin:test:1' AND cause = 'refund_failed'`)).rowCount).toBe(1);
    expect(await cases('zengin:test:1')).toEqual([{ cause: 'refund_failed', status: 'open', subject_type: 'bank_transfer' }]);
    const failed = await request(`${t.url}/admin/v1/refunds?status=failed`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    expect(((await failed.body.json()) as { data: Record<string, unknown>[] }).data)
      .toEqual([expect.objectContaining({ id: r1!.id, bank_transfer_id: 'zengin:test:1', failure_code: 'payout_rejected' })]);
    // Not tried again with the same account, registered again unchanged; a corrected account starts a new refund.
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).started).toBe(0);
    expect((await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-2', ...ACCOUNT, holder_kana: 'ｽｽﾞｷ ﾊﾅｺ' })).json.started_refunds).toEqual([]);
    const fixed = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-2', ...ACCOUNT, account_number: '7654321', holder_kana: 'ｽｽﾞｷ ﾊﾅｺ' });
    expect(fixed.json.started_refunds).toEqual([expect.objectContaining({ route: 'komoju_disbursement', status: 'sent', amount: '30000' })]);
    expect(await cases('zengin:test:1')).toEqual([{ cause: 'refund_failed', status: 'resolved', subject_type: 'bank_transfer' }]);
    sim.settlePayouts('completed');
    await t.engine.refunds.runOnce(100, { askAll: true });
    expect(await posted('escrow', 'u-ref-2')).toBe(0n);
    expect((await t.engine.refunds.listRefunds('u-ref-2')).map((r) => r.status)).toEqual(['succeeded', 'failed']);
    expect(await topics('zengin:test:1')).toEqual(['deposit.refund_started', 'deposit.refund_failed', 'deposit.refund_started', 'deposit.refund_succeeded']);
    await ledgerSumsToZero();
  });

  it('a payout request processed but never answered is unknown, and the inquiry finds it', async () => {
    const d = await konbiniOverLimit('u-ref-3', 12_000n, 10_000n);
    sim.setFaults({ timeoutAfterSuccess: 1 });
    let reg: Awaited<ReturnType<typeof api>>;
    try {
      reg = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-3', ...ACCOUNT });
    } finally {
      sim.setFaults({});
    }
    expect(reg.json.started_refunds).toEqual([expect.objectContaining({ deposit_id: d.id, status: 'pending' })]);
    const op = await t.engine.operations.get((await t.engine.refunds.listRefunds('u-ref-3'))[0]!.operationId!);
    expect(op?.status).toBe('unknown');
    // The janitor asks KOMOJU, finds the request on the payment: sent, exactly one request.
    await t.tdb.db.pool.query('UPDATE operations SET next_inquiry_at = now() WHERE id = $1', [op!.id]);
    await t.engine.operations.janitorOnce();
    expect((await t.engine.refunds.listRefunds('u-ref-3'))[0]).toMatchObject({ status: 'sent' });
    expect((sim.payment(d.providerPaymentId!) as { refund_requests: unknown[] }).refund_requests).toHaveLength(1);
    await ledgerSumsToZero();
  });

  it('a payout request KOMOJU never received fails, returns to escrow, and is tried again later with the same account', async () => {
    const d = await konbiniOverLimit('u-ref-5', 9_000n, 8_000n);
    sim.setFaults({ error500: 1 });
    let reg: Awaited<ReturnType<typeof api>>;
    try {
      reg = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-5', ...ACCOUNT });
    } finally {
      sim.setFaults({});
    }
    expect(reg.json.started_refunds).toEqual([expect.objectContaining({ deposit_id: d.id, status: 'pending' })]);
    const [first] = await t.engine.refunds.listRefunds('u-ref-5');
    await t.tdb.db.pool.query('UPDATE operations SET next_inquiry_at = now() WHERE id = $1', [first!.operationId]);
    await t.engine.operations.janitorOnce();
    expect(await t.engine.refunds.getRefund(first!.id)).toMatchObject({ status: 'failed', failureCode: 'not_found_at_provider' });
    expect(await posted('escrow', 'u-ref-5')).toBe(1_000n);
    // Not at once (no hammering), but after a while, with the same account.
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).started).toBe(0);
    await pool().query(`UPDATE deposit_refunds SET updated_at = now() - interval '11 minutes' WHERE id = $1`, [first!.id]);
    expect((await t.engine.refunds.runOnce(100, { askAll: true })).started).toBe(1);
    expect((await t.engine.refunds.listRefunds('u-ref-5'))[0]).toMatchObject({ status: 'sent', amount: 1_000n });
    await ledgerSumsToZero();
  });

  it('sweeps and a registration racing each other start one refund per escrow source', async () => {
    // Two escrow sources of one user: 2,000 of a konbini payment, then all 3,000 of a bank transfer (the wallet is full).
    const d = await konbiniOverLimit('u-ref-6', 7_000n, 5_000n);
    const va = await assignVirtualAccount(pool(), { userId: 'u-ref-6', registeredNameKana: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    const bt = await importTransfer(pool(), { externalId: 'zengin:race:1', account: { ...OUR_BANK, accountNumber: va.accountNumber }, amount: 3_000n, payerName: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    expect(bt.transfer).toMatchObject({ credited: 0n, escrowed: 3_000n });
    const ds = [d.id, 'zengin:race:1'];
    await Promise.all([
      api('POST', '/v1/refund-accounts', { user_id: 'u-ref-6', ...ACCOUNT }),
      t.engine.refunds.runOnce(), t.engine.refunds.runOnce(), t.engine.refunds.runOnce(),
    ]);
    await t.engine.refunds.runOnce();
    const live = await pool().query<{ source_id: string; n: number }>(
      `SELECT source_id, count(*)::int AS n FROM deposit_refunds WHERE user_id = 'u-ref-6' GROUP BY source_id ORDER BY source_id`);
    expect(live.rows).toEqual(ds.map((id) => ({ source_id: id, n: 1 })).sort((a, b) => a.source_id.localeCompare(b.source_id)));
    expect(await posted('escrow', 'u-ref-6')).toBe(0n);
    expect(sim.pendingPayouts().refundRequests.filter((r) => r.payment === d.providerPaymentId)).toHaveLength(1);
    expect(sim.pendingPayouts().disbursements.filter((x) => x.amount === 3_000)).toHaveLength(1);
    await ledgerSumsToZero();
  });

  it('a refund account must be a valid Zengin account with a half-width kana holder name', async () => {
    const bad = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-4', ...ACCOUNT, holder_kana: '山田太郎' });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('invalid_holder_kana');
    const small = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-4', ...ACCOUNT, holder_kana: 'ｷｯｶﾜ' });
    expect(small.json.code).toBe('invalid_holder_kana');
    expect((await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-4', ...ACCOUNT, bank_code: '12' })).status).toBe(400);
    const ok = await api('POST', '/v1/refund-accounts', { user_id: 'u-ref-4', ...ACCOUNT, account_number: '4567' });
    expect(ok.status).toBe(200);
    expect((await api('GET', '/v1/refund-accounts/u-ref-4')).json).toMatchObject({ account_number: '0004567', version: 1 });
  });
});

describe('refunds when the user bears the fee', () => {
  let k2: KomojuEngine;
  let u: TestEngine;
  let s2: KomojuSimulator;
  beforeAll(async () => {
    // No breaker settings and no webhooks: refunds settle through the simulator alone.
    k2 = await startKomojuEngine({
      seed: 12,
      webhookSecret: WEBHOOK_SECRET,
      // KOMOJU charges 550 for a disbursement; the configured fee the user bears is 600.
      simulator: { settlePayoutsAfterMs: 10, disbursementFee: 550 },
      config: { endpoints: {}, deposits: { refundFee: { amount: 600, payer: 'user' } } },
      webhooks: false,
    });
    ({ t: u, sim: s2 } = k2);
  });
  afterAll(async () => { await k2?.close(); });
  const bal = async (kind: AccountKind, owner: string) => {
    const a = await findAccount(u.tdb.db.pool, kind, owner);
    return a ? (await getBalance(u.tdb.db.pool, a.id))!.posted : 0n;
  };
  async function escrowFromTransfer(user: string, id: string, escrow: bigint): Promise<void> {
    const va = await assignVirtualAccount(u.tdb.db.pool, { userId: user, registeredNameKana: 'ｺﾊﾞﾔｼ ｹﾝ' });
    await setBalanceLimit(u.tdb.db.pool, user, 1_000n);
    const r = await importTransfer(u.tdb.db.pool, { externalId: id, account: { ...OUR_BANK, accountNumber: va.accountNumber }, amount: 1_000n + escrow, payerName: 'ｺﾊﾞﾔｼ ｹﾝ' });
    expect(r.transfer.escrowed).toBe(escrow);
  }

  it('the payout is the escrow less the fee, recovered from the user; the expense is the fee KOMOJU reports', async () => {
    await escrowFromTransfer('u-fee-1', 'zengin:fee:1', 5_000n);
    const reg = await u.engine.refunds.registerAccount({
      userId: 'u-fee-1', bankCode: '0001', branchCode: '001', accountType: 'savings', accountNumber: '1111111', holderKana: 'ｺﾊﾞﾔｼ ｹﾝ',
    });
    expect(reg.started).toEqual([expect.objectContaining({ amount: 5_000n, payoutAmount: 4_400n, fee: 600n, feePayer: 'user', status: 'sent' })]);
    // The simulator carries it out by itself a moment later.
    await eventually(async () => s2.pendingPayouts().disbursements.length === 0);
    await u.engine.refunds.runOnce(100, { askAll: true });
    expect((await u.engine.refunds.listRefunds('u-fee-1'))[0]!.status).toBe('succeeded');
    // KOMOJU took the payout and its own fee from our balance there: the clearing account follows it.
    expect([await bal('escrow', 'u-fee-1'), await bal('refunds_payable', ''), await bal('fees', 'komoju'), await bal('revenue', 'refund_fees')])
      .toEqual([0n, 0n, -550n, 600n]);
    const paid = await u.tdb.db.pool.query<{ kind: string; amount: string }>(
      `SELECT a.kind, e.amount::text FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id JOIN ledger_accounts a ON a.id = e.account_id
       WHERE t.idempotency_key = $1 ORDER BY e.id`, [`refund:${reg.started[0]!.id}:paid`]);
    expect(paid.rows).toEqual([
      { kind: 'refunds_payable', amount: '-5000' }, { kind: 'clearing', amount: '4950' }, { kind: 'fees', amount: '-550' }, { kind: 'revenue', amount: '600' },
    ]);
  });

  it('escrow that does not cover the fee is not refunded but reported once', async () => {
    await escrowFromTransfer('u-fee-2', 'zengin:fee:2', 500n);
    const reg = await u.engine.refunds.registerAccount({
      userId: 'u-fee-2', bankCode: '0001', branchCode: '001', accountType: 'ordinary', accountNumber: '2222222', holderKana: 'ｺﾊﾞﾔｼ ｹﾝ',
    });
    expect(reg.started).toEqual([]);
    expect((await u.engine.refunds.runOnce(100, { askAll: true })).reported).toBe(0);
    const rep = await u.tdb.db.pool.query(`SELECT cause FROM escrow_reports WHERE source_id = 'zengin:fee:2'`);
    expect(rep.rows).toEqual([{ cause: 'escrow_below_refund_fee' }]);
    expect(await bal('escrow', 'u-fee-2')).toBe(500n);
  });
});
