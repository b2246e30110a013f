// Google Play Real-time developer notifications through a Pub/Sub push subscription: the push's
// `Authorization: Bearer` OIDC token is verified with jose against Google's JWKS (URL configurable,
// so tests serve a local one), issuer, audience and the service account's email; messageId dedupes.
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { err, ok, type Result } from '../../kernel/errors.ts';
import type { IapChange } from '../app-store/index.ts';
import type { CanonicalEvent, IncomingNotification, ProviderAdapter, Verified, VerifyFailure } from '../types.ts';

export interface PubSubAuth {
  jwksUrl: string;
  issuer: readonly string[];
  audience: string;
  serviceAccountEmail: string;
}

/** SubscriptionNotification.notificationType, by Google's names (RTDN reference). */
export const GOOGLE_NOTIFICATION_TYPES: Readonly<Record<number, string>> = {
  1: 'SUBSCRIPTION_RECOVERED', 2: 'SUBSCRIPTION_RENEWED', 3: 'SUBSCRIPTION_CANCELED', 4: 'SUBSCRIPTION_PURCHASED',
  5: 'SUBSCRIPTION_ON_HOLD', 6: 'SUBSCRIPTION_IN_GRACE_PERIOD', 7: 'SUBSCRIPTION_RESTARTED', 8: 'SUBSCRIPTION_PRICE_CHANGE_CONFIRMED',
  9: 'SUBSCRIPTION_DEFERRED', 10: 'SUBSCRIPTION_PAUSED', 11: 'SUBSCRIPTION_PAUSE_SCHEDULE_CHANGED', 12: 'SUBSCRIPTION_REVOKED',
  13: 'SUBSCRIPTION_EXPIRED', 20: 'SUBSCRIPTION_PENDING_PURCHASE_CANCELED',
};

/** Data: Google's notification name → the change it makes. CANCELED is auto-renew off: the member keeps it until expiry. */
const GOOGLE_CHANGES: Readonly<Record<string, IapChange>> = {
  SUBSCRIPTION_PURCHASED: 'subscribed', SUBSCRIPTION_RENEWED: 'renewed', SUBSCRIPTION_RECOVERED: 'recovered',
  SUBSCRIPTION_IN_GRACE_PERIOD: 'grace_period', SUBSCRIPTION_ON_HOLD: 'renewal_failed', SUBSCRIPTION_CANCELED: 'auto_renew_off',
  SUBSCRIPTION_RESTARTED: 'auto_renew_on', SUBSCRIPTION_REVOKED: 'revoked', SUBSCRIPTION_EXPIRED: 'expired',
};

const pushBody = z.object({
  message: z.object({ data: z.string(), messageId: z.string().min(1), publishTime: z.string().optional(), attributes: z.record(z.string(), z.string()).optional() }).passthrough(),
  subscription: z.string().optional(),
}).passthrough();

const developerNotification = z.object({
  version: z.string().optional(),
  packageName: z.string(),
  eventTimeMillis: z.string().optional(),
  subscriptionNotification: z.object({ version: z.string().optional(), notificationType: z.number().int(), purchaseToken: z.string(), subscriptionId: z.string().optional() }).optional(),
  testNotification: z.object({ version: z.string().optional() }).optional(),
}).passthrough();

function parsePush(raw: Buffer): z.infer<typeof pushBody> | undefined {
  try {
    const r = pushBody.safeParse(JSON.parse(raw.toString('utf8')));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export async function verifyPush(keys: JWTVerifyGetKey, auth: PubSubAuth, req: IncomingNotification): Promise<Result<Verified, VerifyFailure>> {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return err({ code: 'invalid_signature', message: 'a Pub/Sub push carries an Authorization: Bearer OIDC token' });
  try {
    const { payload } = await jwtVerify(m[1]!, keys, { issuer: [...auth.issuer], audience: auth.audience, currentDate: req.receivedAt, clockTolerance: 30 });
    if (payload.email !== auth.serviceAccountEmail || payload.email_verified !== true) {
      return err({ code: 'invalid_signature', message: 'the OIDC token is not the configured service account\'s' });
    }
  } catch (e) {
    return err({ code: 'invalid_signature', message: `OIDC token refused: ${(e as { code?: string }).code ?? (e as Error).message}` });
  }
  const body = parsePush(req.rawBody);
  if (!body) return err({ code: 'unparseable', message: 'not a Pub/Sub push body { message: { data, messageId } }' });
  return ok({ eventId: body.message.messageId, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' } });
}

export function normalizeRtdn(stored: { body: Buffer }): Result<CanonicalEvent[], string> {
  const push = parsePush(stored.body);
  if (!push) return err('not a Pub/Sub push');
  let n: z.infer<typeof developerNotification>;
  try {
    const r = developerNotification.safeParse(JSON.parse(Buffer.from(push.message.data, 'base64').toString('utf8')));
    if (!r.success) return err(`not a DeveloperNotification: ${r.error.issues.map((i) => i.path.join('.')).join(', ')}`);
    n = r.data;
  } catch {
    return err('message.data is not base64 JSON');
  }
  const s = n.subscriptionNotification;
  if (!s) return ok([]);
  const name = GOOGLE_NOTIFICATION_TYPES[s.notificationType] ?? `UNKNOWN_${s.notificationType}`;
  const change = GOOGLE_CHANGES[name];
  if (!change) return ok([]);
  return ok([{
    type: `iap.${change}`, entityType: 'iap_store_subscription', entityId: `google_play:${s.purchaseToken}`,
    ...(n.eventTimeMillis ? { occurredAt: new Date(Number(n.eventTimeMillis)).toISOString() } : {}),
    data: {
      platform: 'google_play', store_id: s.purchaseToken, change, notification_type: name, notification_type_number: s.notificationType,
      notification_id: push.message.messageId, product_id: s.subscriptionId ?? null, package_name: n.packageName, developer_notification: n,
    },
    attributes: { platform: 'google_play', change },
  }]);
}

export function googlePlayRtdnAdapter(name: string, auth: PubSubAuth | undefined): ProviderAdapter {
  const keys = auth ? createRemoteJWKSet(new URL(auth.jwksUrl)) : undefined;
  return {
    name,
    kind: 'google-play',
    verify: () => err({ code: 'invalid_signature', message: 'RTDN pushes are verified asynchronously (verifyAsync)' }),
    verifyAsync: async (req) => (keys && auth ? verifyPush(keys, auth, req) : err({ code: 'invalid_signature', message: 'no pubsub OIDC configuration for this provider' })),
    eventId: () => undefined,
    normalize: (stored) => normalizeRtdn(stored),
  };
}
