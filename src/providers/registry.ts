// Builds the provider adapters that the configuration declares.
import type { Config } from '../kernel/config.ts';
import { standardWebhooksAdapter } from './standard-webhooks/index.ts';
import type { ProviderAdapter } from './types.ts';

export type ProviderRegistry = ReadonlyMap<string, ProviderAdapter>;

export function buildProviders(config: Pick<Config, 'providers'>, extra: readonly ProviderAdapter[] = []): ProviderRegistry {
  const out = new Map<string, ProviderAdapter>();
  for (const [name, p] of Object.entries(config.providers)) {
    switch (p.kind) {
      case 'standard-webhooks':
        out.set(name, standardWebhooksAdapter(name, { secrets: p.secrets, toleranceSeconds: p.toleranceSeconds }));
        break;
    }
  }
  for (const a of extra) out.set(a.name, a);
  return out;
}
