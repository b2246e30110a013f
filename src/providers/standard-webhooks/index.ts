// The generic provider kind `standard-webhooks`: any sender that signs with the Standard Webhooks
// scheme. Event id = `webhook-id`; the body is `{ type, timestamp, data }` as the spec recommends.
import { z } from 'zod';
import { err, ok } from '../../kernel/errors.ts';
import { keepHeaders, parseJsonBody } from '../shared.ts';
import type { CanonicalEvent, IncomingNotification, ProviderAdapter } from '../types.ts';
import { DEFAULT_TOLERANCE_SECONDS, secretKey, verifySignature } from './signature.ts';

export { sign, signedHeaders, verifySignature, secretKey } from './signature.ts';

const KEPT_HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type', 'user-agent'] as const;

const payloadSchema = z.object({
  type: z.string().min(1).max(200),
  timestamp: z.string().optional(),
  data: z.record(z.string(), z.unknown()).default({}),
});

export interface StandardWebhooksOptions {
  secrets: readonly string[];
  toleranceSeconds?: number;
}

export function standardWebhooksAdapter(name: string, opts: StandardWebhooksOptions): ProviderAdapter {
  const keys = opts.secrets.map(secretKey);
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  return {
    name,
    kind: 'standard-webhooks',
    eventId: (req) => req.headers['webhook-id'],
    verify(req: IncomingNotification) {
      const check = verifySignature(
        keys,
        { id: req.headers['webhook-id'], timestamp: req.headers['webhook-timestamp'], signature: req.headers['webhook-signature'] },
        req.rawBody,
        req.receivedAt,
        tolerance,
      );
      if (!check.ok) return err({ code: 'invalid_signature', message: signatureMessage(check.reason) });
      const eventId = req.headers['webhook-id']!;
      if (eventId.length > 255) return err({ code: 'unparseable', message: 'webhook-id is longer than 255 characters' });
      // A body that is not a Standard Webhooks JSON payload is refused now, while the sender can still fix it.
      const parsed = parseBody(req.rawBody);
      if (!parsed.ok) return err({ code: 'unparseable', message: parsed.error });
      return ok({ eventId, headers: keepHeaders(req.headers, KEPT_HEADERS) });
    },
    normalize(stored) {
      const parsed = parseBody(stored.body);
      if (!parsed.ok) return parsed;
      const { type, timestamp, data } = parsed.value;
      const event: CanonicalEvent = { type, data };
      if (timestamp !== undefined) event.occurredAt = timestamp;
      const id = data.id;
      if (typeof id === 'string' || typeof id === 'number') {
        event.entityType = typeof data.object === 'string' ? data.object : type.split('.')[0]!;
        event.entityId = String(id);
      }
      return ok([event]);
    },
  };
}

function parseBody(body: Buffer) {
  return parseJsonBody(body, payloadSchema, 'a Standard Webhooks payload');
}

function signatureMessage(reason: string): string {
  switch (reason) {
    case 'missing_headers': return 'webhook-id, webhook-timestamp and webhook-signature headers are required';
    case 'bad_timestamp': return 'webhook-timestamp is not a Unix timestamp in seconds';
    case 'stale_timestamp': return 'webhook-timestamp is outside the tolerance window';
    default: return 'no signature in webhook-signature matches';
  }
}
