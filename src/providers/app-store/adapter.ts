// App Store Server Notifications V2 through the intake: the `signedPayload` is verified with Apple's
// library before the body is stored (notificationUUID is the dedupe key); the worker decodes the
// verified payload, transaction and renewal info into one canonical `iap.<change>` event.
import { z } from 'zod';
import { err, ok, type Result } from '../../kernel/errors.ts';
import type { CanonicalEvent, IncomingNotification, ProviderAdapter, Verified, VerifyFailure } from '../types.ts';
import { appleChangeOf } from './changes.ts';
import type { AppStoreVerifier } from './verify.ts';

const body = z.object({ signedPayload: z.string().min(1) });

/** The payload of a JWS already verified at intake (the stored body is the verified one). */
const payloadOf = (jws: string): Record<string, unknown> => JSON.parse(Buffer.from(jws.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;

function parseBody(raw: Buffer): string | undefined {
  try {
    const r = body.safeParse(JSON.parse(raw.toString('utf8')));
    return r.success ? r.data.signedPayload : undefined;
  } catch {
    return undefined;
  }
}

export async function verifyAppleNotification(verifier: AppStoreVerifier, req: IncomingNotification): Promise<Result<Verified, VerifyFailure>> {
  const signedPayload = parseBody(req.rawBody);
  if (!signedPayload) return err({ code: 'unparseable', message: 'the body must be JSON { "signedPayload": "<JWS>" }' });
  const r = await verifier.notification(signedPayload);
  if (!r.ok) return err({ code: 'invalid_signature', message: `${r.error.code}: ${r.error.message}` });
  return ok({ eventId: r.value.payload.notificationUUID ?? '', headers: { 'content-type': req.headers['content-type'] ?? 'application/json' } });
}

/** The stored notification as one canonical event, carrying the decoded transaction and renewal info. */
export function normalizeAppleNotification(stored: { body: Buffer }): Result<CanonicalEvent[], string> {
  const signedPayload = parseBody(stored.body);
  if (!signedPayload) return err('not an App Store notification');
  const p = payloadOf(signedPayload) as { notificationType?: string; subtype?: string; notificationUUID?: string; signedDate?: number; data?: Record<string, unknown> };
  const transaction = typeof p.data?.signedTransactionInfo === 'string' ? payloadOf(p.data.signedTransactionInfo) : undefined;
  const renewal = typeof p.data?.signedRenewalInfo === 'string' ? payloadOf(p.data.signedRenewalInfo) : undefined;
  const change = appleChangeOf(p.notificationType ?? '', p.subtype);
  if (!change || !transaction) return ok([]);
  const storeId = String(transaction.originalTransactionId ?? '');
  return ok([{
    type: `iap.${change}`, entityType: 'iap_store_subscription', entityId: `app_store:${storeId}`,
    ...(p.signedDate ? { occurredAt: new Date(p.signedDate).toISOString() } : {}),
    data: {
      platform: 'app_store', store_id: storeId, change, notification_type: p.notificationType, subtype: p.subtype ?? null,
      notification_id: p.notificationUUID, product_id: transaction.productId ?? null,
      expires_at: typeof transaction.expiresDate === 'number' ? new Date(transaction.expiresDate).toISOString() : null,
      transaction, renewal_info: renewal ?? null,
    },
    attributes: { platform: 'app_store', change },
  }]);
}

export function appStoreAdapter(name: string, verifier: AppStoreVerifier): ProviderAdapter {
  return {
    name,
    kind: 'app-store',
    verify: () => err({ code: 'invalid_signature', message: 'App Store notifications are verified asynchronously (verifyAsync)' }),
    verifyAsync: (req) => verifyAppleNotification(verifier, req),
    eventId: () => undefined,
    normalize: (stored) => normalizeAppleNotification(stored),
  };
}
