// Who is calling the partner API and whether it may: the key looked up by its public id (a definer
// function, so the partner role never reads the keys table), its secret compared in constant time,
// then one request counted in the key's rate-limit window, shared by every API process.
// On the hot path neither costs a round trip of its own: verified keys are kept in memory for a
// moment (forgotten at once when a key changes, by NOTIFY from 0080), and the counts of concurrent
// requests are bumped together in one statement (group commit, src/kernel/batcher.ts).
import { timingSafeEqual } from 'node:crypto';
import pg from 'pg';
import { Batcher } from '../kernel/batcher.ts';
import type { Queryable } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import type { Logger } from '../kernel/logger.ts';
import { registerKeyCache } from './key-changes.ts';
import { parseKey, secretDigest, type PartnerScope } from './keys.ts';

const KEY = { name: 'partner_key', text: 'SELECT * FROM seigo_partner_key($1)' };
const HITS = { name: 'partner_hits', text: 'SELECT key_id, count, window_start FROM seigo_partner_hits($1, $2, $3)' };
const KEYS_CHANNEL = 'seigo_partner_keys';
/** How long a verified key is trusted without reading it again, while change notifications arrive. */
export const KEY_CACHE_MS = 5_000;
const RELISTEN_MS = 1_000;

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
/** A key row as read, with the database clock's lead over ours then (expiry is judged by the database's clock). */
interface CachedKey { row: KeyRow; dbLeadMs: number; readAt: number }

// Compared against when the key id is unknown, so a miss costs what a hit costs.
const DECOY = secretDigest('decoy');

/** The caller a key row and a presented secret make, or why not, at the database's time `dbNow`. */
export function judgeKey(keyId: string, secret: string, row: KeyRow | undefined, dbNow: Date): Result<PartnerCaller, AuthError> {
  const matches = timingSafeEqual(row?.secret_sha256 ?? DECOY, secretDigest(secret)) && row !== undefined;
  if (!row || !matches) return err('invalid_key');
  if (row.revoked_at) return err('key_revoked');
  if (row.expires_at && row.expires_at <= dbNow) return err('key_expired');
  return ok({ partnerId: row.partner_id, keyId, scopes: row.scopes, rateLimit: row.rate_limit, rateWindowSeconds: row.rate_window_seconds });
}

/**
 * Partner keys for one API process: read through the partner pool, kept for KEY_CACHE_MS while
 * this process LISTENs for key changes; without a live LISTEN connection every request reads its key.
 */
export class PartnerKeys {
  private readonly cache = new Map<string, CachedKey>();
  private listener: pg.Client | undefined;
  private listening = false;
  private closed = false;
  /** Bumped by every forget: a read that began before one is not cached (it may predate the change). */
  private generation = 0;
  private readonly unregister: () => void;

  constructor(private readonly pool: pg.Pool, private readonly opts: { cacheMs?: number; log?: Logger | undefined } = {}) {
    this.unregister = registerKeyCache(this);
  }

  /** Starts listening for key changes; the cache is used only while this connection lives. */
  listen(): void {
    if (this.closed || this.listener) return;
    const client = new pg.Client({ ...this.pool.options, application_name: 'seigo-partner-keys' } as pg.ClientConfig);
    this.listener = client;
    const lost = (e?: Error) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.listening = false;
      this.forgetAll();
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.opts.log?.warn({ err: e?.message }, 'partner key LISTEN connection lost; reading keys on every request until it is back');
      setTimeout(() => this.listen(), RELISTEN_MS).unref();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => { if (n.channel === KEYS_CHANNEL && n.payload) this.forget(n.payload); });
    client.connect()
      .then(() => client.query(`LISTEN ${KEYS_CHANNEL}`))
      .then(() => { if (this.listener === client) this.listening = true; })
      .catch((e: Error) => lost(e));
  }

  forget(keyId: string): void {
    this.generation++;
    this.cache.delete(keyId);
  }

  private forgetAll(): void {
    this.generation++;
    this.cache.clear();
  }

  /** The caller behind `Authorization: Bearer <key>`, or why not. */
  async authenticate(authorization: string | undefined): Promise<Result<PartnerCaller, AuthError>> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return err('missing_key');
    const parsed = parseKey(m[1]!);
    if (!parsed) return err('invalid_key');
    const cacheMs = this.opts.cacheMs ?? KEY_CACHE_MS;
    let k = this.listening ? this.cache.get(parsed.id) : undefined;
    if (!k || Date.now() - k.readAt >= cacheMs) k = await this.read(parsed.id);
    if (!k) return judgeKey(parsed.id, parsed.secret, undefined, new Date());
    return judgeKey(parsed.id, parsed.secret, k.row, new Date(Date.now() + k.dbLeadMs));
  }

  private async read(keyId: string): Promise<CachedKey | undefined> {
    const generation = this.generation;
    const { rows: [row] } = await this.pool.query<KeyRow>({ ...KEY, values: [keyId] });
    if (!row) return undefined;
    const readAt = Date.now();
    const k = { row, dbLeadMs: row.now.getTime() - readAt, readAt };
    if (this.listening && generation === this.generation) this.cache.set(keyId, k);
    return k;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unregister();
    const l = this.listener;
    this.listener = undefined;
    this.listening = false;
    await l?.end().catch(() => undefined);
  }
}

