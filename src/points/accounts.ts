// The ledger accounts points live in: asset 'PTS', a user's confirmed and provisional points, and
// the platform's issuing account that is the other side of every award, spend and expiry.
import type { Queryable } from '../kernel/db.ts';
import { ensureAccounts, post, type EntryInput } from '../ledger/index.ts';

export const POINTS_ASSET = 'PTS';

export interface PointsAccounts { points: string; provisional: string; issued: string }

export async function pointsAccounts(q: Queryable, userId: string): Promise<PointsAccounts> {
  const [points, provisional, issued] = await ensureAccounts(q, [
    { kind: 'points', owner: userId, currency: POINTS_ASSET },
    { kind: 'points_provisional', owner: userId, currency: POINTS_ASSET },
    { kind: 'points_issued', owner: '', currency: POINTS_ASSET },
  ]);
  return { points: points!.id, provisional: provisional!.id, issued: issued!.id };
}

/** Posts changes to a user's confirmed and provisional points against the issuing account; returns the transaction id. */
export async function postPoints(
  q: Queryable, a: PointsAccounts, change: { confirmed: bigint; provisional: bigint },
  o: { idempotencyKey: string; kind: string; metadata: Record<string, unknown> },
): Promise<string> {
  const entries: EntryInput[] = [];
  if (change.confirmed !== 0n) entries.push({ accountId: a.points, amount: change.confirmed });
  if (change.provisional !== 0n) entries.push({ accountId: a.provisional, amount: change.provisional });
  const net = change.confirmed + change.provisional;
  if (net !== 0n) entries.push({ accountId: a.issued, amount: -net });
  const r = await post(q, { idempotencyKey: o.idempotencyKey, kind: o.kind, metadata: o.metadata, entries });
  // Points accounts carry no wallet rules, so a refusal here is a broken invariant.
  if (!r.ok) throw new Error(`points posting refused: ${r.error.code}`);
  return r.value.transactionId;
}
