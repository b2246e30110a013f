// What a purchase is worth in points, as a pure function of the set of its card events: the order
// and repetition of events cannot change it. Rules pick a rate by merchant category.
import type { Config } from '../kernel/config.ts';

export type PointsConfig = NonNullable<Config['points']>;
export type CardTopic = 'card.authorized' | 'card.reversed' | 'card.expired' | 'card.cleared' | 'card.refunded';

export interface AppliedRule { name: string; rateBp: number }

/** The first rule naming the merchant category, else the default rate (rule "default"). */
export function ruleFor(cfg: Pick<PointsConfig, 'rules' | 'defaultRateBasisPoints'>, merchantCategory: string): AppliedRule {
  const r = cfg.rules.find((x) => x.merchantCategories.includes(merchantCategory));
  return r ? { name: r.name, rateBp: r.rateBasisPoints } : { name: 'default', rateBp: cfg.defaultRateBasisPoints };
}

/** Points for an amount in yen at a rate in basis points, rounded down. */
export function pointsFor(amountJpy: bigint, rateBp: number): bigint {
  return amountJpy <= 0n ? 0n : (amountJpy * BigInt(rateBp)) / 10_000n;
}

export interface PurchaseEvents {
  authorized: bigint;
  authSeen: boolean;
  reversed: bigint;
  expired: boolean;
  cleared: bigint;
  refunded: bigint;
}

/** Sums a purchase's distinct events by kind. */
export function summarize(events: readonly { topic: CardTopic; amountJpy: bigint }[]): PurchaseEvents {
  const s: PurchaseEvents = { authorized: 0n, authSeen: false, reversed: 0n, expired: false, cleared: 0n, refunded: 0n };
  for (const e of events) {
    switch (e.topic) {
      case 'card.authorized': s.authorized += e.amountJpy; s.authSeen = true; break;
      case 'card.reversed': s.reversed += e.amountJpy; break;
      case 'card.expired': s.expired = true; break;
      case 'card.cleared': s.cleared += e.amountJpy; break;
      case 'card.refunded': s.refunded += e.amountJpy; break;
    }
  }
  return s;
}

/**
 * Where a purchase's points should stand. Provisional: the authorized amount not yet reversed or
 * cleared, until the authorization expires. Confirmed: the cleared amount less refunds (so a
 * partial refund takes its share back, pro rata).
 */
export function targetPoints(s: PurchaseEvents, rateBp: number): { provisional: bigint; confirmed: bigint } {
  const open = s.authSeen && !s.expired ? s.authorized - s.reversed - s.cleared : 0n;
  return { provisional: pointsFor(open, rateBp), confirmed: pointsFor(s.cleared - s.refunded, rateBp) };
}
