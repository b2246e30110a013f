import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { propertyParams } from '../../test/helpers/property.ts';
import {
  captureHold, creditDeposit, creditDeposits, DepositCreditor, ensureAccount, expireHolds, getBalance, getHold, getTransaction, placeHold, post, releaseHold,
  restrictOwner, reverse, setBalanceLimit, type Account,
} from './index.ts';

let t: TestDatabase;
let clearing: Account;
beforeAll(async () => {
  t = await createTestDatabase({ max: 25 });
  clearing = await ensureAccount(t.db.pool, { kind: 'clearing', owner: 'komoju' });
});
afterAll(async () => { await t.drop(); });

const inTx = <T>(fn: (tx: Tx) => Promise<T>) => withTx(t.db.pool, fn);
let seq = 0;
const key = (p: string) => `${p}-${++seq}`;
const wallet = (owner: string) => ensureAccount(t.db.pool, { kind: 'wallet', owner });
const posted = async (accountId: string) => (await getBalance(t.db.pool, accountId))!.posted;

/** The invariants every state of the ledger must satisfy, checked in SQL over all rows. */
async function invariants(propertyDefault?: { ownerPrefix: string; limit: bigint }): Promise<void> {
  const q = (sql: string, v: unknown[] = []) => t.db.pool.query(sql, v).then((r) => r.rows);
  // Every currency sums to zero over all entries, and each transaction on its own.
  expect(await q('SELECT currency, sum(amount)::text FROM ledger_entries GROUP BY currency HAVING sum(amount) <> 0')).toEqual([]);
  expect(await q('SELECT transaction_id FROM ledger_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0')).toEqual([]);
  // Each balance equals its entries (posted) and its active holds (pending), shards summed.
  expect(await q(`
    SELECT a.id FROM ledger_accounts a
    JOIN ledger_account_balances b ON b.account_id = a.id
    LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e ON e.account_id = a.id
    LEFT JOIN (SELECT account_id, sum(amount) FILTER (WHERE direction = 'in') AS i, sum(amount) FILTER (WHERE direction = 'out') AS o
               FROM ledger_holds WHERE status = 'active' GROUP BY account_id) h ON h.account_id = a.id
    WHERE b.posted <> coalesce(e.s, 0) OR b.pending_in <> coalesce(h.i, 0) OR b.pending_out <> coalesce(h.o, 0)`)).toEqual([]);
  // No wallet over its limit (posted + incoming holds), none with negative available.
  expect(await q(`
    SELECT a.owner, b.posted::text, b.pending_in::text FROM ledger_accounts a JOIN ledger_account_balances b ON b.account_id = a.id
    LEFT JOIN ledger_limits l ON l.owner = a.owner AND l.currency = a.currency
    WHERE a.kind = 'wallet' AND (b.posted + b.pending_in > coalesce(l."limit", CASE WHEN $2::text IS NOT NULL AND starts_with(a.owner, $2) THEN $1::bigint ELSE 1000000 END) OR b.available < 0)`,
  [propertyDefault?.limit.toString() ?? '1000000', propertyDefault?.ownerPrefix ?? null])).toEqual([]);
}

