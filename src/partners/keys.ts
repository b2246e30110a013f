// Partners and their API keys, as an operator manages them (admin API, `seigo partners`): a key is
// shown once as `<id>.<secret>`, kept as SHA-256(secret), rotated with an overlap, revoked at once.
import { createHash, randomBytes } from 'node:crypto';
import type { Queryable } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { isUuid, uuidv7 } from '../kernel/ids.ts';
import { forgetKey } from './key-changes.ts';

export const PARTNER_SCOPES = ['tickets:issue', 'tickets:redeem', 'tickets:read', 'products:read', 'gates:sync'] as const;
export type PartnerScope = (typeof PARTNER_SCOPES)[number];

export interface Partner { id: string; name: string; createdAt: Date }

export interface PartnerKey {
  id: string;
  partnerId: string;
  name: string;
  scopes: PartnerScope[];
  rateLimit: number;
  rateWindowSeconds: number;
  createdAt: Date;
  expiresAt: Date | null;
  replacedBy: string | null;
  revokedAt: Date | null;
}

/** A key as created: the only time its secret exists outside the caller's hands. */
export interface IssuedKey extends PartnerKey { key: string }

export interface RateLimitSpec { requests: number; windowSeconds: number }

export type PartnerAdminError =
  | { code: 'partner_not_found'; partner: string }
  | { code: 'partner_exists'; name: string }
  | { code: 'key_not_found'; keyId: string }
  | { code: 'key_revoked'; keyId: string };

