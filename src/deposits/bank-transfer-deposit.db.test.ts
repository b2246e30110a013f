// Bank-transfer deposits asked for in advance (POST /v1/deposits, method bank_transfer) on real
// PostgreSQL over real HTTP: the instructions and the hold counting toward the limit, the transfer
// that pays one (Zengin file through the admin API, or importTransfer as reconciliation calls it),
// exactly once whatever is imported twice or at once, transfers that pay none, expiry, and the
// bank's cancellation of a transfer that paid one.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance, setBalanceLimit } from '../ledger/index.ts';
import type { TransferNoticeInput } from '../providers/zengin/index.ts';
import { OPERATOR_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { file, transfer } from '../../test/helpers/zengin.ts';
import { assignVirtualAccount, importTransfer, importTransferNoticeFile, type VirtualAccount } from './bank-transfer.ts';

/** The bank, branch and type of every virtual account these tests assign (bank-transfer.ts's defaults). */
const OUR_BANK = { bankCode: '0001', branchCode: '001', depositType: '1' } as const;

const API_KEY = 'wallet-backend-key-0123456789abcdef';
let t: TestEngine;
beforeAll(async () => {
  t = await startTestEngine({ config: { apiClients: [{ name: 'wallet', key: API_KEY }] } });
});
afterAll(async () => {
  await t?.close();
});
const pool = () => t.tdb.db.pool;

let seq = 0;
const uid = (p: string) => `${p}-${Date.now().toString(36)}-${++seq}`;
const NAME = ['ヤマダ タロウ', 'ﾔﾏﾀﾞ ﾀﾛｳ'] as const;

interface Answer { status: number; headers: Record<string, unknown>; body: Record<string, unknown> }

async function call(method: 'GET' | 'POST', path: string, o: { body?: unknown; key?: string; token?: string; raw?: Buffer } = {}): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? API_KEY}` };
  if (o.body !== undefined) headers['content-type'] = 'application/json';
  if (o.raw !== undefined) headers['content-type'] = 'application/octet-stream';
  if (o.key) headers['idempotency-key'] = o.key;
  const res = await request(`${t.url}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : o.raw ? { body: o.raw } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

const ask = (userId: string, amount: number, key?: string) =>
  call('POST', '/v1/deposits', { body: { method: 'bank_transfer', user_id: userId, amount }, ...(key ? { key } : {}) });

async function user(): Promise<VirtualAccount> {
  return assignVirtualAccount(pool(), { userId: uid('bt'), registeredNameKana: NAME[0] });
}
async function intent(va: VirtualAccount, amount: number): Promise<Record<string, unknown>> {
  const a = await ask(va.userId, amount);
  expect(a.status).toBe(201);
  return a.body;
}
const deposit = async (id: string) => (await call('GET', `/v1/deposits/${id}`)).body;
async function wallet(owner: string, kind: 'wallet' | 'escrow' = 'wallet') {
  const a = await findAccount(pool(), kind, owner);
  const b = a ? await getBalance(pool(), a.id) : null;
  return { posted: b?.posted ?? 0n, pendingIn: b?.pendingIn ?? 0n };
}
async function messages(entityType: 'deposit' | 'bank_transfer', id: string, topic: string): Promise<number> {
  const r = await pool().query<{ n: number }>('SELECT count(*)::int AS n FROM outbox_messages WHERE entity_type = $1 AND entity_id = $2 AND topic = $3', [entityType, id, topic]);
  return r.rows[0]!.n;
}
async function transfersTo(accountNumber: string) {
  return (await pool().query<{ external_id: string; status: string; deposit_id: string | null; credited: string; escrowed: string; ledger_transaction_id: string }>(
    'SELECT * FROM bank_transfers WHERE account_number = $1 AND cancels IS NULL ORDER BY received_at, external_id', [accountNumber])).rows;
}
/** The bank's file, through the admin API as an operator sends it. */
async function importFile(accountNumber: string, transfers: TransferNoticeInput[]): Promise<Record<string, unknown>> {
  const a = await call('POST', '/admin/v1/bank-transfers/import', { token: OPERATOR_TOKEN, raw: file([{ accountNumber, transfers }]) });
  expect(a.status).toBe(200);
  return a.body;
}