describe('postings', () => {
  it('posts a balanced transaction and moves the balances with it', async () => {
    const w = await wallet('u-post');
    const fees = await ensureAccount(t.db.pool, { kind: 'fees', owner: '' });
    const r = await inTx((tx) => post(tx, { idempotencyKey: key('p'), entries: [
      { accountId: clearing.id, amount: -1_000n }, { accountId: w.id, amount: 970n }, { accountId: fees.id, amount: 30n }] }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.duplicate).toBe(false);
    expect(await posted(w.id)).toBe(970n);
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 970n, pendingIn: 0n, pendingOut: 0n, available: 970n });
    const stored = await getTransaction(t.db.pool, r.value.transactionId);
    expect(stored?.entries.map((e) => e.amount).sort()).toEqual([-1_000n, 30n, 970n].sort());
    await invariants();
  });

  it('refuses unbalanced entries in code before anything is written', async () => {
    const w = await wallet('u-unbal');
    await expect(inTx((tx) => post(tx, { idempotencyKey: key('u'), entries: [{ accountId: clearing.id, amount: -10n }, { accountId: w.id, amount: 9n }] })))
      .rejects.toThrow(/do not balance/);
    expect(await posted(w.id)).toBe(0n);
  });

  it('the database refuses an unbalanced transaction inserted by raw SQL, at COMMIT', async () => {
    const w = await wallet('u-raw');
    const c = await t.db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ledger_transactions (id, idempotency_key) VALUES ('00000000-0000-7000-8000-000000000001', 'raw-1')`);
      await c.query(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES
        ('00000000-0000-7000-8000-000000000001', $1, 'JPY', -100), ('00000000-0000-7000-8000-000000000001', $2, 'JPY', 99)`, [clearing.id, w.id]);
      // The statements themselves succeed: the check is deferred to the end of the transaction.
      await expect(c.query('COMMIT')).rejects.toThrow(/does not balance/);
      // A single entry and a transaction without entries are refused too.
      await c.query('BEGIN');
      await c.query(`INSERT INTO ledger_transactions (id, idempotency_key) VALUES ('00000000-0000-7000-8000-000000000002', 'raw-2')`);
      await expect(c.query('COMMIT')).rejects.toThrow(/0 entries/);
      // While a balanced one commits.
      await c.query('BEGIN');
      await c.query(`INSERT INTO ledger_transactions (id, idempotency_key) VALUES ('00000000-0000-7000-8000-000000000003', 'raw-3')`);
      await c.query(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES
        ('00000000-0000-7000-8000-000000000003', $1, 'JPY', -100), ('00000000-0000-7000-8000-000000000003', $2, 'JPY', 100)`, [clearing.id, w.id]);
      // (Kept equal to the entries by hand, as post() would, so the other tests' invariants hold.)
      await c.query(`UPDATE ledger_balances SET posted = posted + CASE WHEN account_id = $1 THEN -100 ELSE 100 END
                     WHERE (account_id = $1 OR account_id = $2) AND shard = 0`, [clearing.id, w.id]);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const n = await t.db.pool.query(`SELECT idempotency_key FROM ledger_transactions WHERE idempotency_key LIKE 'raw-%'`);
    expect(n.rows).toEqual([{ idempotency_key: 'raw-3' }]);
  });

  it('entries and transactions cannot be updated or deleted', async () => {
    const w = await wallet('u-immutable');
    const r = await inTx((tx) => post(tx, { idempotencyKey: key('i'), entries: [{ accountId: clearing.id, amount: -5n }, { accountId: w.id, amount: 5n }] }));
    if (!r.ok) throw new Error('post failed');
    const id = r.value.transactionId;
    const q = (sql: string) => t.db.pool.query(sql, [id]);
    await expect(q('UPDATE ledger_entries SET amount = amount * 2 WHERE transaction_id = $1')).rejects.toThrow(/immutable/);
    await expect(q('DELETE FROM ledger_entries WHERE transaction_id = $1')).rejects.toThrow(/immutable/);
    await expect(q(`UPDATE ledger_transactions SET description = 'x' WHERE id = $1`)).rejects.toThrow(/immutable/);
    await expect(q('DELETE FROM ledger_transactions WHERE id = $1')).rejects.toThrow(/immutable/);
    await expect(t.db.pool.query('TRUNCATE ledger_entries CASCADE')).rejects.toThrow(/immutable/);
    expect((await getTransaction(t.db.pool, id))?.entries.map((e) => e.amount).sort()).toEqual([-5n, 5n]);
  });

  it('entries cannot be added to a committed transaction, nor name a missing transaction or account; accounts cannot be deleted', async () => {
    const w = await wallet('u-late-entry');
    const r = await post(t.db.pool, { idempotencyKey: key('late'), entries: [{ accountId: clearing.id, amount: -7n }, { accountId: w.id, amount: 7n }] });
    if (!r.ok) throw new Error('post failed');
    const q = (sql: string, v: unknown[]) => t.db.pool.query(sql, v);
    // Balanced on its own, but it would change a transaction already checked at its COMMIT.
    await expect(q(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES ($1, $2, 'JPY', -1), ($1, $3, 'JPY', 1)`,
      [r.value.transactionId, clearing.id, w.id])).rejects.toThrow(/committed earlier/);
    await expect(q(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES ('00000000-0000-7000-8000-0000000000ff', $1, 'JPY', 1)`,
      [w.id])).rejects.toThrow(/does not exist/);
    const c = await t.db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO ledger_transactions (id, idempotency_key) VALUES ('00000000-0000-7000-8000-0000000000fe', $1)`, [key('raw')]);
      await expect(c.query(`INSERT INTO ledger_entries (transaction_id, account_id, currency, amount) VALUES
        ('00000000-0000-7000-8000-0000000000fe', $1, 'USD', -1), ('00000000-0000-7000-8000-0000000000fe', $2, 'USD', 1)`, [clearing.id, w.id]))
        .rejects.toThrow(/no such account in that currency/);
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
    await expect(q('DELETE FROM ledger_accounts WHERE id = $1', [w.id])).rejects.toThrow(/immutable/);
    await expect(q(`UPDATE ledger_accounts SET currency = 'USD' WHERE id = $1`, [w.id])).rejects.toThrow(/immutable/);
    expect(await posted(w.id)).toBe(7n);
  });

  it('an idempotency key used twice, even concurrently, posts once', async () => {
    const w = await wallet('u-idem');
    const k = key('idem');
    const results = await Promise.all(Array.from({ length: 8 }, () =>
      inTx((tx) => post(tx, { idempotencyKey: k, entries: [{ accountId: clearing.id, amount: -700n }, { accountId: w.id, amount: 700n }] }))));
    const ids = new Set(results.map((r) => (r.ok ? r.value.transactionId : 'refused')));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.ok && !r.value.duplicate)).toHaveLength(1);
    expect(await posted(w.id)).toBe(700n);
    const n = await t.db.pool.query('SELECT count(*)::int AS n FROM ledger_transactions WHERE idempotency_key = $1', [k]);
    expect(n.rows[0].n).toBe(1);
  });

  it('reverse posts the opposite as a new transaction, once', async () => {
    const w = await wallet('u-rev');
    const r = await inTx((tx) => post(tx, { idempotencyKey: key('r'), entries: [{ accountId: clearing.id, amount: -300n }, { accountId: w.id, amount: 300n }] }));
    if (!r.ok) throw new Error('post failed');
    const a = await inTx((tx) => reverse(tx, r.value.transactionId));
    const b = await inTx((tx) => reverse(tx, r.value.transactionId));
    expect(a.ok && b.ok && a.value.transactionId === b.value.transactionId && b.value.duplicate).toBe(true);
    expect(await posted(w.id)).toBe(0n);
    if (a.ok) expect((await getTransaction(t.db.pool, a.value.transactionId))?.reverses).toBe(r.value.transactionId);
    await invariants();
  });

  it('a wallet cannot pay out more than is available', async () => {
    const a = await wallet('u-funds-a');
    const b = await wallet('u-funds-b');
    await inTx((tx) => post(tx, { idempotencyKey: key('f'), entries: [{ accountId: clearing.id, amount: -100n }, { accountId: a.id, amount: 100n }] }));
    const r = await inTx((tx) => post(tx, { idempotencyKey: key('f'), entries: [{ accountId: a.id, amount: -101n }, { accountId: b.id, amount: 101n }] }));
    expect(r).toEqual({ ok: false, error: { code: 'insufficient_funds', accountId: a.id, available: 100n } });
    expect(await posted(a.id)).toBe(100n);
  });
});

