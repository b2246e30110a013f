// The points consumer: reads card.* messages (their payload only; nothing of payments' tables),
// records each card event once, recomputes the purchase's target from all its events, and posts the
// difference to the ledger, so duplicates and any order of arrival end in the same balances.
import { z } from 'zod';
import type { Tx } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type { Consumer, DeliveredMessage } from '../outbox/index.ts';
import { pointsAccounts, postPoints } from './accounts.ts';
import { consumeLots } from './lots.ts';
import { ruleFor, summarize, targetPoints, type CardTopic, type PointsConfig } from './rules.ts';

const TOPICS = ['card.authorized', 'card.reversed', 'card.expired', 'card.cleared', 'card.refunded'] as const;
const jpy = z.string().regex(/^\d{1,18}$/).transform((s) => BigInt(s));
const messageSchema = z.object({
  topic: z.enum(TOPICS),
  payload: z.object({
    provider: z.string(),
    event_id: z.string(),
    data: z.object({
      authorization_id: z.string().nullable(), clearing_id: z.string().nullable(), refund_id: z.string().nullable(),
      user_id: z.string().min(1), merchant_category: z.string(), amount_jpy: jpy,
    }),
  }),
});

const RECORD_EVENT = `INSERT INTO points_card_events (event_key, purchase_key, topic, amount_jpy) VALUES ($1, $2, $3, $4)
ON CONFLICT (event_key) DO NOTHING`;
const ENSURE_PURCHASE = `INSERT INTO points_purchases (purchase_key, user_id, merchant_category, rule, rate_bp) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (purchase_key) DO NOTHING`;
const LOCK_PURCHASE = `SELECT user_id, rule, rate_bp, provisional::text, confirmed::text, version FROM points_purchases WHERE purchase_key = $1 FOR UPDATE`;
const EVENTS_OF = `SELECT topic, amount_jpy::text FROM points_card_events WHERE purchase_key = $1`;
const UPDATE_PURCHASE = `UPDATE points_purchases SET provisional = $2, confirmed = $3, version = $4, updated_at = now() WHERE purchase_key = $1`;
const INSERT_LOT = `INSERT INTO points_lots (id, user_id, purchase_key, amount, remaining, confirmed_at, expires_at)
VALUES ($1, $2, $3, $4, $4, $5, $5::timestamptz + make_interval(months => $6))`;
const INSERT_HISTORY = `INSERT INTO points_history (id, user_id, kind, purchase_key, rule, provisional, confirmed, transaction_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`;

export interface PointsDeps { config: PointsConfig; now: () => Date }

export function pointsConsumer(deps: PointsDeps): Consumer {
  return { handle: ({ tx }, m) => applyCardMessage(tx, deps, m) };
}

/** The purchase a card event belongs to: its authorization, or the clearing that came without one. */
export function purchaseKeyOf(d: { authorization_id: string | null; clearing_id: string | null; refund_id: string | null }): string {
  return d.authorization_id ?? `clearing:${d.clearing_id ?? d.refund_id}`;
}

/** Applies one card.* message in `tx`; a message seen before changes nothing. */
export async function applyCardMessage(tx: Tx, deps: PointsDeps, m: Pick<DeliveredMessage, 'topic' | 'payload'>): Promise<void> {
  const parsed = messageSchema.safeParse(m);
  // Not a card event points understands: a broken producer, so the delivery fails and shows why.
  if (!parsed.success) throw new Error(`points cannot read a ${m.topic} message: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  const { topic, payload: { provider, event_id: eventId, data } } = parsed.data;
  const key = purchaseKeyOf(data);
  const fresh = await tx.query(RECORD_EVENT, [`${provider}:${eventId}`, key, topic, data.amount_jpy.toString()]);
  if (fresh.rowCount === 0) return;
  const rule = ruleFor(deps.config, data.merchant_category);
  await tx.query(ENSURE_PURCHASE, [key, data.user_id, data.merchant_category, rule.name, rule.rateBp]);
  await settlePurchase(tx, deps, key);
}

/** Brings a purchase's posted points to its target; posts and records only the difference. */
export async function settlePurchase(tx: Tx, deps: PointsDeps, key: string): Promise<void> {
  const p = (await tx.query<{ user_id: string; rule: string; rate_bp: number; provisional: string; confirmed: string; version: number }>(LOCK_PURCHASE, [key])).rows[0]!;
  const events = (await tx.query<{ topic: CardTopic; amount_jpy: string }>(EVENTS_OF, [key])).rows;
  const target = targetPoints(summarize(events.map((e) => ({ topic: e.topic, amountJpy: BigInt(e.amount_jpy) }))), p.rate_bp);
  const change = { provisional: target.provisional - BigInt(p.provisional), confirmed: target.confirmed - BigInt(p.confirmed) };
  if (change.provisional === 0n && change.confirmed === 0n) return;
  const version = p.version + 1;
  const accounts = await pointsAccounts(tx, p.user_id);
  const txId = await postPoints(tx, accounts, change, {
    idempotencyKey: `points:${key}:${version}`, kind: 'points_award', metadata: { purchase_key: key, rule: p.rule, rate_bp: p.rate_bp },
  });
  await tx.query(UPDATE_PURCHASE, [key, target.provisional.toString(), target.confirmed.toString(), version]);
  const now = deps.now();
  if (change.confirmed > 0n) await tx.query(INSERT_LOT, [uuidv7(), p.user_id, key, change.confirmed.toString(), now, deps.config.expiryMonths]);
  if (change.confirmed < 0n) await consumeLots(tx, p.user_id, -change.confirmed, { preferPurchase: key });
  await tx.query(INSERT_HISTORY, [uuidv7(), p.user_id, 'award', key, p.rule, change.provisional.toString(), change.confirmed.toString(), txId]);
}
