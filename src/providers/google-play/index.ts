// Google Play: purchases.subscriptionsv2.get with the real field names, and its simulator.
export { getSubscriptionV2, subscriptionPath, DEFAULT_API_BASE, type GooglePlayClientOptions, type GooglePlayRefusal } from './client.ts';
export { factsOf, subscriptionPurchaseV2, SUBSCRIPTION_STATES, type GooglePlayFacts, type SubscriptionPurchaseV2, type SubscriptionState } from './subscription.ts';
export { GooglePlaySimulator, JWKS_PATH, type GooglePlayFaults, type GooglePlaySimulatorOptions, type OidcClaims, type RtdnPush } from './simulator.ts';
export { GOOGLE_NOTIFICATION_TYPES, googlePlayRtdnAdapter, normalizeRtdn, verifyPush, type PubSubAuth } from './rtdn.ts';