describe('holds', () => {
  it('an incoming hold counts toward the limit and becomes a posting on capture', async () => {
    const w = await wallet('u-hold-in');
    await setBalanceLimit(t.db.pool, 'u-hold-in', 10_000n);
    const h = await inTx((tx) => placeHold(tx, { idempotencyKey: key('h'), accountId: w.id, counterAccountId: clearing.id, direction: 'in', amount: 8_000n }));
    if (!h.ok) throw new Error('hold refused');
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 0n, pendingIn: 8_000n, available: 0n });
    // The reservation uses the limit: a deposit beyond the rest is refused.
    const over = await inTx((tx) => creditDeposit(tx, { owner: 'u-hold-in', amount: 2_001n, sourceAccountId: clearing.id, idempotencyKey: key('d'), mode: 'refusable' }));
    expect(over).toEqual({ ok: false, error: { code: 'balance_limit_exceeded', headroom: 2_000n, accountId: w.id } });
    const again = await inTx((tx) => placeHold(tx, { idempotencyKey: key('h'), accountId: w.id, counterAccountId: clearing.id, direction: 'in', amount: 2_001n }));
    expect(again.ok ? null : again.error.code).toBe('balance_limit_exceeded');
    const c = await inTx((tx) => captureHold(tx, h.value.hold.id));
    expect(c.ok).toBe(true);
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 8_000n, pendingIn: 0n, available: 8_000n });
    expect((await getHold(t.db.pool, h.value.hold.id))?.status).toBe('captured');
    // A captured hold cannot be captured or released again.
    expect(await inTx((tx) => captureHold(tx, h.value.hold.id))).toEqual({ ok: false, error: { code: 'hold_not_active', holdId: h.value.hold.id, status: 'captured' } });
    expect((await inTx((tx) => releaseHold(tx, h.value.hold.id))).ok).toBe(false);
    await invariants();
  });

  it('an outgoing hold reduces available; release gives it back; capture pays it out', async () => {
    const w = await wallet('u-hold-out');
    const refunds = await ensureAccount(t.db.pool, { kind: 'refunds_payable', owner: '' });
    await inTx((tx) => creditDeposit(tx, { owner: 'u-hold-out', amount: 5_000n, sourceAccountId: clearing.id, idempotencyKey: key('d'), mode: 'refusable' }));
    const h1 = await inTx((tx) => placeHold(tx, { idempotencyKey: key('o'), accountId: w.id, counterAccountId: refunds.id, direction: 'out', amount: 3_000n }));
    if (!h1.ok) throw new Error('hold refused');
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 5_000n, pendingOut: 3_000n, available: 2_000n });
    const h2 = await inTx((tx) => placeHold(tx, { idempotencyKey: key('o'), accountId: w.id, counterAccountId: refunds.id, direction: 'out', amount: 2_001n }));
    expect(h2).toEqual({ ok: false, error: { code: 'insufficient_funds', accountId: w.id, available: 2_000n } });
    await inTx((tx) => releaseHold(tx, h1.value.hold.id));
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 5_000n, pendingOut: 0n, available: 5_000n });
    const h3 = await inTx((tx) => placeHold(tx, { idempotencyKey: key('o'), accountId: w.id, counterAccountId: refunds.id, direction: 'out', amount: 4_000n }));
    if (!h3.ok) throw new Error('hold refused');
    await inTx((tx) => captureHold(tx, h3.value.hold.id));
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ posted: 1_000n, pendingOut: 0n, available: 1_000n });
    expect(await posted(refunds.id)).toBe(4_000n);
    const events = await t.db.pool.query('SELECT from_status, to_status FROM ledger_hold_events WHERE hold_id = $1 ORDER BY id', [h1.value.hold.id]);
    expect(events.rows).toEqual([{ from_status: null, to_status: 'active' }, { from_status: 'active', to_status: 'released' }]);
    await invariants();
  });

  it('expireHolds expires only due active holds and frees their reservation', async () => {
    const w = await wallet('u-expire');
    const place = (amount: bigint, expiresAt: Date) => inTx((tx) => placeHold(tx, { idempotencyKey: key('e'), accountId: w.id, counterAccountId: clearing.id, direction: 'in', amount, expiresAt }));
    const due = await place(100n, new Date('2030-01-01T00:00:00Z'));
    const later = await place(200n, new Date('2030-01-03T00:00:00Z'));
    if (!due.ok || !later.ok) throw new Error('hold refused');
    expect(await expireHolds(t.db.pool, new Date('2030-01-02T00:00:00Z'))).toBe(1);
    expect(await expireHolds(t.db.pool, new Date('2030-01-02T00:00:00Z'))).toBe(0);
    expect((await getHold(t.db.pool, due.value.hold.id))?.status).toBe('expired');
    expect((await getHold(t.db.pool, later.value.hold.id))?.status).toBe('active');
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ pendingIn: 200n });
    expect((await inTx((tx) => captureHold(tx, due.value.hold.id))).ok).toBe(false);
    await invariants();
  });

  it('placing a hold twice with one key places it once', async () => {
    const w = await wallet('u-hold-idem');
    const k = key('hi');
    const rs = await Promise.all([1, 2, 3].map(() => inTx((tx) => placeHold(tx, { idempotencyKey: k, accountId: w.id, counterAccountId: clearing.id, direction: 'in', amount: 50n }))));
    expect(new Set(rs.map((r) => (r.ok ? r.value.hold.id : '')))).toHaveLength(1);
    expect(await getBalance(t.db.pool, w.id)).toMatchObject({ pendingIn: 50n });
  });
});

