// Google Play: purchases.subscriptionsv2.get with the real field names, and its simulator.
export { getSubscriptionV2, subscriptionPath, DEFAULT_API_BASE, type GooglePlayClientOptions, type GooglePlayRefusal } from './client.ts';
export { factsOf, subscriptionPurchaseV2, SUBSCRIPTION_STATES, type GooglePlayFacts, type SubscriptionPurchaseV2, type SubscriptionState } from './subscription.ts';
export { GooglePlaySimulator, type GooglePlayFaults, type GooglePlaySimulatorOptions } from './simulator.ts';
