// Stripe webhook signatures with node:crypto: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`,
// each v1 an HMAC-SHA256 over "<t>.<raw body>" keyed with the whole secret string ("whsec_…" included).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/** The hex `v1` signature of one payload at one timestamp. */
export function computeSignature(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

/**
 * A `Stripe-Signature` header value. With several secrets (a rotation in progress) there is one
 * `v1` per secret, as Stripe sends while an old secret is still valid.
 */
export function signatureHeader(secrets: string | readonly string[], body: string | Buffer, now = new Date()): string {
  const t = Math.floor(now.getTime() / 1000);
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  return [`t=${t}`, ...list.map((s) => `v1=${computeSignature(s, t, body)}`)].join(',');
}

export type SignatureCheck =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'missing_header' | 'bad_header' | 'stale_timestamp' | 'no_matching_signature' };

/** Splits the header into its timestamp and its `v1` signatures; other schemes (`v0`) are ignored. */
export function parseSignatureHeader(header: string): { timestamp: number | undefined; v1: string[] } {
  let timestamp: number | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,15}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1') v1.push(value);
  }
  return { timestamp, v1 };
}

/**
 * Any `v1` in the header that matches, in constant time, under any of the secrets (rotation) is
 * enough; the timestamp must be within `toleranceSeconds` of `now` either way.
 */
export function verifySignature(
  secrets: readonly string[],
  header: string | undefined,
  body: string | Buffer,
  now: Date,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): SignatureCheck {
  if (!header) return { ok: false, reason: 'missing_header' };
  const { timestamp, v1 } = parseSignatureHeader(header);
  if (timestamp === undefined || v1.length === 0) return { ok: false, reason: 'bad_header' };
  if (Math.abs(now.getTime() / 1000 - timestamp) > toleranceSeconds) return { ok: false, reason: 'stale_timestamp' };
  const offered = v1.filter((s) => /^[0-9a-f]{64}$/i.test(s)).map((s) => Buffer.from(s, 'hex'));
  for (const secret of secrets) {
    const expected = Buffer.from(computeSignature(secret, timestamp, body), 'hex');
    for (const o of offered) {
      if (o.length === expected.length && timingSafeEqual(o, expected)) return { ok: true, timestamp };
    }
  }
  return { ok: false, reason: 'no_matching_signature' };
}