describe('asking for a bank-transfer deposit', () => {
  it('answers awaiting_payment with where to transfer and until when; the amount counts toward the limit', async () => {
    const va = await user();
    const before = Date.now();
    const d = await intent(va, 30_000);
    expect(d).toMatchObject({
      method: 'bank_transfer', status: 'awaiting_payment', amount: '30000', currency: 'JPY', credited: '0',
      payment_instructions: { bank_code: va.bankCode, branch_code: va.branchCode, account_type: 'ordinary', account_number: va.accountNumber, payer_name_kana: NAME[0] },
    });
    // deposits.bankTransferExpiryMs: 7 days by default.
    const deadline = Date.parse(String(d.payment_deadline));
    expect(deadline - before).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(deadline - before).toBeLessThan(7 * 86_400_000 + 60_000);
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 30_000n });
    expect(await messages('deposit', String(d.id), 'deposit.awaiting_payment')).toBe(1);
  });

  it('over the limit (holds included): 422 balance_limit_exceeded with the headroom', async () => {
    const va = await user();
    await setBalanceLimit(pool(), va.userId, 10_000n);
    await intent(va, 7_000);
    const a = await ask(va.userId, 5_000);
    expect(a.status).toBe(422);
    expect(a.body).toMatchObject({ code: 'balance_limit_exceeded', headroom: '3000' });
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 7_000n });
  });

  it('without a virtual account: 422 virtual_account_required; the same request with the same key works once it exists', async () => {
    const userId = uid('no-va');
    const key = uid('key');
    const a = await ask(userId, 1_000, key);
    expect(a.status).toBe(422);
    expect(a.body).toMatchObject({ code: 'virtual_account_required' });
    expect(String(a.body.detail)).toContain('POST /v1/virtual-accounts');
    const r = await pool().query('SELECT 1 FROM deposits WHERE user_id = $1', [userId]);
    expect(r.rowCount).toBe(0);
    expect((await call('POST', '/v1/virtual-accounts', { body: { user_id: userId, name_kana: NAME[0] } })).status).toBe(200);
    const b = await ask(userId, 1_000, key);
    expect(b.status).toBe(201);
    expect(b.body).toMatchObject({ status: 'awaiting_payment' });
  });

  it('retried with the same Idempotency-Key: the same deposit, one hold', async () => {
    const va = await user();
    const key = uid('key');
    // Two at once (409 idempotency_conflict while the first runs: retried, as a client does), then one more.
    const answered = async (): Promise<Answer> => {
      for (;;) {
        const x = await ask(va.userId, 2_000, key);
        if (x.status !== 409) return x;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const [a, b] = await Promise.all([answered(), answered()]);
    const c = await ask(va.userId, 2_000, key);
    expect([a.status, b.status, c.status]).toEqual([201, 201, 201]);
    expect(new Set([a.body.id, b.body.id, c.body.id]).size).toBe(1);
    expect(c.headers['idempotent-replayed']).toBe('true');
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 2_000n });
    const r = await pool().query('SELECT 1 FROM deposits WHERE user_id = $1', [va.userId]);
    expect(r.rowCount).toBe(1);
  });
});