describe('deposits and limits', () => {
  it('20 concurrent deposits of ¥100,000 at limit ¥1,000,000: exactly 10 succeed', async () => {
    const w = await wallet('u-race');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => inTx((tx) =>
      creditDeposit(tx, { owner: 'u-race', amount: 100_000n, sourceAccountId: clearing.id, idempotencyKey: `race-${i}`, mode: 'refusable' }))));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    const refused = results.filter((r) => !r.ok);
    expect(refused).toHaveLength(10);
    for (const r of refused) expect(r).toEqual({ ok: false, error: { code: 'balance_limit_exceeded', headroom: 0n, accountId: w.id } });
    expect(await posted(w.id)).toBe(1_000_000n);
    await invariants();
  });

  it('an unrefusable deposit over the limit credits up to the limit and escrows the rest', async () => {
    const w = await wallet('u-konbini');
    await inTx((tx) => creditDeposit(tx, { owner: 'u-konbini', amount: 950_000n, sourceAccountId: clearing.id, idempotencyKey: key('k'), mode: 'refusable' }));
    const k = key('k');
    const r = await inTx((tx) => creditDeposit(tx, { owner: 'u-konbini', amount: 80_000n, sourceAccountId: clearing.id, idempotencyKey: k, mode: 'unrefusable' }));
    expect(r.ok && { ...r.value, transactionId: 'x' }).toEqual({ transactionId: 'x', credited: 50_000n, escrowed: 30_000n, suspended: 0n, duplicate: false });
    expect(await posted(w.id)).toBe(1_000_000n);
    const escrow = await ensureAccount(t.db.pool, { kind: 'escrow', owner: 'u-konbini' });
    expect(await posted(escrow.id)).toBe(30_000n);
    // Replayed notice: the same outcome, nothing posted again.
    const again = await inTx((tx) => creditDeposit(tx, { owner: 'u-konbini', amount: 80_000n, sourceAccountId: clearing.id, idempotencyKey: k, mode: 'unrefusable' }));
    expect(again.ok && again.value).toMatchObject({ credited: 50_000n, escrowed: 30_000n, duplicate: true });
    expect(await posted(escrow.id)).toBe(30_000n);
    // The same deposit, refusable, is refused with the headroom (now zero).
    const refused = await inTx((tx) => creditDeposit(tx, { owner: 'u-konbini', amount: 1n, sourceAccountId: clearing.id, idempotencyKey: key('k'), mode: 'refusable' }));
    expect(refused.ok ? null : refused.error).toEqual({ code: 'balance_limit_exceeded', headroom: 0n, accountId: w.id });
    await invariants();
  });

  it("a restricted user's deposit goes entirely to suspense", async () => {
    const w = await wallet('u-frozen');
    await restrictOwner(t.db.pool, 'u-frozen', 'fraud review');
    const r = await inTx((tx) => creditDeposit(tx, { owner: 'u-frozen', amount: 12_345n, sourceAccountId: clearing.id, idempotencyKey: key('s'), mode: 'unrefusable' }));
    expect(r.ok && r.value).toMatchObject({ credited: 0n, escrowed: 0n, suspended: 12_345n });
    expect(await posted(w.id)).toBe(0n);
    const suspense = await ensureAccount(t.db.pool, { kind: 'suspense', owner: 'u-frozen' });
    expect(await posted(suspense.id)).toBe(12_345n);
    // Nor can anything else be posted to the frozen wallet.
    const p = await inTx((tx) => post(tx, { idempotencyKey: key('s'), entries: [{ accountId: clearing.id, amount: -1n }, { accountId: w.id, amount: 1n }] }));
    expect(p.ok ? null : p.error.code).toBe('account_restricted');
    await invariants();
  });
});

