// Bank-transfer deposits (銀行振込) on real PostgreSQL: virtual accounts, the import of
// Zengin transfer-notice files built with formatTransferNotice, and where every yen ends up.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance, restrictOwner, setBalanceLimit } from '../ledger/index.ts';
import { formatTransferNotice, type TransferNoticeInput } from '../providers/zengin/index.ts';
import { file, header as HEADER, transfer } from '../../test/helpers/zengin.ts';
import { OPERATOR_TOKEN, startTestEngine, VIEWER_TOKEN, type TestEngine } from '../../test/helpers/engine.ts';
import {
  assignVirtualAccount, importTransfer, importTransferNoticeFile, listBankTransfers, UNMATCHED_SUSPENSE_OWNER, type VirtualAccount,
} from './bank-transfer.ts';
import { createServer } from '../api/server.ts';

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

async function balanceOf(kind: 'wallet' | 'escrow' | 'suspense', owner: string): Promise<bigint> {
  const a = await findAccount(pool(), kind, owner);
  return a ? (await getBalance(pool(), a.id))!.posted : 0n;
}
async function messages(topic: string, externalId: string): Promise<number> {
  const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM outbox_messages WHERE topic = $1 AND entity_type = 'bank_transfer' AND entity_id = $2`, [topic, externalId]);
  return Number(r.rows[0]!.n);
}
async function transfersTo(accountNumber: string) {
  return (await pool().query<{ external_id: string; status: string; reason: string | null; user_id: string | null; credited: string; escrowed: string; suspended: string }>(
    'SELECT * FROM bank_transfers WHERE account_number = $1 ORDER BY external_id', [accountNumber])).rows;
}
async function user(nameKana: string): Promise<VirtualAccount> {
  return assignVirtualAccount(pool(), { userId: uid('u'), registeredNameKana: nameKana });
}

describe('virtual accounts', () => {
  it('are idempotent per user and distinct across many concurrent users', async () => {
    const users = Array.from({ length: 60 }, () => uid('va'));
    // Each user asked for three times at once.
    const got = await Promise.all(users.flatMap((u) => [0, 1, 2].map(() => assignVirtualAccount(pool(), { userId: u, registeredNameKana: 'ヤマダ タロウ' }))));
    const byUser = new Map<string, Set<string>>();
    for (const a of got) {
      expect(a.accountNumber).toMatch(/^\d{7}$/);
      (byUser.get(a.userId) ?? byUser.set(a.userId, new Set()).get(a.userId)!).add(a.accountNumber);
    }
    for (const u of users) expect(byUser.get(u)!.size).toBe(1);
    const numbers = users.map((u) => [...byUser.get(u)!][0]!);
    expect(new Set(numbers).size).toBe(users.length);
    const again = await assignVirtualAccount(pool(), { userId: users[0]!, registeredNameKana: 'ベツ ナマエ' });
    expect(again.accountNumber).toBe(numbers[0]);
    expect(again.registeredNameKana).toBe('ヤマダ タロウ');
  });
});

describe('importing transfers', () => {
  it('credits a matched transfer once; the same file again is all duplicates', async () => {
    const va = await user('ヤマダ タロウ');
    const f = file([{ accountNumber: va.accountNumber, transfers: [transfer(30_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]);
    const first = await importTransferNoticeFile(pool(), f);
    expect(first).toEqual({ ok: true, value: { credited: 1, suspense: 0, duplicates: 0, cancellations: 0, unmatchedCancellations: 0 } });
    const second = await importTransferNoticeFile(pool(), f);
    expect(second).toEqual({ ok: true, value: { credited: 0, suspense: 0, duplicates: 1, cancellations: 0, unmatchedCancellations: 0 } });
    expect(await balanceOf('wallet', va.userId)).toBe(30_000n);
    const [row] = await transfersTo(va.accountNumber);
    expect(row).toMatchObject({ status: 'credited', reason: null, user_id: va.userId, credited: '30000' });
    expect(await messages('deposit.succeeded', row!.external_id)).toBe(1);
    const r = await pool().query<{ n: string }>(`SELECT count(*) AS n FROM ledger_transactions WHERE idempotency_key = $1`, [`bank_transfer:${row!.external_id}`]);
    expect(Number(r.rows[0]!.n)).toBe(1);
  });

  it('matches half-width, full-width and legal-entity variants of the registered name', async () => {
    const cases: [registered: string, payer: string][] = [
      ['ヤマダ タロウ', 'ﾔﾏﾀﾞ ﾀﾛｳ'],
      ['やまだ　たろう', 'ﾔﾏﾀﾞﾀﾛｳ'],
      ['キッカワ　ユウジ', 'ｷﾂｶﾜ ﾕｳｼﾞ'],
      ['ヤマダショウジ株式会社', 'ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ'],
      ['ユウゲンガイシャ スズキデンキ', 'ﾕ)ｽｽﾞｷﾃﾞﾝｷ'],
    ];
    for (const [registered, payer] of cases) {
      const va = await user(registered);
      const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [transfer(1_000n, payer)] }]));
      expect(r.ok && r.value.credited).toBe(1);
      expect(await balanceOf('wallet', va.userId)).toBe(1_000n);
    }
  });

  it('a name mismatch goes to suspense with its reason (default policy), or is credited under policy credit', async () => {
    const va = await user('ヤマダ タロウ');
    const before = await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER);
    const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [transfer(5_000n, 'ｻﾄｳ ﾊﾅｺ')] }]));
    expect(r.ok && r.value).toMatchObject({ credited: 0, suspense: 1 });
    const [row] = await transfersTo(va.accountNumber);
    expect(row).toMatchObject({ status: 'suspense', reason: 'name_mismatch', user_id: va.userId, suspended: '5000', credited: '0' });
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
    expect(await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER)).toBe(before + 5_000n);
    expect(await messages('bank_transfer.unmatched', row!.external_id)).toBe(1);
    expect(await messages('deposit.succeeded', row!.external_id)).toBe(0);

    const va2 = await user('ヤマダ タロウ');
    const r2 = await importTransferNoticeFile(pool(), file([{ accountNumber: va2.accountNumber, transfers: [transfer(5_000n, 'ｻﾄｳ ﾊﾅｺ')] }]), { nameMismatch: 'credit' });
    expect(r2.ok && r2.value).toMatchObject({ credited: 1, suspense: 0 });
    expect(await balanceOf('wallet', va2.userId)).toBe(5_000n);
    expect((await transfersTo(va2.accountNumber))[0]).toMatchObject({ status: 'credited', reason: 'name_mismatch' });
  });

  it('a transfer to an unknown account goes to suspense', async () => {
    const before = await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER);
    const r = await importTransfer(pool(), { externalId: uid('zengin:x'), account: { accountNumber: '0000000' }, amount: 7_000n, payerName: 'ﾀﾞﾚｶ' });
    expect(r.duplicate).toBe(false);
    expect(r.transfer).toMatchObject({ status: 'suspense', reason: 'unknown_account', userId: null, suspended: 7_000n });
    expect(await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER)).toBe(before + 7_000n);
    expect(await messages('bank_transfer.unmatched', r.transfer.externalId)).toBe(1);
  });

  it('a record whose header names another bank, branch or account type goes to suspense as unknown_account, though the number is ours', async () => {
    const va = await user('ヤマダ タロウ');
    const before = await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER);
    // The same 7-digit number at another bank, at another branch of ours, and as a checking (当座) account.
    const elsewhere = [{ bankCode: '0009' }, { branchCode: '002' }, { depositType: '2' as const }];
    const f = formatTransferNotice({
      groups: elsewhere.map((o) => ({ header: { ...HEADER(va.accountNumber), ...o }, transfers: [transfer(8_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] })),
    });
    const r = await importTransferNoticeFile(pool(), f);
    expect(r.ok && r.value).toMatchObject({ credited: 0, suspense: 3 });
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
    expect(await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER)).toBe(before + 24_000n);
    const rows = await transfersTo(va.accountNumber);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toMatchObject({ status: 'suspense', reason: 'unknown_account', user_id: null, credited: '0', suspended: '8000' });
      expect(await messages('bank_transfer.unmatched', row.external_id)).toBe(1);
      expect(await messages('deposit.succeeded', row.external_id)).toBe(0);
    }
    // The same record at our bank, branch and type is the user's.
    const ours = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [transfer(8_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]));
    expect(ours.ok && ours.value).toMatchObject({ credited: 1, suspense: 0 });
    expect(await balanceOf('wallet', va.userId)).toBe(8_000n);
  });

  it('over the limit: up to the limit to the wallet, the rest to escrow, never a breach', async () => {
    const va = await user('ヤマダ タロウ');
    await setBalanceLimit(pool(), va.userId, 10_000n);
    const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [transfer(6_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(8_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]));
    expect(r.ok && r.value).toMatchObject({ credited: 2, suspense: 0 });
    expect(await balanceOf('wallet', va.userId)).toBe(10_000n);
    expect(await balanceOf('escrow', va.userId)).toBe(4_000n);
    const rows = await transfersTo(va.accountNumber);
    expect(rows.reduce((s, x) => s + BigInt(x.escrowed), 0n)).toBe(4_000n);
    expect(await messages('deposit.escrowed', rows.find((x) => x.escrowed !== '0')!.external_id)).toBe(1);
  });

  it("a restricted user's transfer goes to their suspense", async () => {
    const va = await user('ヤマダ タロウ');
    await restrictOwner(pool(), va.userId, 'fraud review');
    const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [transfer(9_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]));
    expect(r.ok && r.value).toMatchObject({ credited: 0, suspense: 1 });
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
    expect(await balanceOf('suspense', va.userId)).toBe(9_000n);
    expect((await transfersTo(va.accountNumber))[0]).toMatchObject({ status: 'suspense', reason: 'account_restricted', suspended: '9000' });
  });

  it('a malformed file imports nothing and names its line and field', async () => {
    const va = await user('ヤマダ タロウ');
    const f = file([{ accountNumber: va.accountNumber, transfers: [transfer(1_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(2_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]);
    // Break the second data record's amount (line 3, 金額 at offset 19; records are 200 bytes + CRLF).
    f[2 * 202 + 19] = 'X'.charCodeAt(0);
    const r = await importTransferNoticeFile(pool(), f);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ line: 3, field: '金額' });
    expect(await transfersTo(va.accountNumber)).toEqual([]);
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
  });

  it('a failure in the middle of a file rolls back the transfers before it', async () => {
    const va = await user('ヤマダ タロウ');
    const f = file([{ accountNumber: va.accountNumber, transfers: [transfer(1_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(2_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]);
    // A trigger makes the second insert fail.
    await pool().query(`CREATE FUNCTION bt_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.amount = 2000 AND NEW.account_number = '${va.accountNumber}' THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END $$`);
    await pool().query('CREATE TRIGGER bt_fail BEFORE INSERT ON bank_transfers FOR EACH ROW EXECUTE FUNCTION bt_fail()');
    try {
      await expect(importTransferNoticeFile(pool(), f)).rejects.toThrow(/injected/);
    } finally {
      await pool().query('DROP TRIGGER bt_fail ON bank_transfers; DROP FUNCTION bt_fail()');
    }
    expect(await transfersTo(va.accountNumber)).toEqual([]);
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
    const again = await importTransferNoticeFile(pool(), f);
    expect(again.ok && again.value).toMatchObject({ credited: 2, duplicates: 0 });
    expect(await balanceOf('wallet', va.userId)).toBe(3_000n);
  });

  it('two concurrent imports of the same file book each transfer once', async () => {
    const va = await user('ヤマダ タロウ');
    const f = file([{ accountNumber: va.accountNumber, transfers: [transfer(1_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(2_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }]);
    const rs = await Promise.all([importTransferNoticeFile(pool(), f), importTransferNoticeFile(pool(), f)]);
    const total = rs.reduce((s, r) => s + (r.ok ? r.value.credited : 0), 0);
    expect(total).toBe(2);
    expect(await balanceOf('wallet', va.userId)).toBe(3_000n);
    expect((await transfersTo(va.accountNumber)).length).toBe(2);
  });

  it('overlapping files sent several times at once by several processes are all taken in, each transfer booked once', async () => {
    // A duplicate storm: eight files naming the same six accounts in different orders, each sent by
    // three processes (pools) at once. Two files booked side by side locked the wallets in different
    // orders and deadlocked, and the aborted import was refused with a 500.
    const users = await Promise.all(Array.from({ length: 6 }, () => user('ヤマダ タロウ')));
    // File r names the accounts rotated by r, every other file in reverse.
    const order = (r: number) => users.map((_, i) => users[(r % 2 === 0 ? i + r : users.length - 1 - i + r) % users.length]!);
    const files = Array.from({ length: 8 }, (_, r) => file(order(r).map((va) => ({ accountNumber: va.accountNumber, transfers: [transfer(1_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }))));
    const pools = [pool(), new pg.Pool({ connectionString: t.tdb.url, max: 4 }), new pg.Pool({ connectionString: t.tdb.url, max: 4 })];
    try {
      const rs = await Promise.all(files.flatMap((f) => pools.map((p) => importTransferNoticeFile(p, f))));
      const counts = rs.map((r) => (r.ok ? r.value : undefined));
      expect(counts.every((c) => c !== undefined)).toBe(true);
      expect(counts.reduce((s, c) => s + c!.credited, 0)).toBe(files.length * users.length);
      expect(counts.reduce((s, c) => s + c!.duplicates, 0)).toBe(files.length * users.length * (pools.length - 1));
      for (const va of users) {
        expect(await balanceOf('wallet', va.userId)).toBe(BigInt(files.length) * 1_000n);
        expect((await transfersTo(va.accountNumber)).length).toBe(files.length);
      }
    } finally {
      await Promise.all(pools.slice(1).map((p) => p.end()));
    }
  });
});

describe('routes', () => {
  it('assign, import (base64, raw bytes, malformed), list suspense; with auth', async () => {
    // The server as seigo builds it (server.ts registers the bank-transfer routes), driven in-process.
    const srv = await createServer(t.engine);
    await srv.ready();
    const doc = (await srv.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, unknown> }>();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/admin/v1/bank-transfers', '/admin/v1/bank-transfers/import', '/v1/virtual-accounts']));
    const op = { authorization: `Bearer ${OPERATOR_TOKEN}` };
    try {
      const userId = uid('http');
      expect((await srv.inject({ method: 'POST', url: '/v1/virtual-accounts', payload: { user_id: userId, name_kana: 'ヤマダ タロウ' } })).statusCode).toBe(401);
      const a = await srv.inject({
        method: 'POST', url: '/v1/virtual-accounts', headers: { authorization: `Bearer ${API_KEY}` }, payload: { user_id: userId, name_kana: 'ヤマダ タロウ' },
      });
      expect(a.statusCode).toBe(200);
      const acct = a.json<{ account_number: string }>().account_number;
      expect(acct).toMatch(/^\d{7}$/);
      const f = file([{ accountNumber: acct, transfers: [transfer(4_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ'), transfer(1_000n, 'ｻﾄｳ ﾊﾅｺ')] }]);
      const bad = Buffer.from(f);
      bad[202 + 19] = 'X'.charCodeAt(0);
      const b = await srv.inject({ method: 'POST', url: '/admin/v1/bank-transfers/import', headers: op, payload: { file_base64: bad.toString('base64') } });
      expect(b.statusCode).toBe(400);
      expect(b.json()).toMatchObject({ code: 'invalid_transfer_notice', line: 2, field: '金額' });
      const viewer = await srv.inject({
        method: 'POST', url: '/admin/v1/bank-transfers/import', headers: { authorization: `Bearer ${VIEWER_TOKEN}` }, payload: { file_base64: f.toString('base64') },
      });
      expect(viewer.statusCode).toBe(403);
      const ok = await srv.inject({ method: 'POST', url: '/admin/v1/bank-transfers/import', headers: op, payload: { file_base64: f.toString('base64') } });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toMatchObject({ credited: 1, suspense: 1, duplicates: 0 });
      const raw = await srv.inject({
        method: 'POST', url: '/admin/v1/bank-transfers/import', headers: { ...op, 'content-type': 'application/octet-stream' }, payload: f,
      });
      expect(raw.json()).toMatchObject({ credited: 0, suspense: 0, duplicates: 2 });
      const utf8 = formatTransferNotice({ groups: [{ header: HEADER(acct), transfers: [transfer(500n, 'ﾔﾏﾀﾞ ﾀﾛｳ')] }] }, { encoding: 'utf8' }).toString('utf8');
      const text = await srv.inject({ method: 'POST', url: '/admin/v1/bank-transfers/import', headers: { ...op, 'content-type': 'text/plain; charset=utf-8' }, payload: utf8 });
      expect(text.json()).toMatchObject({ credited: 1, suspense: 0, duplicates: 0 });
      const l = await srv.inject({ method: 'GET', url: `/admin/v1/bank-transfers?status=suspense&user_id=${userId}`, headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
      expect(l.statusCode).toBe(200);
      expect(l.json<{ data: unknown[] }>().data).toEqual([expect.objectContaining({ reason: 'name_mismatch', amount: '1000', status: 'suspense' })]);
      expect((await listBankTransfers(pool(), { userId })).length).toBe(3);
    } finally {
      await srv.close();
    }
  });
});

describe('cancellation (取消) records', () => {
  const cancelOf = (t: TransferNoticeInput): TransferNoticeInput => ({ ...t, cancelled: true });

  it('reverse the credit of the transfer they name, once; the same file again changes nothing', async () => {
    const va = await user('タナカ ジロウ');
    const tr = transfer(20_000n, 'ﾀﾅｶ ｼﾞﾛｳ');
    expect(await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [tr] }]))).toMatchObject({ ok: true, value: { credited: 1 } });
    expect(await balanceOf('wallet', va.userId)).toBe(20_000n);
    const cf = file([{ accountNumber: va.accountNumber, transfers: [cancelOf(tr)] }]);
    expect(await importTransferNoticeFile(pool(), cf)).toEqual({ ok: true, value: { credited: 0, suspense: 0, duplicates: 0, cancellations: 1, unmatchedCancellations: 0 } });
    expect(await importTransferNoticeFile(pool(), cf)).toEqual({ ok: true, value: { credited: 0, suspense: 0, duplicates: 1, cancellations: 0, unmatchedCancellations: 0 } });
    expect(await balanceOf('wallet', va.userId)).toBe(0n);
    const rows = await transfersTo(va.accountNumber);
    expect(rows.map((r) => [r.status, r.reason])).toEqual([['cancelled', 'cancellation'], ['cancellation', 'cancellation']]);
    const [original, cancellation] = rows as unknown as { external_id: string; cancelled_by: string; cancels: string }[];
    expect(original!.cancelled_by).toBe(cancellation!.external_id);
    expect(cancellation!.cancels).toBe(original!.external_id);
    expect(await messages('deposit.reversed', original!.external_id)).toBe(1);
    const reversals = await pool().query(`SELECT 1 FROM ledger_transactions WHERE idempotency_key = $1 AND kind = 'reversal'`, [`bank_transfer:${original!.external_id}:cancel`]);
    expect(reversals.rowCount).toBe(1);
  });

  it('a transfer without 照会番号 is found by account, day, amount and payer; escrow is reversed too; a spent credit leaves a shortfall', async () => {
    const va = await user('サトウ ハナコ');
    await setBalanceLimit(pool(), va.userId, 10_000n);
    const tr = { ...transfer(15_000n, 'ｻﾄｳ ﾊﾅｺ'), inquiryNumber: null };
    await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [tr] }]));
    expect([await balanceOf('wallet', va.userId), await balanceOf('escrow', va.userId)]).toEqual([10_000n, 5_000n]);
    // The user spends 4,000 of the wallet before the bank withdraws the transfer.
    const wallet = (await findAccount(pool(), 'wallet', va.userId))!;
    const shop = await pool().query<{ id: string }>(`SELECT id FROM ledger_accounts WHERE kind = 'clearing' AND owner = 'bank'`);
    const { post } = await import('../ledger/index.ts');
    const spent = await post(pool(), { idempotencyKey: uid('spend'), entries: [{ accountId: wallet.id, amount: -4_000n }, { accountId: shop.rows[0]!.id, amount: 4_000n }] });
    expect(spent.ok).toBe(true);
    const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [cancelOf(tr)] }]));
    expect(r).toMatchObject({ ok: true, value: { cancellations: 1 } });
    expect([await balanceOf('wallet', va.userId), await balanceOf('escrow', va.userId)]).toEqual([-4_000n, 0n]);
    const [original] = await pool().query<{ status: string; shortfall: string }>(`SELECT status, shortfall::text AS shortfall FROM bank_transfers WHERE account_number = $1 AND cancels IS NULL`, [va.accountNumber]).then((x) => x.rows);
    expect(original).toEqual({ status: 'cancelled', shortfall: '4000' });
    const c = await pool().query(`SELECT c.cause, c.status FROM cases c JOIN bank_transfers t ON t.external_id = c.subject_id
      WHERE c.subject_type = 'bank_transfer' AND t.account_number = $1`, [va.accountNumber]);
    expect(c.rows).toEqual([{ cause: 'bank_transfer_cancel_shortfall', status: 'open' }]);
  });

  it('a shortfall counts only what this cancellation took: a wallet already below zero is not counted again', async () => {
    const va = await user('スズキ イチロウ');
    const first = transfer(3_000n, 'ｽｽﾞｷ ｲﾁﾛｳ');
    const second = transfer(2_000n, 'ｽｽﾞｷ ｲﾁﾛｳ');
    await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [first, second] }]));
    // The user spends all 5,000, then the bank withdraws both transfers, one file after the other.
    const wallet = (await findAccount(pool(), 'wallet', va.userId))!;
    const shop = await pool().query<{ id: string }>(`SELECT id FROM ledger_accounts WHERE kind = 'clearing' AND owner = 'bank'`);
    const { post } = await import('../ledger/index.ts');
    expect((await post(pool(), { idempotencyKey: uid('spend'), entries: [{ accountId: wallet.id, amount: -5_000n }, { accountId: shop.rows[0]!.id, amount: 5_000n }] })).ok).toBe(true);
    await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [cancelOf(first)] }]));
    await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [cancelOf(second)] }]));
    expect(await balanceOf('wallet', va.userId)).toBe(-5_000n);
    const r = await pool().query<{ amount: string; shortfall: string }>(
      `SELECT amount::text AS amount, shortfall::text AS shortfall FROM bank_transfers WHERE account_number = $1 AND cancels IS NULL ORDER BY amount DESC`, [va.accountNumber]);
    expect(r.rows).toEqual([{ amount: '3000', shortfall: '3000' }, { amount: '2000', shortfall: '2000' }]);
  });

  it('a cancellation of a transfer we do not know goes to suspense and is listed; a second cancellation of one transfer too', async () => {
    const va = await user('スズキ イチロウ');
    const known = transfer(3_000n, 'ｽｽﾞｷ ｲﾁﾛｳ');
    await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [known] }]));
    const before = await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER);
    const r = await importTransferNoticeFile(pool(), file([{ accountNumber: va.accountNumber, transfers: [cancelOf(transfer(7_000n, 'ﾀﾞﾚｶ')), cancelOf(known), { ...cancelOf(known), inquiryNumber: '999999' }] }]));
    expect(r).toEqual({ ok: true, value: { credited: 0, suspense: 0, duplicates: 0, cancellations: 1, unmatchedCancellations: 2 } });
    expect(await balanceOf('suspense', UNMATCHED_SUSPENSE_OWNER)).toBe(before - 10_000n);
    const listed = await listBankTransfers(pool(), { status: 'unmatched_cancel' });
    expect(listed.filter((x) => x.accountNumber === va.accountNumber).map((x) => x.amount).sort()).toEqual([3_000n, 7_000n]);
    const c = await pool().query(`SELECT count(*)::int AS n FROM cases c JOIN bank_transfers t ON t.external_id = c.subject_id
      WHERE c.cause = 'bank_transfer_unknown_cancellation' AND t.account_number = $1 AND c.status = 'open'`, [va.accountNumber]);
    expect(c.rows[0].n).toBe(2);
  });
});