describe('the transfer that pays it', () => {
  it('a transfer of the amount pays the oldest awaiting deposit, once; the same file again changes nothing', async () => {
    const va = await user();
    const older = await intent(va, 5_000);
    const newer = await intent(va, 5_000);
    const tr = transfer(5_000n, NAME[1]);
    expect(await importFile(va.accountNumber, [tr])).toMatchObject({ credited: 1, duplicates: 0 });
    expect(await importFile(va.accountNumber, [tr])).toMatchObject({ credited: 0, duplicates: 1 });
    const [row] = await transfersTo(va.accountNumber);
    expect(row).toMatchObject({ status: 'credited', deposit_id: older.id, credited: '5000' });
    expect(await deposit(String(older.id))).toMatchObject({
      status: 'succeeded', credited: '5000', escrowed: '0', provider_payment_id: row!.external_id, ledger_transaction_id: row!.ledger_transaction_id, paid_after_deadline: false,
    });
    expect(await deposit(String(newer.id))).toMatchObject({ status: 'awaiting_payment' });
    // Credited once; the paid deposit's hold is gone, the other's still counts.
    expect(await wallet(va.userId)).toEqual({ posted: 5_000n, pendingIn: 5_000n });
    const credits = await pool().query('SELECT 1 FROM ledger_transactions WHERE idempotency_key = $1', [`bank_transfer:${row!.external_id}`]);
    expect(credits.rowCount).toBe(1);
    // One notice, about the deposit the wallet's backend knows.
    expect(await messages('deposit', String(older.id), 'deposit.succeeded')).toBe(1);
    expect(await messages('bank_transfer', row!.external_id, 'deposit.succeeded')).toBe(0);
  });

  it('the same file imported twice at once pays one deposit, once', async () => {
    const va = await user();
    const a = await intent(va, 3_000);
    const b = await intent(va, 3_000);
    const f = file([{ accountNumber: va.accountNumber, transfers: [transfer(3_000n, NAME[1])] }]);
    const rs = await Promise.all([importTransferNoticeFile(pool(), f), importTransferNoticeFile(pool(), f)]);
    expect(rs.map((r) => r.ok && r.value.credited).sort()).toEqual([0, 1]);
    expect([(await deposit(String(a.id))).status, (await deposit(String(b.id))).status]).toEqual(['succeeded', 'awaiting_payment']);
    expect(await wallet(va.userId)).toEqual({ posted: 3_000n, pendingIn: 3_000n });
  });

  it('two transfers of the amount, imported at once, pay two deposits', async () => {
    const va = await user();
    const a = await intent(va, 4_000);
    const b = await intent(va, 4_000);
    const files = [transfer(4_000n, NAME[1]), transfer(4_000n, NAME[1])].map((x) => file([{ accountNumber: va.accountNumber, transfers: [x] }]));
    await Promise.all(files.map((f) => importTransferNoticeFile(pool(), f)));
    expect([(await deposit(String(a.id))).status, (await deposit(String(b.id))).status]).toEqual(['succeeded', 'succeeded']);
    expect(new Set((await transfersTo(va.accountNumber)).map((x) => x.deposit_id))).toEqual(new Set([a.id, b.id]));
    expect(await wallet(va.userId)).toEqual({ posted: 8_000n, pendingIn: 0n });
  });

  it('importTransfer (what reconciliation repairs with) pays it too, and a repeat is a duplicate', async () => {
    const va = await user();
    const d = await intent(va, 2_500);
    const incoming = { externalId: uid('zengin:r'), account: { ...OUR_BANK, accountNumber: va.accountNumber }, amount: 2_500n, payerName: NAME[1] };
    expect((await importTransfer(pool(), incoming)).duplicate).toBe(false);
    expect((await importTransfer(pool(), incoming)).duplicate).toBe(true);
    expect(await deposit(String(d.id))).toMatchObject({ status: 'succeeded', credited: '2500', provider_payment_id: incoming.externalId });
    expect(await wallet(va.userId)).toEqual({ posted: 2_500n, pendingIn: 0n });
    expect(await messages('deposit', String(d.id), 'deposit.succeeded')).toBe(1);
  });

  it('a transfer of another amount pays nothing: booked on its own, the deposit still awaits', async () => {
    const va = await user();
    const d = await intent(va, 5_000);
    expect(await importFile(va.accountNumber, [transfer(4_000n, NAME[1])])).toMatchObject({ credited: 1 });
    const [row] = await transfersTo(va.accountNumber);
    expect(row).toMatchObject({ status: 'credited', deposit_id: null });
    expect(await deposit(String(d.id))).toMatchObject({ status: 'awaiting_payment', credited: '0' });
    expect(await wallet(va.userId)).toEqual({ posted: 4_000n, pendingIn: 5_000n });
    expect(await messages('bank_transfer', row!.external_id, 'deposit.succeeded')).toBe(1);
  });

  it('a payer name that does not match pays nothing: the transfer waits in suspense', async () => {
    const va = await user();
    const d = await intent(va, 6_000);
    expect(await importFile(va.accountNumber, [transfer(6_000n, 'ｻﾄｳ ﾊﾅｺ')])).toMatchObject({ suspense: 1 });
    expect(await deposit(String(d.id))).toMatchObject({ status: 'awaiting_payment' });
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 6_000n });
  });

  it('over a limit lowered meanwhile: up to the limit, the rest to escrow, refunded once (as the transfer)', async () => {
    const va = await user();
    const d = await intent(va, 8_000);
    await setBalanceLimit(pool(), va.userId, 5_000n);
    await importFile(va.accountNumber, [transfer(8_000n, NAME[1])]);
    expect(await deposit(String(d.id))).toMatchObject({ status: 'succeeded', credited: '5000', escrowed: '3000' });
    expect(await wallet(va.userId)).toEqual({ posted: 5_000n, pendingIn: 0n });
    expect((await wallet(va.userId, 'escrow')).posted).toBe(3_000n);
    expect(await messages('deposit', String(d.id), 'deposit.escrowed')).toBe(1);
    // The refund sweep finds the escrow once: as the transfer's (no refund account yet: reported once).
    await t.engine.refunds.runOnce();
    const reports = await pool().query<{ source_type: string }>('SELECT source_type FROM escrow_reports WHERE user_id = $1', [va.userId]);
    expect(reports.rows).toEqual([{ source_type: 'bank_transfer' }]);
  });

  it("the bank's cancellation (取消) of the transfer reverses its credit; the deposit stays succeeded, the notice names it", async () => {
    const va = await user();
    const d = await intent(va, 7_000);
    const tr = transfer(7_000n, NAME[1]);
    await importFile(va.accountNumber, [tr]);
    expect(await importFile(va.accountNumber, [{ ...tr, cancelled: true }])).toMatchObject({ cancellations: 1 });
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 0n });
    const [row] = await transfersTo(va.accountNumber);
    expect(row).toMatchObject({ status: 'cancelled', deposit_id: d.id });
    expect(await deposit(String(d.id))).toMatchObject({ status: 'succeeded' });
    const reversed = await pool().query<{ payload: { deposit_id: string } }>(
      `SELECT payload FROM outbox_messages WHERE topic = 'deposit.reversed' AND entity_type = 'bank_transfer' AND entity_id = $1`, [row!.external_id]);
    expect(reversed.rows.map((m) => m.payload.deposit_id)).toEqual([d.id]);
    const sum = await pool().query<{ s: string }>(
      `SELECT coalesce(sum(e.amount), 0)::text AS s FROM ledger_entries e JOIN ledger_transactions x ON x.id = e.transaction_id
       WHERE x.idempotency_key IN ($1, $2)`, [`bank_transfer:${row!.external_id}`, `bank_transfer:${row!.external_id}:cancel`]);
    expect(sum.rows[0]!.s).toBe('0');
  });
});

