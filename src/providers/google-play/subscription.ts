// Google Play's SubscriptionPurchaseV2 (purchases.subscriptionsv2.get) with its real field names,
// validated at the edge, and read into the few facts the in-app purchase facade needs.
import { z } from 'zod';

export const SUBSCRIPTION_STATES = [
  'SUBSCRIPTION_STATE_UNSPECIFIED', 'SUBSCRIPTION_STATE_PENDING', 'SUBSCRIPTION_STATE_ACTIVE', 'SUBSCRIPTION_STATE_PAUSED',
  'SUBSCRIPTION_STATE_IN_GRACE_PERIOD', 'SUBSCRIPTION_STATE_ON_HOLD', 'SUBSCRIPTION_STATE_CANCELED', 'SUBSCRIPTION_STATE_EXPIRED',
  'SUBSCRIPTION_STATE_PENDING_PURCHASE_CANCELED',
] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

const lineItem = z.object({
  productId: z.string().min(1),
  expiryTime: z.string().datetime({ offset: true }).optional(),
  autoRenewingPlan: z.object({ autoRenewEnabled: z.boolean().optional() }).passthrough().optional(),
  prepaidPlan: z.object({}).passthrough().optional(),
  offerDetails: z.object({ basePlanId: z.string().optional(), offerId: z.string().optional(), offerTags: z.array(z.string()).optional() }).passthrough().optional(),
  latestSuccessfulOrderId: z.string().optional(),
}).passthrough();

export const subscriptionPurchaseV2 = z.object({
  kind: z.literal('androidpublisher#subscriptionPurchaseV2'),
  regionCode: z.string().optional(),
  lineItems: z.array(lineItem).min(1),
  startTime: z.string().datetime({ offset: true }).optional(),
  subscriptionState: z.enum(SUBSCRIPTION_STATES),
  latestOrderId: z.string().optional(),
  linkedPurchaseToken: z.string().optional(),
  acknowledgementState: z.enum(['ACKNOWLEDGEMENT_STATE_UNSPECIFIED', 'ACKNOWLEDGEMENT_STATE_PENDING', 'ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED']).optional(),
  externalAccountIdentifiers: z.object({ obfuscatedExternalAccountId: z.string().optional(), obfuscatedExternalProfileId: z.string().optional() }).passthrough().optional(),
  testPurchase: z.object({}).passthrough().optional(),
}).passthrough();
export type SubscriptionPurchaseV2 = z.infer<typeof subscriptionPurchaseV2>;

/** What the facade needs of a Google subscription: its product, its end, whether it entitles now, and the token it replaced. */
export interface GooglePlayFacts {
  purchaseToken: string;
  linkedPurchaseToken: string | undefined;
  productIds: string[];
  expiresAt: Date | undefined;
  state: SubscriptionState;
  /** Active or in grace period: the member is entitled now. */
  entitled: boolean;
  autoRenewing: boolean;
  test: boolean;
}

export function factsOf(purchaseToken: string, p: SubscriptionPurchaseV2): GooglePlayFacts {
  const ends = p.lineItems.map((l) => (l.expiryTime ? Date.parse(l.expiryTime) : Number.NaN)).filter((n) => !Number.isNaN(n));
  return {
    purchaseToken,
    linkedPurchaseToken: p.linkedPurchaseToken,
    productIds: p.lineItems.map((l) => l.productId),
    expiresAt: ends.length ? new Date(Math.max(...ends)) : undefined,
    state: p.subscriptionState,
    entitled: p.subscriptionState === 'SUBSCRIPTION_STATE_ACTIVE' || p.subscriptionState === 'SUBSCRIPTION_STATE_IN_GRACE_PERIOD',
    autoRenewing: p.lineItems.some((l) => l.autoRenewingPlan?.autoRenewEnabled === true),
    test: p.testPurchase !== undefined,
  };
}
