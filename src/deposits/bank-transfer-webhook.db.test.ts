// Incoming transfers announced by the bank partner's webhooks, on real PostgreSQL over real HTTP
// with real Standard Webhooks signatures: stored, then booked once by the inbox worker (the same
// importTransfer as the Zengin file), an awaiting deposit paid, duplicates and the later file of
// the same transfer changing nothing, unknown accounts to suspense, bad payloads kept as failed rows.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAccount, getBalance } from '../ledger/index.ts';
import { OPERATOR_TOKEN, TEST_SECRET, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';
import { file, header, transfer } from '../../test/helpers/zengin.ts';
import { assignVirtualAccount, UNMATCHED_SUSPENSE_OWNER, type VirtualAccount } from './bank-transfer.ts';

const API_KEY = 'wallet-backend-key-0123456789abcdef';
const BANK_SECRET = `whsec_${Buffer.from('bank-partner-secret-0123456789ab').toString('base64')}`;
let t: TestEngine;
beforeAll(async () => {
  t = await startTestEngine({
    config: {
      providers: { acme: { kind: 'standard-webhooks', secrets: [TEST_SECRET] }, bank: { kind: 'standard-webhooks', secrets: [BANK_SECRET] } },
      apiClients: [{ name: 'wallet', key: API_KEY }],
      deposits: { bankTransferProvider: 'bank' },
    },
  });
});
afterAll(async () => {
  await t?.close();
});
const pool = () => t.tdb.db.pool;

let seq = 0;
const uid = (p: string) => `${p}-${Date.now().toString(36)}-${++seq}`;
let inquiry = 500_000;
const nextInquiry = () => String(++inquiry);

async function user(): Promise<VirtualAccount> {
  return assignVirtualAccount(pool(), { userId: uid('bh'), registeredNameKana: 'ヤマダ タロウ' });
}
async function wallet(owner: string, kind: 'wallet' | 'suspense' = 'wallet'): Promise<bigint> {
  const a = await findAccount(pool(), kind, owner);
  const b = a ? await getBalance(pool(), a.id) : null;
  return b?.posted ?? 0n;
}
async function transfersTo(accountNumber: string) {
  return (await pool().query<{ external_id: string; status: string; reason: string | null; deposit_id: string | null; credited: string; suspended: string }>(
    'SELECT external_id, status, reason, deposit_id, credited::text, suspended::text FROM bank_transfers WHERE account_number = $1 ORDER BY received_at', [accountNumber])).rows;
}

/** What the bank sends for one transfer to `va` (its 照会番号 as the id). */
function received(va: { accountNumber: string }, amount: number, id = nextInquiry(), extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id, account_number: va.accountNumber, amount, currency: 'JPY', payer_name: 'ﾔﾏﾀﾞ ﾀﾛｳ', transaction_date: '2026-11-20',
    bank_code: '0001', branch_code: '001', ...extra,
  };
}
async function send(type: string, data: Record<string, unknown>, webhookId = uid('msg')) {
  const r = await sendWebhook(t.url, { provider: 'bank', id: webhookId, type, data, secret: BANK_SECRET });
  expect(r.status).toBe(200);
  await t.engine.inbox.runOnce(100);
  return r;
}
async function inboxRow(id: unknown) {
  return (await pool().query<{ status: string; last_error: string | null }>('SELECT status, last_error FROM inbox WHERE id = $1', [id])).rows[0]!;
}

