// The end-to-end verifier's checks, each shown to fire: a bad state is built in a test database
// (through seigo's own functions where they can make it, by hand where seigo never would) and the
// verifier must report it, and must not report the good state next to it.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { openCase, transitionCase } from '../cases/index.ts';
import { withTx } from '../kernel/db.ts';
import { assignVirtualAccount, importTransferNoticeFile } from '../deposits/index.ts';
import { ensureAccount, placeHold, post, reverse } from '../ledger/index.ts';
import { publish, upsertSubscription } from '../outbox/index.ts';
import { BankSimulator } from './bank.ts';
import {
  cancellationFigures, compareCredits, deliveryFigures, ledgerFigures, liveCredits, violations, workFigures, type Figures,
} from './verify.ts';

let t: TestDatabase;
const pool = () => t.db.pool;
beforeAll(async () => { t = await createTestDatabase(); });
afterAll(async () => { await t.drop(); });

/** Figures of a run that kept every promise; each test breaks one. */
function clean(): Figures {
  return {
    paid: 0, credited: 0, lost: 0, lost_notice_dropped: 0, double_credits: 0, misbooked: 0, phantom_credits: 0, double_charges: 0,
    orphan_deposits: { total: 0, charged: 0, held: 0 }, ledger_sum: '0', unbalanced_transactions: 0, balance_mismatches: 0,
    pending_out_mismatches: 0, double_reversals: 0, limit_breaches: 0, unknown_unresolved: 0, unknown_with_case: 0, escrowed: '0', suspense: '0',
    refunds_started: 0, refunds: { succeeded: 0, failed: 0, sent: 0, refunded: '0', in_flight_without_case: 0 },
    deliveries: { total: 0, acknowledged: 0, redelivered: 0, dead_with_case: 0, lost: 0 }, subscriptions: {},
    cancellations: { sent: 0, reversed_once: 0, not_reversed: 0, shortfalls: 0, shortfall_without_case: 0, shortfall_over_credit: 0, negative_wallets_unexplained: 0, unknown_sent: 0, unknown_booked: 0 },
    cases: {}, bank_transfer_deposits: {}, stuck: { operations: 0, deposits: 0, inbox: 0, inbox_failed: 0, deliveries: 0, refunds: 0 }, broken: [], unsettled: [],
  };
}

const caseAbout = (type: 'operation' | 'deposit' | 'delivery' | 'bank_transfer', id: string, cause = 'test') =>
  openCase(pool(), { kind: 'test', cause, subject: { type, id }, summary: `about ${id}`, notify: false });

