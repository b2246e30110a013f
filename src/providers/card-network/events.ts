// The card network's events as it sends them (Standard Webhooks envelope, amounts as decimal strings
// of minor units in the transaction currency and in JPY), and their normalisation into seigo's
// `card.*` topics with the attributes subscriptions filter on.
import { z } from 'zod';
import { err, ok, type Result } from '../../kernel/errors.ts';
import { zodIssues } from '../shared.ts';
import type { CanonicalEvent } from '../types.ts';

/** The network's event types and the topic each becomes. Any other type is stored and ignored, never refused. */
export const CARD_TOPICS = {
  authorization: 'card.authorized',
  'authorization.reversal': 'card.reversed',
  'authorization.expiry': 'card.expired',
  clearing: 'card.cleared',
  refund: 'card.refunded',
} as const;
export type CardNetworkEventType = keyof typeof CARD_TOPICS;
export type CardTopic = (typeof CARD_TOPICS)[CardNetworkEventType];

const minorUnits = z.string().regex(/^\d{1,18}$/, 'a non-negative integer of minor units, as a string');
const id = z.string().min(1).max(100);

export const cardEventDataSchema = z.object({
  /** The network's id of the authorization this event belongs to; null for a clearing or refund with none (a force post). */
  authorization_id: id.nullable(),
  clearing_id: id.optional(),
  refund_id: id.optional(),
  card_id: id,
  /** The card holder (the issuer's user token, as issuer processors pass it). */
  user_id: id,
  merchant: z.object({
    name: z.string().max(200),
    /** ISO 18245 merchant category code. */
    category_code: z.string().regex(/^\d{4}$/, 'a four-digit merchant category code'),
    country: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166 alpha-2 country code'),
  }),
  amount: z.object({ value: minorUnits, currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 currency code') }),
  /** The same amount in JPY (the card's billing currency), converted at the network's rate. */
  amount_jpy: minorUnits,
});
export type CardEventData = z.output<typeof cardEventDataSchema>;

/** What `card.*` messages carry: flat, amounts as decimal strings. */
export interface CardEventPayload {
  network_event_type: CardNetworkEventType;
  authorization_id: string | null;
  clearing_id: string | null;
  refund_id: string | null;
  card_id: string;
  user_id: string;
  merchant_name: string;
  merchant_category: string;
  country: string;
  amount: string;
  currency: string;
  amount_jpy: string;
}

export function isCardNetworkEventType(t: string): t is CardNetworkEventType {
  return Object.hasOwn(CARD_TOPICS, t);
}

/** One network event in seigo's terms; [] for a type this version does not know (the inbox marks it ignored). */
export function normalizeCardEvent(type: string, timestamp: string | undefined, data: unknown): Result<CanonicalEvent[], string> {
  if (!isCardNetworkEventType(type)) return ok([]);
  const r = cardEventDataSchema.safeParse(data);
  if (!r.success) return err(`a ${type} event needs ${zodIssues(r.error)}`);
  const d = r.data;
  const needs = type === 'clearing' ? d.clearing_id : type === 'refund' ? d.refund_id : d.authorization_id;
  if (needs === undefined || needs === null) {
    return err(`a ${type} event needs ${type === 'clearing' ? 'clearing_id' : type === 'refund' ? 'refund_id' : 'authorization_id'}`);
  }
  const payload: CardEventPayload = {
    network_event_type: type, authorization_id: d.authorization_id, clearing_id: d.clearing_id ?? null, refund_id: d.refund_id ?? null,
    card_id: d.card_id, user_id: d.user_id, merchant_name: d.merchant.name, merchant_category: d.merchant.category_code,
    country: d.merchant.country, amount: d.amount.value, currency: d.amount.currency, amount_jpy: d.amount_jpy,
  };
  const event: CanonicalEvent = {
    type: CARD_TOPICS[type],
    // Everything about one purchase shares a key: the authorization, or the clearing that came without one.
    entityType: 'card_authorization',
    entityId: d.authorization_id ?? `clearing:${d.clearing_id ?? d.refund_id}`,
    data: payload as unknown as Record<string, unknown>,
    attributes: { merchant_category: d.merchant.category_code, country: d.merchant.country, user: d.user_id },
  };
  if (timestamp !== undefined) event.occurredAt = timestamp;
  return ok([event]);
}
