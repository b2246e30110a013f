// KOMOJU webhook signatures: `X-Komoju-Signature` is the lowercase hex HMAC-SHA256 of the raw
// request body, keyed with the webhook's secret token (doc.komoju.com/docs/webhooks). No timestamp
// is signed, so replays are stopped by dedupe on the event id, not here.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-komoju-signature';

export function sign(secret: string, body: string | Buffer): string {
  if (secret.length === 0) throw new Error('empty KOMOJU webhook secret');
  return createHmac('sha256', secret).update(body).digest('hex');
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing_signature' | 'no_matching_signature' };

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

/**
 * Accepts the body if the signature matches under any of `secrets` (several during a rotation).
 * The comparison is on the decoded bytes and in constant time; a malformed header never matches.
 */
export function verifySignature(secrets: readonly string[], signature: string | undefined, body: string | Buffer): SignatureCheck {
  if (!signature) return { ok: false, reason: 'missing_signature' };
  const trimmed = signature.trim();
  if (!HEX_SHA256.test(trimmed)) return { ok: false, reason: 'no_matching_signature' };
  const offered = Buffer.from(trimmed, 'hex');
  let matched = false;
  // Every secret is tried even after a match, so the time taken does not reveal which one matched.
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    const expected = createHmac('sha256', secret).update(body).digest();
    if (timingSafeEqual(offered, expected)) matched = true;
  }
  return matched ? { ok: true } : { ok: false, reason: 'no_matching_signature' };
}