describe('expiry', () => {
  it('past its deadline the deposit expires (hold released, deposit.expired); a transfer after that is booked on its own', async () => {
    const va = await user();
    const d = await intent(va, 9_000);
    await pool().query(`UPDATE deposits SET payment_deadline = now() - interval '1 second' WHERE id = $1`, [d.id]);
    expect(await t.engine.deposits.expireBankTransferDeposits()).toBeGreaterThanOrEqual(1);
    expect(await deposit(String(d.id))).toMatchObject({ status: 'expired' });
    expect(await wallet(va.userId)).toEqual({ posted: 0n, pendingIn: 0n });
    expect(await messages('deposit', String(d.id), 'deposit.expired')).toBe(1);
    expect(await t.engine.deposits.expireBankTransferDeposits()).toBe(0);

    await importFile(va.accountNumber, [transfer(9_000n, NAME[1])]);
    expect((await transfersTo(va.accountNumber))[0]).toMatchObject({ status: 'credited', deposit_id: null });
    expect(await deposit(String(d.id))).toMatchObject({ status: 'expired' });
    expect(await wallet(va.userId)).toEqual({ posted: 9_000n, pendingIn: 0n });
  });

  it('a transfer after the deadline but before the expiry job pays it, marked paid after the deadline', async () => {
    const va = await user();
    const d = await intent(va, 1_500);
    await pool().query(`UPDATE deposits SET payment_deadline = now() - interval '1 second' WHERE id = $1`, [d.id]);
    await importFile(va.accountNumber, [transfer(1_500n, NAME[1])]);
    expect(await deposit(String(d.id))).toMatchObject({ status: 'succeeded', paid_after_deadline: true });
    expect(await wallet(va.userId)).toEqual({ posted: 1_500n, pendingIn: 0n });
  });
});