const KEY_RE = /^(pk_[0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

const INSERT_PARTNER = 'INSERT INTO partners (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at';
const SELECT_PARTNER_BY_ID = 'SELECT id, name, created_at FROM partners WHERE id = $1';
const SELECT_PARTNER_BY_NAME = 'SELECT id, name, created_at FROM partners WHERE name = $1';
const LIST_PARTNERS = 'SELECT id, name, created_at FROM partners ORDER BY name';
const KEY_COLUMNS = 'id, partner_id, name, scopes, rate_limit, rate_window_seconds, created_at, expires_at, replaced_by, revoked_at';
const INSERT_KEY = `
  INSERT INTO partner_api_keys (id, partner_id, name, secret_sha256, scopes, rate_limit, rate_window_seconds)
  VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${KEY_COLUMNS}`;
const SELECT_KEY = `SELECT ${KEY_COLUMNS} FROM partner_api_keys WHERE id = $1`;
const LIST_KEYS = `SELECT ${KEY_COLUMNS} FROM partner_api_keys WHERE partner_id = $1 ORDER BY created_at, id`;
const REVOKE_KEY = `UPDATE partner_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${KEY_COLUMNS}`;
// The old key's overlap never lengthens an expiry already set, and a revoked key is not rotated.
const RETIRE_KEY = `
  UPDATE partner_api_keys SET expires_at = least(coalesce(expires_at, $2), $2), replaced_by = $3
  WHERE id = $1 AND revoked_at IS NULL RETURNING ${KEY_COLUMNS}`;

interface PartnerRow { id: string; name: string; created_at: Date }
interface KeyRow {
  id: string; partner_id: string; name: string; scopes: PartnerScope[]; rate_limit: number; rate_window_seconds: number;
  created_at: Date; expires_at: Date | null; replaced_by: string | null; revoked_at: Date | null;
}

const toPartner = (r: PartnerRow): Partner => ({ id: r.id, name: r.name, createdAt: r.created_at });
const toKey = (r: KeyRow): PartnerKey => ({
  id: r.id, partnerId: r.partner_id, name: r.name, scopes: r.scopes, rateLimit: r.rate_limit, rateWindowSeconds: r.rate_window_seconds,
  createdAt: r.created_at, expiresAt: r.expires_at, replacedBy: r.replaced_by, revokedAt: r.revoked_at,
});

export const secretDigest = (secret: string): Buffer => createHash('sha256').update(secret).digest();

/** A new key: a public id and 256 bits of secret. */
export function generateKey(): { id: string; secret: string; key: string } {
  const id = `pk_${randomBytes(8).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, key: `${id}.${secret}` };
}

/** Splits a presented key into its id and secret; null when it is not shaped like one of ours. */
export function parseKey(key: string): { id: string; secret: string } | null {
  const m = KEY_RE.exec(key);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

export async function createPartner(q: Queryable, name: string): Promise<Result<Partner, PartnerAdminError>> {
  const r = await q.query<PartnerRow>(INSERT_PARTNER, [uuidv7(), name]);
  return r.rows[0] ? ok(toPartner(r.rows[0])) : err({ code: 'partner_exists', name });
}

/** A partner by id or by name. */
export async function findPartner(q: Queryable, idOrName: string): Promise<Partner | null> {
  const r = await q.query<PartnerRow>(isUuid(idOrName) ? SELECT_PARTNER_BY_ID : SELECT_PARTNER_BY_NAME, [idOrName]);
  return r.rows[0] ? toPartner(r.rows[0]) : null;
}

export async function listPartners(q: Queryable): Promise<Partner[]> {
  return (await q.query<PartnerRow>(LIST_PARTNERS)).rows.map(toPartner);
}

export async function listKeys(q: Queryable, partnerId: string): Promise<PartnerKey[]> {
  return (await q.query<KeyRow>(LIST_KEYS, [partnerId])).rows.map(toKey);
}

export async function getKey(q: Queryable, keyId: string): Promise<PartnerKey | null> {
  const r = await q.query<KeyRow>(SELECT_KEY, [keyId]);
  return r.rows[0] ? toKey(r.rows[0]) : null;
}

export interface CreateKeyInput { partner: string; name?: string | undefined; scopes: readonly PartnerScope[]; rateLimit: RateLimitSpec }

export async function createKey(q: Queryable, input: CreateKeyInput): Promise<Result<IssuedKey, PartnerAdminError>> {
  const partner = await findPartner(q, input.partner);
  if (!partner) return err({ code: 'partner_not_found', partner: input.partner });
  const g = generateKey();
  const scopes = [...new Set(input.scopes)];
  const r = await q.query<KeyRow>(INSERT_KEY, [
    g.id, partner.id, input.name ?? '', secretDigest(g.secret), scopes, input.rateLimit.requests, input.rateLimit.windowSeconds]);
  return ok({ ...toKey(r.rows[0]!), key: g.key });
}

/** Revokes a key at once: the next request with it is refused. Revoking twice is a no-op. */
export async function revokeKey(q: Queryable, keyId: string): Promise<Result<PartnerKey, PartnerAdminError>> {
  const r = await q.query<KeyRow>(REVOKE_KEY, [keyId]);
  forgetKey(keyId);
  return r.rows[0] ? ok(toKey(r.rows[0])) : err({ code: 'key_not_found', keyId });
}

/**
 * Issues a replacement with the same partner, scopes and limit; the old key keeps working until
 * `overlapUntil` (then it is refused as expired). Call it in a transaction: both rows or neither.
 */
export async function rotateKey(q: Queryable, keyId: string, overlapUntil: Date): Promise<Result<IssuedKey, PartnerAdminError>> {
  const old = await getKey(q, keyId);
  if (!old) return err({ code: 'key_not_found', keyId });
  if (old.revokedAt) return err({ code: 'key_revoked', keyId });
  const g = generateKey();
  const r = await q.query<KeyRow>(INSERT_KEY, [
    g.id, old.partnerId, old.name, secretDigest(g.secret), old.scopes, old.rateLimit, old.rateWindowSeconds]);
  const retired = await q.query<KeyRow>(RETIRE_KEY, [keyId, overlapUntil, g.id]);
  if (!retired.rows[0]) throw new Error(`partner key ${keyId} was revoked while it was being rotated`);
  forgetKey(keyId);
  return ok({ ...toKey(r.rows[0]!), key: g.key });
}

/** The key as an operator may see it: never its secret or digest. */
export function keyJson(k: PartnerKey | IssuedKey): Record<string, unknown> {
  return {
    id: k.id, partner_id: k.partnerId, name: k.name, scopes: k.scopes,
    rate_limit: { requests: k.rateLimit, window_seconds: k.rateWindowSeconds },
    created_at: k.createdAt, expires_at: k.expiresAt, replaced_by: k.replacedBy, revoked_at: k.revokedAt,
    ...('key' in k ? { key: k.key } : {}),
  };
}
