// Standard Webhooks (spec v1) signatures with node:crypto: `v1,<base64 HMAC-SHA256>` over
// "<id>.<timestamp>.<body>", keyed with the base64-decoded secret after "whsec_".
import { createHmac, timingSafeEqual } from 'node:crypto';

export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

export function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0) throw new Error('empty webhook secret');
  return key;
}

export function sign(secret: string | Buffer, id: string, timestampSeconds: number, body: string | Buffer): string {
  const key = typeof secret === 'string' ? secretKey(secret) : secret;
  const mac = createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64');
  return `v1,${mac}`;
}

/**
 * Headers for an outgoing signed request. Several secrets (a rotation's overlap) give one `v1,` signature
 * each, space-separated in one header, as the spec allows: a receiver holding either secret verifies it.
 */
export function signedHeaders(secret: string | readonly string[], id: string, body: string | Buffer, now = new Date()): Record<string, string> {
  const ts = Math.floor(now.getTime() / 1000);
  const secrets = typeof secret === 'string' ? [secret] : secret;
  return { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': secrets.map((s) => sign(s, id, ts, body)).join(' ') };
}

export type SignatureCheck =
  | { ok: true }
  | { ok: false; reason: 'missing_headers' | 'bad_timestamp' | 'stale_timestamp' | 'no_matching_signature' };

/**
 * Verifies against every secret (rotation) and every signature in the header (space-separated);
 * any `v1` that matches in constant time is enough. The timestamp must be within `tolerance` seconds either way.
 */
export function verifySignature(
  secrets: readonly (string | Buffer)[],
  headers: { id?: string | undefined; timestamp?: string | undefined; signature?: string | undefined },
  body: Buffer | string,
  now: Date,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): SignatureCheck {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) return { ok: false, reason: 'missing_headers' };
  if (!/^\d{1,15}$/.test(timestamp)) return { ok: false, reason: 'bad_timestamp' };
  const ts = Number(timestamp);
  if (Math.abs(now.getTime() / 1000 - ts) > toleranceSeconds) return { ok: false, reason: 'stale_timestamp' };
  const offered = signature
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  if (offered.length === 0) return { ok: false, reason: 'no_matching_signature' };
  for (const secret of secrets) {
    const expected = Buffer.from(sign(secret, id, ts, body).slice(3), 'base64');
    for (const o of offered) {
      if (o.length === expected.length && timingSafeEqual(o, expected)) return { ok: true };
    }
  }
  return { ok: false, reason: 'no_matching_signature' };
}
