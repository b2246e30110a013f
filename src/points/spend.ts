// Spending and expiry: points leave the oldest lots first, and every change is a ledger posting
// against the issuing account, with a history row saying why.
import type pg from 'pg';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { getBalance } from '../ledger/index.ts';
import { pointsAccounts, postPoints } from './accounts.ts';
import { consumeLots, openLotPoints } from './lots.ts';

const LOCK_USER_LOTS = `SELECT id FROM points_lots WHERE user_id = $1 AND remaining > 0 ORDER BY expires_at, id FOR UPDATE`;
const INSERT_HISTORY = `INSERT INTO points_history (id, user_id, kind, purchase_key, rule, provisional, confirmed, transaction_id)
VALUES ($1, $2, $3, NULL, NULL, 0, $4, $5)`;
const DUE_LOTS = `SELECT id, user_id, remaining::text FROM points_lots WHERE remaining > 0 AND expires_at <= $1
ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`;
const EXPIRE_LOT = `UPDATE points_lots SET remaining = 0 WHERE id = $1`;

export type SpendError = { code: 'insufficient_points'; available: bigint };

/** Spends `points` of a user's confirmed points, oldest lots first; refused when they do not have them. */
export async function spendPoints(pool: pg.Pool, userId: string, points: bigint): Promise<Result<{ spent: bigint; balance: bigint; transactionId: string }, SpendError>> {
  return withTx(pool, async (tx) => {
    await tx.query(LOCK_USER_LOTS, [userId]);
    const accounts = await pointsAccounts(tx, userId);
    const posted = (await getBalance(tx, accounts.points))?.posted ?? 0n;
    const inLots = await openLotPoints(tx, userId);
    // A clawback of points already spent leaves the balance below the lots: the lower one is what can be spent.
    const available = posted < inLots ? posted : inLots;
    if (available < points) return err({ code: 'insufficient_points' as const, available: available < 0n ? 0n : available });
    await consumeLots(tx, userId, points);
    const id = uuidv7();
    const txId = await postPoints(tx, accounts, { confirmed: -points, provisional: 0n }, { idempotencyKey: `points-spend:${id}`, kind: 'points_spend', metadata: { spend_id: id } });
    await tx.query(INSERT_HISTORY, [id, userId, 'spend', (-points).toString(), txId]);
    return ok({ spent: points, balance: posted - points, transactionId: txId });
  });
}

/** Expires lots past their date (up to `limit`); returns how many lots it expired. */
export async function expireLots(pool: pg.Pool, now: Date, limit = 500): Promise<number> {
  return withTx(pool, async (tx) => {
    const due = (await tx.query<{ id: string; user_id: string; remaining: string }>(DUE_LOTS, [now, limit])).rows;
    for (const lot of due) await expireLot(tx, lot);
    return due.length;
  });
}

async function expireLot(tx: Tx, lot: { id: string; user_id: string; remaining: string }): Promise<void> {
  const amount = BigInt(lot.remaining);
  await tx.query(EXPIRE_LOT, [lot.id]);
  const accounts = await pointsAccounts(tx, lot.user_id);
  const txId = await postPoints(tx, accounts, { confirmed: -amount, provisional: 0n }, { idempotencyKey: `points-expiry:${lot.id}`, kind: 'points_expiry', metadata: { lot_id: lot.id } });
  await tx.query(INSERT_HISTORY, [uuidv7(), lot.user_id, 'expiry', (-amount).toString(), txId]);
}

export interface PointsBalance { userId: string; provisional: bigint; confirmed: bigint; expiringSoon: bigint; expiringBefore: Date }
export interface PointsHistoryEntry { id: string; kind: string; purchaseKey: string | null; rule: string | null; provisional: bigint; confirmed: bigint; transactionId: string; createdAt: Date }

/** A user's provisional and confirmed points (from the ledger) and what expires within `soonDays`. */
export async function pointsBalance(q: Queryable, userId: string, now: Date, soonDays: number): Promise<PointsBalance> {
  const r = await q.query<{ kind: string; posted: string }>(
    `SELECT a.kind, coalesce(sum(b.posted), 0)::text AS posted FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
     WHERE a.owner = $1 AND a.currency = 'PTS' AND a.kind IN ('points', 'points_provisional') GROUP BY a.kind`, [userId]);
  const of = (k: string) => BigInt(r.rows.find((x) => x.kind === k)?.posted ?? '0');
  const before = new Date(now.getTime() + soonDays * 86_400_000);
  const soon = await q.query<{ n: string }>(`SELECT coalesce(sum(remaining), 0)::text AS n FROM points_lots WHERE user_id = $1 AND remaining > 0 AND expires_at < $2`, [userId, before]);
  return { userId, provisional: of('points_provisional'), confirmed: of('points'), expiringSoon: BigInt(soon.rows[0]!.n), expiringBefore: before };
}

/** Newest first; `startingAfter` is the last id of the previous page. */
export async function pointsHistory(q: Queryable, userId: string, limit = 100, startingAfter?: string): Promise<PointsHistoryEntry[]> {
  const r = await q.query<{ id: string; kind: string; purchase_key: string | null; rule: string | null; provisional: string; confirmed: string; transaction_id: string; created_at: Date }>(
    `SELECT id, kind, purchase_key, rule, provisional::text, confirmed::text, transaction_id, created_at FROM points_history
     WHERE user_id = $1 AND ($3::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM points_history WHERE id = $3))
     ORDER BY created_at DESC, id DESC LIMIT $2`, [userId, limit, startingAfter ?? null]);
  return r.rows.map((x) => ({
    id: x.id, kind: x.kind, purchaseKey: x.purchase_key, rule: x.rule, provisional: BigInt(x.provisional), confirmed: BigInt(x.confirmed),
    transactionId: x.transaction_id, createdAt: x.created_at,
  }));
}