describe('one round trip, autocommit', () => {
  /** The pool, counting the statements sent through it. */
  function counting() {
    const counter = { n: 0, q: undefined as unknown as Queryable };
    counter.q = { query: (...a: unknown[]) => { counter.n++; return (t.db.pool.query as (...x: unknown[]) => unknown)(...a); } } as unknown as Queryable;
    return counter;
  }

  it('post() and creditDeposit() send one statement each, through the pool', async () => {
    const w = await wallet('u-rt');
    const c = counting();
    const r = await post(c.q, { idempotencyKey: key('rt'), entries: [{ accountId: clearing.id, amount: -10n }, { accountId: w.id, amount: 10n }] });
    expect(r.ok).toBe(true);
    expect(c.n).toBe(1);
    const d = await creditDeposit(c.q, { owner: 'u-rt-new', amount: 20n, sourceAccountId: clearing.id, idempotencyKey: key('rt'), mode: 'refusable' });
    expect(d.ok && d.value).toMatchObject({ credited: 20n, escrowed: 0n, suspended: 0n, duplicate: false });
    expect(c.n).toBe(2);
    expect(await posted(w.id)).toBe(10n);
    await invariants();
  });

  it('16 concurrent identical post() calls through the pool post once', async () => {
    const w = await wallet('u-auto-idem');
    const k = key('auto');
    const results = await Promise.all(Array.from({ length: 16 }, () =>
      post(t.db.pool, { idempotencyKey: k, entries: [{ accountId: clearing.id, amount: -900n }, { accountId: w.id, amount: 900n }] })));
    const ids = new Set(results.map((r) => (r.ok ? r.value.transactionId : 'refused')));
    expect(ids.size).toBe(1);
    expect(ids.has('refused')).toBe(false);
    expect(results.filter((r) => r.ok && !r.value.duplicate)).toHaveLength(1);
    expect(await posted(w.id)).toBe(900n);
    const n = await t.db.pool.query('SELECT count(*)::int AS n FROM ledger_transactions WHERE idempotency_key = $1', [k]);
    expect(n.rows[0].n).toBe(1);
    await invariants();
  });

  it('16 concurrent identical post() calls at the limit: one posts, the others are duplicates, not refusals', async () => {
    const w = await wallet('u-auto-full');
    await setBalanceLimit(t.db.pool, 'u-auto-full', 1_000n);
    const k = key('full');
    const results = await Promise.all(Array.from({ length: 16 }, () =>
      post(t.db.pool, { idempotencyKey: k, entries: [{ accountId: clearing.id, amount: -1_000n }, { accountId: w.id, amount: 1_000n }] })));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(results.filter((r) => r.ok && !r.value.duplicate)).toHaveLength(1);
    expect(await posted(w.id)).toBe(1_000n);
    await invariants();
  });

  it('20 concurrent deposits of ¥100,000 through the pool at limit ¥1,000,000: exactly 10 succeed', async () => {
    const w = await wallet('u-auto-race');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      creditDeposit(t.db.pool, { owner: 'u-auto-race', amount: 100_000n, sourceAccountId: clearing.id, idempotencyKey: `auto-race-${i}`, mode: 'refusable' })));
    expect(results.filter((r) => r.ok)).toHaveLength(10);
    for (const r of results.filter((x) => !x.ok)) expect(r).toEqual({ ok: false, error: { code: 'balance_limit_exceeded', headroom: 0n, accountId: w.id } });
    expect(await posted(w.id)).toBe(1_000_000n);
    // Replays return the first outcomes.
    const again = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      creditDeposit(t.db.pool, { owner: 'u-auto-race', amount: 100_000n, sourceAccountId: clearing.id, idempotencyKey: `auto-race-${i}`, mode: 'refusable' })));
    expect(again.filter((r) => r.ok && r.value.duplicate && r.value.credited === 100_000n)).toHaveLength(10);
    expect(await posted(w.id)).toBe(1_000_000n);
    await invariants();
  });

  it('16 concurrent deposits for a new user create its accounts once', async () => {
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) =>
      creditDeposit(t.db.pool, { owner: 'u-auto-new', amount: 1_000n, sourceAccountId: clearing.id, idempotencyKey: key(`new-${i}`), mode: 'unrefusable' })));
    expect(results.every((r) => r.ok && r.value.credited === 1_000n)).toBe(true);
    const n = await t.db.pool.query(`SELECT count(*)::int AS n FROM ledger_accounts WHERE owner = 'u-auto-new'`);
    expect(n.rows[0].n).toBe(3);
    expect(await posted((await wallet('u-auto-new')).id)).toBe(16_000n);
    await invariants();
  });

  it('refusals, unknown accounts and unbalanced entries write nothing', async () => {
    const w = await wallet('u-auto-none');
    const before = (await t.db.pool.query('SELECT count(*)::int AS n FROM ledger_transactions')).rows[0].n;
    const r = await post(t.db.pool, { idempotencyKey: key('none'), entries: [{ accountId: w.id, amount: -1n }, { accountId: clearing.id, amount: 1n }] });
    expect(r).toEqual({ ok: false, error: { code: 'insufficient_funds', accountId: w.id, available: 0n } });
    const ghost = '00000000-0000-7000-8000-00000000dead';
    await expect(post(t.db.pool, { idempotencyKey: key('none'), entries: [{ accountId: clearing.id, amount: -1n }, { accountId: ghost, amount: 1n }] }))
      .rejects.toThrow(`no ledger account ${ghost}`);
    await expect(post(t.db.pool, { idempotencyKey: key('none'), entries: [{ accountId: clearing.id, amount: -2n }, { accountId: w.id, amount: 1n }] }))
      .rejects.toThrow('entries do not balance: JPY sums to -1');
    await expect(creditDeposit(t.db.pool, { owner: 'u-auto-none', amount: 1n, sourceAccountId: ghost, idempotencyKey: key('none'), mode: 'refusable' }))
      .rejects.toThrow(/no ledger account/);
    const usd = await ensureAccount(t.db.pool, { kind: 'clearing', owner: 'komoju', currency: 'USD' });
    await expect(creditDeposit(t.db.pool, { owner: 'u-auto-none', amount: 1n, sourceAccountId: usd.id, idempotencyKey: key('none'), mode: 'refusable' }))
      .rejects.toThrow('deposit in JPY from an account in USD');
    expect((await t.db.pool.query('SELECT count(*)::int AS n FROM ledger_transactions')).rows[0].n).toBe(before);
    await invariants();
  });

  it('an entry list with one account twice posts each entry and nets the balance', async () => {
    const a = await wallet('u-auto-twice');
    const r = await post(t.db.pool, { idempotencyKey: key('tw'), entries: [
      { accountId: clearing.id, amount: -50n }, { accountId: a.id, amount: 30n }, { accountId: a.id, amount: 20n }] });
    if (!r.ok) throw new Error('refused');
    expect((await getTransaction(t.db.pool, r.value.transactionId))?.entries.map((e) => e.amount)).toEqual([-50n, 30n, 20n]);
    expect(await posted(a.id)).toBe(50n);
    await invariants();
  });
});