/** One-off authentication without a cache (tools and tests). */
export async function authenticate(q: Queryable, authorization: string | undefined): Promise<Result<PartnerCaller, AuthError>> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) return err('missing_key');
  const parsed = parseKey(m[1]!);
  if (!parsed) return err('invalid_key');
  const { rows: [row] } = await q.query<KeyRow>({ ...KEY, values: [parsed.id] });
  return judgeKey(parsed.id, parsed.secret, row, row?.now ?? new Date());
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  windowSeconds: number;
  /** Seconds until the window resets (at least 1). */
  resetSeconds: number;
}

interface Hit { keyId: string; windowStart: Date }
interface Count { count: number; windowStart: Date }

/** Bumps the windows of a batch of hits in one statement; each hit gets its own place in its key's count. */
export async function countHits(q: Queryable, hits: readonly Hit[]): Promise<Count[]> {
  const byKey = new Map<string, { windowStart: Date; n: number }>();
  for (const h of hits) {
    const k = byKey.get(h.keyId);
    if (!k) byKey.set(h.keyId, { windowStart: h.windowStart, n: 1 });
    else { k.n++; if (h.windowStart > k.windowStart) k.windowStart = h.windowStart; }
  }
  const keys = [...byKey.keys()];
  const { rows } = await q.query<{ key_id: string; count: number; window_start: Date }>({
    ...HITS, values: [keys, keys.map((k) => byKey.get(k)!.windowStart), keys.map((k) => byKey.get(k)!.n)],
  });
  // The batch's hits of a key are the last n of its count, in the order they came.
  const next = new Map(rows.map((r) => [r.key_id, { count: r.count - byKey.get(r.key_id)!.n, windowStart: r.window_start }]));
  return hits.map((h) => {
    const k = next.get(h.keyId)!;
    k.count++;
    return { count: k.count, windowStart: k.windowStart };
  });
}

/** Rate-limit counting for one API process: concurrent requests' hits share one statement and commit. */
export class RateCounter {
  private readonly batcher: Batcher<Hit, Count>;
  constructor(pool: pg.Pool) {
    this.batcher = new Batcher<Hit, Count>((hits) => countHits(pool, hits), { maxBatch: 256, maxInFlight: 2 });
  }

  /** Counts one request for the caller's key in the fixed window that holds `now`. */
  async admit(caller: PartnerCaller, now: Date): Promise<RateDecision> {
    const windowMs = caller.rateWindowSeconds * 1000;
    const windowStart = new Date(Math.floor(now.getTime() / windowMs) * windowMs);
    const c = await this.batcher.submit({ keyId: caller.keyId, windowStart });
    return decide(caller, c, now);
  }
}

function decide(caller: PartnerCaller, c: Count, now: Date): RateDecision {
  const resetMs = c.windowStart.getTime() + caller.rateWindowSeconds * 1000 - now.getTime();
  return {
    allowed: c.count <= caller.rateLimit,
    limit: caller.rateLimit,
    remaining: Math.max(0, caller.rateLimit - c.count),
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
