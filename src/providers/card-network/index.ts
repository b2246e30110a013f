// The card network as a provider: signed with Standard Webhooks (verified, stored raw by intake like
// any provider), normalised into `card.*` topics with merchant_category, country and user attributes.
import type { CanonicalEvent, ProviderAdapter } from '../types.ts';
import { parseJsonBody } from '../shared.ts';
import { err } from '../../kernel/errors.ts';
import type { Result } from '../../kernel/errors.ts';
import { standardWebhooksAdapter, type StandardWebhooksOptions } from '../standard-webhooks/index.ts';
import { z } from 'zod';
import { normalizeCardEvent } from './events.ts';

export { CARD_TOPICS, normalizeCardEvent, isCardNetworkEventType, type CardEventPayload, type CardNetworkEventType, type CardTopic } from './events.ts';
export { CardNetworkSimulator, type CardScenario, type NetworkEvent, type CardNetworkFaults } from './simulator.ts';

const envelope = z.object({ type: z.string().min(1).max(200), timestamp: z.string().optional(), data: z.unknown() });

export function cardNetworkAdapter(name: string, opts: StandardWebhooksOptions): ProviderAdapter {
  // Verification is Standard Webhooks' as it is; only what the events mean is the network's own.
  const signed = standardWebhooksAdapter(name, opts);
  return {
    ...signed,
    kind: 'card-network',
    normalize(stored): Result<CanonicalEvent[], string> {
      const parsed = parseJsonBody(stored.body, envelope, 'a card network event');
      if (!parsed.ok) return err(parsed.error);
      return normalizeCardEvent(parsed.value.type, parsed.value.timestamp, parsed.value.data);
    },
  };
}
