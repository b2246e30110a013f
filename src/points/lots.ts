// Lots of confirmed points: each confirmation makes one, expiring after the configured months.
// Points leave lots oldest first (spending, expiry), or a clawed-back purchase's own lot first.
import type { Tx } from '../kernel/db.ts';

const OPEN_LOTS = `SELECT id, purchase_key, remaining::text FROM points_lots WHERE user_id = $1 AND remaining > 0
ORDER BY (purchase_key = $2) DESC, expires_at, id FOR UPDATE`;
const TAKE = `UPDATE points_lots SET remaining = remaining - $2 WHERE id = $1`;

/**
 * Takes `amount` points out of a user's open lots (a named purchase's first, then oldest first)
 * and returns how many it found; less than asked only when the user has already spent them.
 */
export async function consumeLots(tx: Tx, userId: string, amount: bigint, o: { preferPurchase?: string } = {}): Promise<bigint> {
  const lots = (await tx.query<{ id: string; remaining: string }>(OPEN_LOTS, [userId, o.preferPurchase ?? ''])).rows;
  let left = amount;
  for (const lot of lots) {
    if (left === 0n) break;
    const take = BigInt(lot.remaining) < left ? BigInt(lot.remaining) : left;
    await tx.query(TAKE, [lot.id, take.toString()]);
    left -= take;
  }
  return amount - left;
}

/** Points in a user's open lots. */
export async function openLotPoints(tx: Tx, userId: string): Promise<bigint> {
  const r = await tx.query<{ n: string }>(`SELECT coalesce(sum(remaining), 0)::text AS n FROM points_lots WHERE user_id = $1`, [userId]);
  return BigInt(r.rows[0]!.n);
}
