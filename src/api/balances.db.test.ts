// GET /v1/balances/:user_id: a user's money by user id — available, holds, escrow, suspense,
// limit — as the ledger holds it, for the API client's key only.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { creditDeposit, ensureAccount, placeHold, restrictOwner, setBalanceLimit } from '../ledger/index.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const KEY = 'sk_test_balances_0123456789abcdef';
let t: TestEngine;
beforeAll(async () => { t = await startTestEngine({ config: { apiClients: [{ name: 'wallet', key: KEY }], deposits: { defaultLimit: 50_000 } } }); });
afterAll(async () => { await t.close(); });

async function balances(userId: string, key = KEY) {
  const r = await request(`${t.url}/v1/balances/${encodeURIComponent(userId)}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: r.statusCode, json: await r.body.json() as Record<string, unknown> };
}

describe('GET /v1/balances/:user_id', () => {
  it('shows available, holds, escrow and suspense, money as decimal strings', async () => {
    const pool = t.tdb.db.pool;
    const clearing = await ensureAccount(pool, { kind: 'clearing', owner: 'komoju' });
    // ¥60,000 unrefusable against a ¥50,000 limit: ¥50,000 credited, ¥10,000 to escrow.
    const credit = await creditDeposit(pool, { owner: 'user_b1', amount: 60_000n, sourceAccountId: clearing.id, idempotencyKey: 'bal_dep_1', mode: 'unrefusable', defaultLimit: 50_000n });
    expect(credit.ok).toBe(true);
    const wallet = await ensureAccount(pool, { kind: 'wallet', owner: 'user_b1' });
    const out = await withTx(pool, (tx) => placeHold(tx, { idempotencyKey: 'bal_hold_1', accountId: wallet.id, counterAccountId: clearing.id, direction: 'out', amount: 7_000n }));
    expect(out.ok).toBe(true);

    const b = await balances('user_b1');
    expect(b.status).toBe(200);
    expect(b.json).toEqual({
      object: 'balance', user_id: 'user_b1', currency: 'JPY', available: '43000', posted: '50000',
      holds: { incoming: '0', outgoing: '7000' }, escrow: '10000', suspense: '0', limit: '50000', headroom: '0', restricted: false,
    });

    // A restricted user's deposit waits in suspense; a per-user limit replaces the default.
    await restrictOwner(pool, 'user_b2', 'kyc review');
    await setBalanceLimit(pool, 'user_b2', 200_000n);
    expect((await creditDeposit(pool, { owner: 'user_b2', amount: 3_000n, sourceAccountId: clearing.id, idempotencyKey: 'bal_dep_2', mode: 'unrefusable' })).ok).toBe(true);
    expect((await balances('user_b2')).json).toMatchObject({ available: '0', suspense: '3000', escrow: '0', limit: '200000', headroom: '200000', restricted: true });
  });

  it('answers zeros for a user without deposits, and only to an API client', async () => {
    expect((await balances('user_never')).json).toMatchObject({ user_id: 'user_never', available: '0', posted: '0', escrow: '0', suspense: '0', limit: '50000' });
    const anonymous = await balances('user_b1', 'not-a-key-not-a-key-not-a-key');
    expect(anonymous.status).toBe(401);
    expect(anonymous.json).toMatchObject({ code: 'unauthorized' });
  });
});
