import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { withTx } from '../kernel/db.ts';
import { ensureAccount, post } from '../ledger/index.ts';
import { startTestEngine, VIEWER_TOKEN, type TestEngine } from '../../test/helpers/engine.ts';

let t: TestEngine;
beforeAll(async () => { t = await startTestEngine(); });
afterAll(async () => { await t.close(); });

async function get(path: string) {
  const r = await request(`${t.url}${path}`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
  return { status: r.statusCode, json: await r.body.json() as Record<string, unknown> };
}

describe('ledger admin API', () => {
  it('shows an account with its balances and a transaction with its entries, money as decimal strings', async () => {
    const pool = t.tdb.db.pool;
    const wallet = await ensureAccount(pool, { kind: 'wallet', owner: 'user_1' });
    const clearing = await ensureAccount(pool, { kind: 'clearing', owner: 'acme' });
    const posted = await withTx(pool, (tx) => post(tx, { idempotencyKey: 'dep_1', entries: [{ accountId: clearing.id, amount: -12_345n }, { accountId: wallet.id, amount: 12_345n }] }));
    expect(posted.ok).toBe(true);
    const txId = posted.ok ? posted.value.transactionId : '';

    const acc = await get(`/admin/v1/ledger/accounts/${wallet.id}`);
    expect(acc.status).toBe(200);
    expect(acc.json).toMatchObject({ kind: 'wallet', owner: 'user_1', currency: 'JPY', balance: { posted: '12345', available: '12345', pending_in: '0', pending_out: '0' } });
    expect(acc.json.recent_transactions).toEqual([expect.objectContaining({ id: txId, amount: '12345' })]);

    const tr = await get(`/admin/v1/ledger/transactions/${txId}`);
    expect(tr.status).toBe(200);
    expect(tr.json).toMatchObject({ id: txId, idempotency_key: 'dep_1' });
    expect((tr.json.entries as { amount: string }[]).map((e) => e.amount).sort()).toEqual(['-12345', '12345']);

    expect((await get('/admin/v1/ledger/accounts/00000000-0000-7000-8000-000000000000')).status).toBe(404);
  });
});