describe('the verifier', () => {
  it('passes clean figures', () => {
    expect(violations(clean(), true)).toEqual([]);
  });

  it('a closed case does not excuse an unknown operation; an open one does', async () => {
    const id = randomUUID();
    await pool().query(
      `INSERT INTO operations (id, provider, kind, idempotency_key, request, status) VALUES ($1, 'stripe', 'charge', $2, '{}', 'unknown')`, [id, `k-${id}`]);
    expect((await workFigures(pool())).ops_unknown).toBe(1);
    const c = await caseAbout('operation', id);
    expect((await workFigures(pool())).ops_unknown).toBe(0);
    await transitionCase(pool(), c.id, 'resolved', { actor: 'test', note: 'closed without fixing it' });
    const after = await workFigures(pool());
    expect(after.ops_unknown).toBe(1);
    expect(violations({ ...clean(), unknown_unresolved: after.ops_unknown + after.deposits_unknown }, true).join()).toMatch(/still unknown, with no open case/);
    await pool().query(`UPDATE operations SET status = 'failed' WHERE id = $1`, [id]);
  });

  it('a refund or payout still in flight at the end fails the run unless an open case names it', async () => {
    const source = randomUUID();
    await pool().query(
      `INSERT INTO deposit_refunds (id, user_id, source_type, source_id, route, provider, amount, payout_amount, fee, fee_payer, status, account_version)
       VALUES ($1, 'u-refund', 'deposit', $2, 'komoju_disbursement', 'komoju', 1000, 1000, 0, 'platform', 'sent', 1)`, [randomUUID(), source]);
    expect((await workFigures(pool())).refunds_unexcused).toBe(1);
    const c = await caseAbout('deposit', source);
    expect((await workFigures(pool())).refunds_unexcused).toBe(0);
    await transitionCase(pool(), c.id, 'wont_fix', { actor: 'test' });
    const n = (await workFigures(pool())).refunds_unexcused;
    expect(n).toBe(1);
    const f = clean();
    expect(violations({ ...f, refunds: { ...f.refunds, in_flight_without_case: n } }, true).join()).toMatch(/refunds or payouts are still in flight/);
    await pool().query(`UPDATE deposit_refunds SET status = 'succeeded' WHERE source_id = $1`, [source]);
  });

  it("checks every subscription's deliveries, not only the wallet backend's notices", async () => {
    await upsertSubscription(pool(), { name: 'v-other', topic: 'v.other', target: { type: 'handler', handler: 'v-other' } });
    await upsertSubscription(pool(), { name: 'v-notice', topic: 'v.notice', target: { type: 'handler', handler: 'v-notice' } });
    await withTx(pool(), async (tx) => {
      await publish(tx, 'v.other', { n: 1 });
      await publish(tx, 'v.other', { n: 2 });
      await publish(tx, 'v.notice', { n: 3 });
    });
    const ids = (await pool().query<{ id: string; name: string }>(
      'SELECT d.id, s.name FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name LIKE $1 ORDER BY d.created_at, d.id', ['v-%'])).rows;
    const [deadOther, doneOther] = ids.filter((d) => d.name === 'v-other').map((d) => d.id);
    const notice = ids.find((d) => d.name === 'v-notice')!.id;
    await pool().query(`UPDATE deliveries SET status = 'dead' WHERE id = $1`, [deadOther]);
    await pool().query(`UPDATE deliveries SET status = 'delivered' WHERE id = ANY($1::uuid[])`, [[doneOther, notice]]);
    // The notice subscription's delivery is delivered but the wallet backend never acknowledged it.
    let subs = await deliveryFigures(pool(), { subscription: 'v-notice', acknowledged: new Set() });
    expect(subs['v-other']).toMatchObject({ total: 2, delivered: 1, lost: 1 });
    expect(subs['v-notice']).toMatchObject({ total: 1, delivered: 0, lost: 1 });
    expect(violations({ ...clean(), subscriptions: subs }, true).join()).toMatch(/subscription v-other: 1 deliveries neither delivered nor dead/);
    await caseAbout('delivery', deadOther!);
    subs = await deliveryFigures(pool(), { subscription: 'v-notice', acknowledged: new Set([notice]) });
    expect(subs['v-other']).toMatchObject({ total: 2, delivered: 1, dead_with_case: 1, lost: 0 });
    expect(subs['v-notice']).toMatchObject({ delivered: 1, lost: 0 });
  });

  it('pending-out must equal the active outgoing holds', async () => {
    const wallet = await ensureAccount(pool(), { kind: 'wallet', owner: 'v-hold' });
    const clearing = await ensureAccount(pool(), { kind: 'clearing', owner: 'v-bank' });
    expect((await post(pool(), { idempotencyKey: 'v-hold-fund', entries: [{ accountId: clearing.id, amount: -5_000n }, { accountId: wallet.id, amount: 5_000n }] })).ok).toBe(true);
    const h = await withTx(pool(), (tx) => placeHold(tx, {
      idempotencyKey: 'v-hold-1', accountId: wallet.id, counterAccountId: clearing.id, direction: 'out', amount: 2_000n, expiresAt: new Date('2030-01-01T00:00:00Z'),
    }));
    expect(h.ok).toBe(true);
    expect((await ledgerFigures(pool(), 1_000_000)).pending_out_mismatches).toBe(0);
    // pending_out drifts from the holds (a hold released without its balance change).
    await pool().query(`UPDATE ledger_holds SET status = 'released' WHERE idempotency_key = 'v-hold-1'`);
    const l = await ledgerFigures(pool(), 1_000_000);
    expect(l.pending_out_mismatches).toBe(1);
    expect(l.balance_mismatches).toBe(0);
    expect(violations({ ...clean(), ...l }, true).join()).toMatch(/pending-out differs from their active outgoing holds/);
    await pool().query(`UPDATE ledger_holds SET status = 'active' WHERE idempotency_key = 'v-hold-1'`);
  });

  it('each ledger transaction balances per currency, not only the whole ledger', async () => {
    const jpy = await ensureAccount(pool(), { kind: 'clearing', owner: 'v-fx', currency: 'JPY' });
    const usd = await ensureAccount(pool(), { kind: 'clearing', owner: 'v-fx', currency: 'USD' });
    expect((await ledgerFigures(pool(), 1_000_000)).unbalanced_transactions).toBe(0);
    // Two transactions each unbalanced in both currencies, which together sum to zero in each:
    // written past the ledger's own trigger, which would refuse them.
    await withTx(pool(), async (tx) => {
      await tx.query(`SET LOCAL session_replication_role = replica`);
      for (const [sign, key] of [[1, 'v-fx-1'], [-1, 'v-fx-2']] as const) {
        const id = randomUUID();
        await tx.query(`INSERT INTO ledger_transactions (id, idempotency_key) VALUES ($1, $2)`, [id, key]);
        await tx.query(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES ($1, $2, 'JPY', $3), ($1, $4, 'USD', $5)`,
          [id, jpy.id, 100 * sign, usd.id, -100 * sign]);
      }
    });
    const l = await ledgerFigures(pool(), 1_000_000);
    expect(l.ledger_sum).toBe('0');
    expect(l.unbalanced_transactions).toBe(2);
    expect(violations({ ...clean(), unbalanced_transactions: l.unbalanced_transactions }, true).join()).toMatch(/2 ledger transactions do not balance in some currency/);
  });

  it('a reversal is no phantom credit; a transaction reversed twice is reported', async () => {
    const wallet = await ensureAccount(pool(), { kind: 'wallet', owner: 'v-rev' });
    const bank = await ensureAccount(pool(), { kind: 'clearing', owner: 'v-bank' });
    const credit = await post(pool(), { idempotencyKey: 'bank_transfer:v-rev-1', entries: [{ accountId: bank.id, amount: -3_000n }, { accountId: wallet.id, amount: 3_000n }] });
    if (!credit.ok) throw new Error('credit refused');
    expect(compareCredits(new Map([['bank_transfer:v-rev-1', 3_000n]]), await liveCredits(pool()))).toMatchObject({ credited: 1, phantom: [] });
    // The bank withdraws it: the reversal (key bank_transfer:…:cancel) must count neither as a credit nor as a phantom.
    expect((await reverse(pool(), credit.value.transactionId, { idempotencyKey: 'bank_transfer:v-rev-1:cancel', enforce: false })).ok).toBe(true);
    const live = await liveCredits(pool());
    expect([...live.keys()].filter((k) => k.startsWith('bank_transfer:v-rev'))).toEqual([]);
    expect(compareCredits(new Map(), live).phantom.filter((k) => k.startsWith('bank_transfer:v-rev'))).toEqual([]);
    expect((await ledgerFigures(pool(), 1_000_000)).double_reversals).toBe(0);
    expect((await reverse(pool(), credit.value.transactionId, { idempotencyKey: 'v-rev-1:again', enforce: false })).ok).toBe(true);
    const l = await ledgerFigures(pool(), 1_000_000);
    expect(l.double_reversals).toBe(1);
    expect(violations({ ...clean(), double_reversals: l.double_reversals }, true).join()).toMatch(/reversed more than once/);
  });

  it("checks the bank's cancellations: reversed once, a shortfall only with an open case, unknown ones booked to suspense", async () => {
    // Wallets already below zero (the double reversal above): not this test's.
    const before = (await cancellationFigures(pool(), [])).negative_wallets_unexplained;
    const bank = new BankSimulator();
    const va = await assignVirtualAccount(pool(), { userId: 'v-cancel', registeredNameKana: 'ヤマダ タロウ' });
    bank.transfer({ accountNumber: va.accountNumber, amount: 5_000n, payerName: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    bank.transfer({ accountNumber: va.accountNumber, amount: 2_000n, payerName: 'ﾔﾏﾀﾞ ﾀﾛｳ' });
    expect((await importTransferNoticeFile(pool(), bank.takeFile()!)).ok).toBe(true);
    const [big, small] = bank.reported;
    // The user spends 6,000 of the 7,000; the bank withdraws the 5,000 transfer, and one it never reported.
    const wallet = await ensureAccount(pool(), { kind: 'wallet', owner: 'v-cancel' });
    const shop = await ensureAccount(pool(), { kind: 'revenue', owner: 'v-shop' });
    expect((await post(pool(), { idempotencyKey: 'v-spend', entries: [{ accountId: wallet.id, amount: -6_000n }, { accountId: shop.id, amount: 6_000n }] })).ok).toBe(true);
    expect(bank.cancel(big!.externalId)).toBe(true);
    bank.cancelUnknown({ accountNumber: va.accountNumber, amount: 1_037n, payerName: 'ﾐｽﾞﾎ ｷﾞﾝｺｳ' });
    expect((await importTransferNoticeFile(pool(), bank.takeFile()!)).ok).toBe(true);
    let f = await cancellationFigures(pool(), bank.cancellations);
    expect(f).toMatchObject({ sent: 1, reversed_once: 1, not_reversed: 0, shortfalls: 1, shortfall_without_case: 0, shortfall_over_credit: 0, unknown_sent: 1, unknown_booked: 1 });
    expect(f.negative_wallets_unexplained).toBe(before);

    // The bank says it withdrew the 2,000 transfer too, but seigo never got that record: not reversed.
    const claimed = [...bank.cancellations, { externalId: `${small!.externalId}:cancel`, cancels: small!.externalId }];
    f = await cancellationFigures(pool(), claimed);
    expect(f.not_reversed).toBe(1);
    expect(violations({ ...clean(), cancellations: f }, true).join()).toMatch(/1 of 2 transfers the bank cancelled were not reversed exactly once/);

    // The shortfall's case closed without a fix: no longer excused.
    await pool().query(`UPDATE cases SET status = 'resolved', closed_at = now() WHERE cause = 'bank_transfer_cancel_shortfall' AND subject_id = $1`, [big!.externalId]);
    f = await cancellationFigures(pool(), bank.cancellations);
    expect(f.shortfall_without_case).toBe(1);
    expect(violations({ ...clean(), cancellations: f }, true).join()).toMatch(/left a wallet short with no open case/);

    // A wallet below zero that no cancellation explains.
    const other = await ensureAccount(pool(), { kind: 'wallet', owner: 'v-negative' });
    expect((await post(pool(), { idempotencyKey: 'v-negative', entries: [{ accountId: other.id, amount: -10n }, { accountId: shop.id, amount: 10n }] }, { enforce: false })).ok).toBe(true);
    f = await cancellationFigures(pool(), bank.cancellations);
    expect(f.negative_wallets_unexplained).toBe(before + 1);
    expect(violations({ ...clean(), cancellations: f }, true).join()).toMatch(/below zero with no cancelled transfer/);
  });
});
