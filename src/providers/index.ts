export type * from './types.ts';
export { buildProviders, type ProviderRegistry } from './registry.ts';
export { standardWebhooksAdapter, sign as signStandardWebhook, signedHeaders, verifySignature } from './standard-webhooks/index.ts';
export { stripeAdapter } from './stripe/index.ts';
export { komojuAdapter } from './komoju/index.ts';
export { cardNetworkAdapter, CARD_TOPICS, CardNetworkSimulator, type CardEventPayload } from './card-network/index.ts';
