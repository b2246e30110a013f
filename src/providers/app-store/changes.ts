// Apple's notificationType / subtype (Server Notifications V2, by their real names) as the change
// they make to a subscription. Types that change nothing we keep (PRICE_INCREASE, TEST, …) map to undefined.
export const IAP_CHANGES = [
  'subscribed', 'renewed', 'renewal_failed', 'grace_period', 'recovered', 'expired', 'refunded', 'revoked',
  'auto_renew_off', 'auto_renew_on', 'product_changed', 'refund_reversed',
] as const;
export type IapChange = (typeof IAP_CHANGES)[number];

/** Data, not code: (notificationType, subtype | '*') → change. */
const APPLE: Readonly<Record<string, Readonly<Record<string, IapChange>>>> = {
  SUBSCRIBED: { INITIAL_BUY: 'subscribed', RESUBSCRIBE: 'subscribed', '*': 'subscribed' },
  DID_RENEW: { BILLING_RECOVERY: 'recovered', '*': 'renewed' },
  DID_FAIL_TO_RENEW: { GRACE_PERIOD: 'grace_period', '*': 'renewal_failed' },
  GRACE_PERIOD_EXPIRED: { '*': 'expired' },
  EXPIRED: { VOLUNTARY: 'expired', BILLING_RETRY: 'expired', PRICE_INCREASE: 'expired', PRODUCT_NOT_FOR_SALE: 'expired', '*': 'expired' },
  REFUND: { '*': 'refunded' },
  REFUND_REVERSED: { '*': 'refund_reversed' },
  REVOKE: { '*': 'revoked' },
  DID_CHANGE_RENEWAL_STATUS: { AUTO_RENEW_DISABLED: 'auto_renew_off', AUTO_RENEW_ENABLED: 'auto_renew_on' },
  DID_CHANGE_RENEWAL_PREF: { UPGRADE: 'product_changed', DOWNGRADE: 'product_changed' },
  OFFER_REDEEMED: { UPGRADE: 'product_changed', DOWNGRADE: 'product_changed' },
};

export function appleChangeOf(notificationType: string, subtype?: string | undefined): IapChange | undefined {
  const row = APPLE[notificationType];
  return row ? (subtype ? row[subtype] : undefined) ?? row['*'] : undefined;
}
