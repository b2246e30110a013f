// Who is calling the partner API and whether it may: the key looked up by its public id (a definer
// function, so the partner role never reads the keys table), its secret compared in constant time,
// then one request counted in the key's rate-limit window, shared by every API process.
import { timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { parseKey, secretDigest, type PartnerScope } from './keys.ts';

const KEY = { name: 'partner_key', text: 'SELECT * FROM seigo_partner_key($1)' };
const HIT = { name: 'partner_hit', text: 'SELECT count, window_start FROM seigo_partner_hit($1, $2)' };

export interface PartnerCaller {
  partnerId: string;
  keyId: string;
  scopes: readonly PartnerScope[];
  rateLimit: number;
  rateWindowSeconds: number;
}

export type AuthError = 'missing_key' | 'invalid_key' | 'key_revoked' | 'key_expired';

interface KeyRow {
  partner_id: string; secret_sha256: Buffer; scopes: PartnerScope[]; rate_limit: number; rate_window_seconds: number;
  expires_at: Date | null; revoked_at: Date | null; now: Date;
}

// Compared against when the key id is unknown, so a miss costs what a hit costs.
const DECOY = secretDigest('decoy');

/** The caller behind `Authorization: Bearer <key>`, or why not. Expiry is judged by the database's clock. */
export async function authenticate(q: Queryable, authorization: string | undefined): Promise<Result<PartnerCaller, AuthError>> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) return err('missing_key');
  const parsed = parseKey(m[1]!);
  if (!parsed) return err('invalid_key');
  const { rows: [row] } = await q.query<KeyRow>({ ...KEY, values: [parsed.id] });
  const given = secretDigest(parsed.secret);
  const matches = timingSafeEqual(row?.secret_sha256 ?? DECOY, given) && row !== undefined;
  if (!row || !matches) return err('invalid_key');
  if (row.revoked_at) return err('key_revoked');
  if (row.expires_at && row.expires_at <= row.now) return err('key_expired');
  return ok({ partnerId: row.partner_id, keyId: parsed.id, scopes: row.scopes, rateLimit: row.rate_limit, rateWindowSeconds: row.rate_window_seconds });
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  windowSeconds: number;
  /** Seconds until the window resets (at least 1). */
  resetSeconds: number;
}

/** Counts one request for the caller's key in the fixed window that holds `now`. */
export async function admit(q: Queryable, caller: PartnerCaller, now: Date): Promise<RateDecision> {
  const windowMs = caller.rateWindowSeconds * 1000;
  const start = new Date(Math.floor(now.getTime() / windowMs) * windowMs);
  const { rows: [row] } = await q.query<{ count: number; window_start: Date }>({ ...HIT, values: [caller.keyId, start] });
  const count = row!.count;
  const resetMs = row!.window_start.getTime() + windowMs - now.getTime();
  return {
    allowed: count <= caller.rateLimit,
    limit: caller.rateLimit,
    remaining: Math.max(0, caller.rateLimit - count),
    windowSeconds: caller.rateWindowSeconds,
    resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)),
  };
}

/** The IETF httpapi rate-limit headers (draft-ietf-httpapi-ratelimit-headers) and, when refused, Retry-After. */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  return {
    'ratelimit-policy': `"per-key";q=${d.limit};w=${d.windowSeconds}`,
    ratelimit: `"per-key";r=${d.remaining};t=${d.resetSeconds}`,
    ...(d.allowed ? {} : { 'retry-after': String(d.resetSeconds) }),
  };
}