describe('bank_transfer.received', () => {
  it('credits the wallet once and pays the awaiting deposit of that amount', async () => {
    const va = await user();
    const asked = await request(`${t.url}/v1/deposits`, {
      method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'bank_transfer', user_id: va.userId, amount: 20_000 }),
    });
    expect(asked.statusCode).toBe(201);
    const deposit = await asked.body.json() as { id: string };

    const r = await send('bank_transfer.received', received(va, 20_000));
    expect((await inboxRow(r.json.id)).status).toBe('processed');
    expect(await wallet(va.userId)).toBe(20_000n);
    const [booked] = await transfersTo(va.accountNumber);
    expect(booked).toMatchObject({ status: 'credited', deposit_id: deposit.id, credited: '20000' });
    expect(booked!.external_id).toBe(`zengin:0001-001-1-${va.accountNumber}:2026-11-20:${String(inquiry)}`);
    const d = await pool().query<{ status: string }>('SELECT status FROM deposits WHERE id = $1', [deposit.id]);
    expect(d.rows[0]!.status).toBe('succeeded');
  });

  it('the same event delivered twice, or the same transfer in a second event, books once', async () => {
    const va = await user();
    const data = received(va, 3_000);
    const first = await send('bank_transfer.received', data, 'msg-dup-1');
    const again = await sendWebhook(t.url, { provider: 'bank', id: 'msg-dup-1', type: 'bank_transfer.received', data, secret: BANK_SECRET });
    expect(again.json).toMatchObject({ id: first.json.id, duplicate: true });
    await send('bank_transfer.received', data); // a retry the bank made with a new webhook-id
    expect(await wallet(va.userId)).toBe(3_000n);
    expect(await transfersTo(va.accountNumber)).toHaveLength(1);
  });

  it('then the same transfer in the Zengin file: one transfer, one credit', async () => {
    const va = await user();
    const tr = transfer(4_000n, 'ﾔﾏﾀﾞ ﾀﾛｳ');
    await send('bank_transfer.received', received(va, 4_000, tr.inquiryNumber!.replace(/^0+/, '')));
    expect(await wallet(va.userId)).toBe(4_000n);
    expect(header(va.accountNumber)).toMatchObject({ bankCode: '0001', branchCode: '001', depositType: '1' });
    const imported = await request(`${t.url}/admin/v1/bank-transfers/import`, {
      method: 'POST', headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: file([{ accountNumber: va.accountNumber, transfers: [tr] }]),
    });
    expect(imported.statusCode).toBe(200);
    expect(await imported.body.json()).toMatchObject({ credited: 0, duplicates: 1 });
    expect(await wallet(va.userId)).toBe(4_000n);
    expect(await transfersTo(va.accountNumber)).toHaveLength(1);
  });

  it('to an account nobody has: the whole amount to suspense, as the file does', async () => {
    const before = await wallet(UNMATCHED_SUSPENSE_OWNER, 'suspense');
    await send('bank_transfer.received', received({ accountNumber: '9999999' }, 7_000, `tr_${uid('x')}`));
    const [row] = (await transfersTo('9999999')).slice(-1);
    expect(row).toMatchObject({ status: 'suspense', reason: 'unknown_account', suspended: '7000' });
    expect(row!.external_id).toMatch(/^bank:tr_/);
    expect(await wallet(UNMATCHED_SUSPENSE_OWNER, 'suspense')).toBe(before + 7_000n);
  });

  it('naming another bank, branch or account type, or no bank and branch, books to suspense as unknown_account, not to the holder of the number', async () => {
    const va = await user();
    const before = await wallet(UNMATCHED_SUSPENSE_OWNER, 'suspense');
    await send('bank_transfer.received', received(va, 2_000, nextInquiry(), { bank_code: '0009' }));
    await send('bank_transfer.received', received(va, 3_000, nextInquiry(), { branch_code: '777' }));
    await send('bank_transfer.received', received(va, 4_000, nextInquiry(), { deposit_type: '2' }));
    // An older partner's payload without bank_code and branch_code: it cannot say whose account this is.
    const { bank_code: _b, branch_code: _br, ...bare } = received(va, 5_000, `tr_${uid('x')}`);
    const r = await send('bank_transfer.received', bare);
    expect((await inboxRow(r.json.id)).status).toBe('processed');
    expect(await wallet(va.userId)).toBe(0n);
    const rows = await transfersTo(va.accountNumber);
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatchObject({ status: 'suspense', reason: 'unknown_account', credited: '0' });
    expect(await wallet(UNMATCHED_SUSPENSE_OWNER, 'suspense')).toBe(before + 14_000n);
  });

  it('malformed data is stored and acknowledged, the row failed with the cause, nothing booked', async () => {
    const va = await user();
    const r = await send('bank_transfer.received', { ...received(va, 5_000), amount: -5, transaction_date: '2026-13-01' });
    const row = await inboxRow(r.json.id);
    expect(row.status).toBe('failed');
    expect(row.last_error).toMatch(/malformed bank_transfer\.received data: .*amount/);
    expect(row.last_error).toMatch(/transaction_date/);
    expect(await transfersTo(va.accountNumber)).toHaveLength(0);
    expect(await wallet(va.userId)).toBe(0n);
  });

  it('a bad signature is refused with 401 and nothing is stored', async () => {
    const va = await user();
    const r = await sendWebhook(t.url, { provider: 'bank', id: 'msg-forged', type: 'bank_transfer.received', data: received(va, 9_000), secret: TEST_SECRET });
    expect(r.status).toBe(401);
    const n = await pool().query(`SELECT 1 FROM inbox WHERE provider = 'bank' AND event_id = 'msg-forged'`);
    expect(n.rowCount).toBe(0);
  });

  it('another provider\'s event of the same type books nothing', async () => {
    const va = await user();
    const r = await sendWebhook(t.url, { provider: 'acme', id: uid('msg'), type: 'bank_transfer.received', data: received(va, 1_000) });
    expect(r.status).toBe(200);
    await t.engine.inbox.runOnce(100);
    expect(await transfersTo(va.accountNumber)).toHaveLength(0);
  });
});

describe('bank_transfer.cancelled', () => {
  it('reverses the transfer it names, once', async () => {
    const va = await user();
    const id = nextInquiry();
    await send('bank_transfer.received', received(va, 6_000, id));
    expect(await wallet(va.userId)).toBe(6_000n);
    const cancel = received(va, 6_000, id, { cancels: id });
    await send('bank_transfer.cancelled', cancel);
    await send('bank_transfer.cancelled', cancel);
    expect(await wallet(va.userId)).toBe(0n);
    const rows = await transfersTo(va.accountNumber);
    expect(rows.map((r) => r.status).sort()).toEqual(['cancellation', 'cancelled']);
  });

  it('without cancels it is malformed', async () => {
    const va = await user();
    const r = await send('bank_transfer.cancelled', received(va, 6_000));
    expect(await inboxRow(r.json.id)).toMatchObject({ status: 'failed', last_error: expect.stringMatching(/cancels is required/) });
  });
});
