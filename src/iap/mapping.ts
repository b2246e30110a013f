// The id mapping of in-app purchases: a store subscription (Apple originalTransactionId,
// Google purchaseToken and its linkedPurchaseToken chain) maps to one internal subscription id and one
// member. A second member claiming it is refused (409) and a case is opened, with both members named.
import { openCase } from '../cases/index.ts';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type pg from 'pg';

export type IapPlatform = 'app_store' | 'google_play';

export interface StoreClaim {
  platform: IapPlatform;
  /** originalTransactionId (App Store) or purchaseToken (Google Play). */
  storeId: string;
  /** Google's linkedPurchaseToken: the token this purchase replaced (an upgrade or downgrade). */
  linkedStoreId?: string | undefined;
  memberId: string;
  productId: string;
  expiresAt?: Date | undefined;
}

export interface IapSubscription { id: string; member_id: string; platform: IapPlatform; product_id: string; expires_at: Date | null; state: string; auto_renew: boolean; created_at: Date; updated_at: Date }

export type ClaimRefusal = { code: 'claimed_by_another_member'; subscriptionId: string; ownerMemberId: string };

const FIND = `
SELECT s.* FROM iap_store_ids i JOIN iap_subscriptions s ON s.id = i.subscription_id
WHERE i.platform = $1 AND i.store_id = ANY($2::text[])
ORDER BY (i.store_id = $3) DESC LIMIT 1 FOR UPDATE OF s`;
const CLAIM_ID = `INSERT INTO iap_store_ids (platform, store_id, subscription_id, linked_from) VALUES ($1, $2, $3, $4)
ON CONFLICT (platform, store_id) DO NOTHING RETURNING subscription_id`;
const INSERT_SUBSCRIPTION = `INSERT INTO iap_subscriptions (id, member_id, platform, product_id, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING *`;
const UPDATE_SUBSCRIPTION = `UPDATE iap_subscriptions SET product_id = $2, expires_at = GREATEST(expires_at, $3), updated_at = now()
WHERE id = $1 RETURNING *`;

/**
 * Finds or creates the internal subscription of a store subscription for `memberId`, in the caller's
 * transaction. The same member again gets the same id (`created: false`); an upgrade's new token is
 * added to the subscription of the token it links to; another member is refused.
 */
export async function claimStoreSubscription(tx: Tx, c: StoreClaim): Promise<Result<{ subscription: IapSubscription; created: boolean }, ClaimRefusal>> {
  const ids = c.linkedStoreId ? [c.storeId, c.linkedStoreId] : [c.storeId];
  // Bounded: a round ends in a find, or in winning the store id; losing a race sends us round once more.
  for (let round = 0; round < 3; round++) {
    const found = (await tx.query<IapSubscription>(FIND, [c.platform, ids, c.storeId])).rows[0];
    if (found) {
      if (found.member_id !== c.memberId) return err({ code: 'claimed_by_another_member', subscriptionId: found.id, ownerMemberId: found.member_id });
      await tx.query(CLAIM_ID, [c.platform, c.storeId, found.id, c.linkedStoreId ?? null]);
      const updated = (await tx.query<IapSubscription>(UPDATE_SUBSCRIPTION, [found.id, c.productId, c.expiresAt ?? null])).rows[0]!;
      return ok({ subscription: updated, created: false });
    }
    const id = uuidv7();
    // The store id first: its primary key decides between two first claims; the loser waits, then finds the winner's.
    const won = await tx.query(CLAIM_ID, [c.platform, c.storeId, id, c.linkedStoreId ?? null]);
    if (!won.rowCount) continue;
    const sub = (await tx.query<IapSubscription>(INSERT_SUBSCRIPTION, [id, c.memberId, c.platform, c.productId, c.expiresAt ?? null])).rows[0]!;
    return ok({ subscription: sub, created: true });
  }
  throw new Error(`could not claim ${c.platform} subscription ${c.storeId}`);
}

/** Opens (or counts again) the case about a store subscription a second member claimed; in its own transaction. */
export async function reportClaimConflict(pool: pg.Pool, c: StoreClaim, refusal: ClaimRefusal): Promise<string> {
  return withTx(pool, async (tx) => (await openCase(tx, {
    kind: 'iap', cause: 'iap_claimed_by_another_member', subject: { type: 'iap_subscription', id: refusal.subscriptionId },
    summary: `${c.platform} subscription ${c.storeId} belongs to member ${refusal.ownerMemberId}; member ${c.memberId} claimed it`,
    details: { platform: c.platform, store_id: c.storeId, owner_member_id: refusal.ownerMemberId, claiming_member_id: c.memberId, product_id: c.productId },
  })).id);
}

/** The internal subscription a store id maps to, if any. */
export async function subscriptionOfStoreId(q: Queryable, platform: IapPlatform, storeId: string): Promise<IapSubscription | null> {
  const r = await q.query<IapSubscription>(
    'SELECT s.* FROM iap_store_ids i JOIN iap_subscriptions s ON s.id = i.subscription_id WHERE i.platform = $1 AND i.store_id = $2', [platform, storeId]);
  return r.rows[0] ?? null;
}