describe('deposits in batches', () => {
  it('decides each deposit in order, as if alone: shared wallets, repeated and replayed keys, restricted users, unknown sources', async () => {
    await setBalanceLimit(t.db.pool, 'u-batch-full', 10_000n);
    await restrictOwner(t.db.pool, 'u-batch-frozen', 'test');
    const replayed = key('b-old');
    await creditDeposit(t.db.pool, { owner: 'u-batch-a', amount: 100n, sourceAccountId: clearing.id, idempotencyKey: replayed, mode: 'refusable' });
    const d = (owner: string, amount: bigint, k: string, mode: 'refusable' | 'unrefusable' = 'refusable', sourceAccountId = clearing.id) =>
      ({ owner, amount, sourceAccountId, idempotencyKey: k, mode });
    const again = key('b-again');
    const out = await creditDeposits(t.db.pool, [
      d('u-batch-full', 6_000n, key('b')),                 // fits
      d('u-batch-full', 6_000n, key('b')),                 // no longer fits after the first: refused
      d('u-batch-full', 6_000n, key('b'), 'unrefusable'),  // credits the 4,000 left, escrows 2,000
      d('u-batch-a', 100n, replayed),                      // posted before: its first outcome
      d('u-batch-b', 300n, again),
      d('u-batch-b', 300n, again),                         // same key later in the batch: a duplicate of the one above
      d('u-batch-frozen', 500n, key('b')),                 // suspense
      d('u-batch-c', 100n, key('b'), 'refusable', '00000000-0000-7000-8000-00000000abcd'), // unknown source: its own error
    ]);
    const v = out.map((o) => (o instanceof Error ? o.message : o.ok ? { ...o.value, transactionId: undefined } : o.error.code));
    expect(v).toEqual([
      { credited: 6_000n, escrowed: 0n, suspended: 0n, duplicate: false, transactionId: undefined },
      'balance_limit_exceeded',
      { credited: 4_000n, escrowed: 2_000n, suspended: 0n, duplicate: false, transactionId: undefined },
      { credited: 100n, escrowed: 0n, suspended: 0n, duplicate: true, transactionId: undefined },
      { credited: 300n, escrowed: 0n, suspended: 0n, duplicate: false, transactionId: undefined },
      { credited: 300n, escrowed: 0n, suspended: 0n, duplicate: true, transactionId: undefined },
      { credited: 0n, escrowed: 0n, suspended: 500n, duplicate: false, transactionId: undefined },
      expect.stringMatching(/no ledger account/),
    ]);
    const [e, f] = [out[4], out[5]];
    if (e instanceof Error || f instanceof Error || !e?.ok || !f?.ok) throw new Error('unexpected');
    expect(f.value.transactionId).toBe(e.value.transactionId);
    await invariants();
  });

  it('DepositCreditor: 200 concurrent deposits over 5 wallets past their limit never breach it, and each key credits once', async () => {
    const creditor = new DepositCreditor(t.db.pool, { maxBatch: 16 });
    for (let i = 0; i < 5; i++) await setBalanceLimit(t.db.pool, `u-grp-${i}`, 20_000n);
    const keys = Array.from({ length: 100 }, () => key('grp'));
    // Every key is sent twice, in a shuffled order: 100 distinct deposits of ¥1,000 … ¥1,990.
    const calls = [...keys, ...keys].map((k, n) => ({ k, owner: `u-grp-${n % 5}`, amount: 1_000n + BigInt((n % 100) * 10) }))
      .sort(() => Math.random() - 0.5);
    const byKey = new Map<string, { owner: string; amount: bigint }>();
    for (const c of calls) if (!byKey.has(c.k)) byKey.set(c.k, c);
    const results = await Promise.all(calls.map((c) => {
      const first = byKey.get(c.k)!;
      return creditor.credit({ owner: first.owner, amount: first.amount, sourceAccountId: clearing.id, idempotencyKey: c.k, mode: 'refusable' });
    }));
    const credited = new Map<string, string>();
    for (const [i, r] of results.entries()) {
      if (!r.ok) continue;
      const prev = credited.get(calls[i]!.k);
      if (prev) expect(r.value.transactionId).toBe(prev); else credited.set(calls[i]!.k, r.value.transactionId);
    }
    const n = await t.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_transactions WHERE idempotency_key LIKE 'grp-%'`);
    expect(n.rows[0]!.n).toBe(credited.size);
    for (let i = 0; i < 5; i++) expect(await posted((await wallet(`u-grp-${i}`)).id)).toBeLessThanOrEqual(20_000n);
    // About ¥30,000 was offered to each wallet: the limit did refuse some.
    expect(results.some((r) => !r.ok)).toBe(true);
    await invariants();
  });
});

describe('properties', () => {
  type Op =
    | { op: 'deposit'; user: number; amount: number; unrefusable: boolean }
    | { op: 'hold'; user: number; amount: number; out: boolean }
    | { op: 'capture' | 'release'; pick: number }
    | { op: 'transfer'; from: number; to: number; amount: number }
    | { op: 'expire' };
  const users = 4;
  const amount = fc.integer({ min: 1, max: 6_000 });
  const user = fc.integer({ min: 0, max: users - 1 });
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant('deposit' as const), user, amount, unrefusable: fc.boolean() }),
    fc.record({ op: fc.constant('hold' as const), user, amount, out: fc.boolean() }),
    fc.record({ op: fc.constantFrom('capture' as const, 'release' as const), pick: fc.nat() }),
    fc.record({ op: fc.constant('transfer' as const), from: user, to: user, amount }),
    fc.constant({ op: 'expire' as const }),
  );

  it('any sequence of operations, run four at a time, keeps the ledger balanced, within limits and equal to its entries', async () => {
    let run = 0;
    const limit = 10_000n;
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 24 }), async (ops) => {
      run++;
      const owners = Array.from({ length: users }, (_, i) => `prop-${run}-${i}`);
      const wallets = await Promise.all(owners.map((o) => wallet(o)));
      // One user with a per-user limit below the default.
      await setBalanceLimit(t.db.pool, owners[0]!, 7_000n);
      const holds: string[] = [];
      const apply = async (o: Op, i: number): Promise<void> => {
        const k = `prop-${run}-${i}`;
        switch (o.op) {
          case 'deposit': {
            const r = await inTx((tx) => creditDeposit(tx, { owner: owners[o.user]!, amount: BigInt(o.amount), sourceAccountId: clearing.id, idempotencyKey: k, mode: o.unrefusable ? 'unrefusable' : 'refusable', defaultLimit: limit }));
            // An unrefusable deposit is never refused.
            if (o.unrefusable) expect(r.ok).toBe(true);
            return;
          }
          case 'hold': {
            const r = await inTx((tx) => placeHold(tx, { idempotencyKey: k, accountId: wallets[o.user]!.id, counterAccountId: clearing.id, direction: o.out ? 'out' : 'in', amount: BigInt(o.amount), defaultLimit: limit, expiresAt: new Date('2030-01-01T00:00:00Z') }));
            if (r.ok) holds.push(r.value.hold.id);
            return;
          }
          case 'capture':
          case 'release': {
            const id = holds[o.pick % Math.max(holds.length, 1)];
            if (id) await inTx(async (tx) => { await (o.op === 'capture' ? captureHold(tx, id) : releaseHold(tx, id)); });
            return;
          }
          case 'transfer':
            if (o.from !== o.to) {
              await inTx((tx) => post(tx, { idempotencyKey: k, entries: [{ accountId: wallets[o.from]!.id, amount: -BigInt(o.amount) }, { accountId: wallets[o.to]!.id, amount: BigInt(o.amount) }] }, { defaultLimit: limit }));
            }
            return;
          case 'expire':
            await expireHolds(t.db.pool, new Date('2031-01-01T00:00:00Z'));
        }
      };
      // Invariants after every step (each batch of four concurrent operations), not only at the end.
      for (let i = 0; i < ops.length; i += 4) {
        await Promise.all(ops.slice(i, i + 4).map((o, j) => apply(o, i + j)));
        await invariants({ ownerPrefix: 'prop-', limit });
      }
    }), propertyParams('ledger operations keep the ledger balanced'));
  }, 900_000);
});
