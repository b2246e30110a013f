// Builds the provider adapters that the configuration declares. Outbound calls go through the
// given dispatcher (the engine's SSRF-checking agent).
import type { Dispatcher } from 'undici';
import type { Config } from '../kernel/config.ts';
import { appStoreAdapter, appStoreVerifier } from './app-store/index.ts';
import { billingAdapter } from './billing/index.ts';
import { googlePlayRtdnAdapter } from './google-play/index.ts';
import { cardNetworkAdapter } from './card-network/index.ts';
import { komojuAdapter } from './komoju/index.ts';
import { standardWebhooksAdapter } from './standard-webhooks/index.ts';
import { stripeAdapter } from './stripe/index.ts';
import type { ProviderAdapter } from './types.ts';

export type ProviderRegistry = ReadonlyMap<string, ProviderAdapter>;

export function buildProviders(
  config: Pick<Config, 'providers'>,
  extra: readonly ProviderAdapter[] = [],
  dispatcher?: Dispatcher,
): ProviderRegistry {
  const out = new Map<string, ProviderAdapter>();
  const via = dispatcher ? { dispatcher } : {};
  for (const [name, p] of Object.entries(config.providers)) {
    switch (p.kind) {
      case 'standard-webhooks':
        out.set(name, standardWebhooksAdapter(name, { secrets: p.secrets, toleranceSeconds: p.toleranceSeconds }));
        break;
      case 'card-network':
        out.set(name, cardNetworkAdapter(name, { secrets: p.secrets, toleranceSeconds: p.toleranceSeconds }));
        break;
      case 'stripe':
        out.set(name, stripeAdapter(name, {
          secretKey: p.secretKey, webhookSecrets: p.webhookSecrets, toleranceSeconds: p.toleranceSeconds, ...via,
          ...(p.apiBase ? { apiBase: p.apiBase } : {}),
          ...(p.apiVersion ? { apiVersion: p.apiVersion } : {}),
          ...(p.searchLagSeconds !== undefined ? { searchLagSeconds: p.searchLagSeconds } : {}),
        }));
        break;
      case 'komoju':
        out.set(name, komojuAdapter(name, { secretKey: p.secretKey, webhookSecrets: p.webhookSecrets, apiBase: p.apiBase, ...via }));
        break;
      case 'billing':
        out.set(name, billingAdapter({ name, apiBase: p.apiBase, apiKey: p.apiKey, ...via }));
        break;
      case 'app-store':
        out.set(name, appStoreAdapter(name, appStoreVerifier(p)));
        break;
      case 'google-play':
        out.set(name, googlePlayRtdnAdapter(name, p.pubsub));
        break;
    }
  }
  for (const a of extra) out.set(a.name, a);
  return out;
}
