// The QR payload of a ticket: a compact JWS (RFC 7515) signed with Ed25519 (`alg: EdDSA`), so a gate
// verifies it offline with the public keys of its manifest. Claims are short to keep the QR small:
// `t` ticket id, `p` product id, `f` facility, `nbf`/`exp` validity in epoch seconds. One signing
// key per UTC day (`kid` tk-YYYYMMDD), created by whichever process needs it first. Signed and
// verified with node:crypto's one-shot Ed25519 (synchronous, ≈ 0.05 ms): jose goes through WebCrypto,
// whose async job cost ≈ 0.6 ms of the API's CPU per redemption (bench redeem profile). The tokens are
// plain RFC 7515 compact JWS; jose verifies them (qr.test.ts).
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import type pg from 'pg';
import { err, ok, type Result } from '../kernel/errors.ts';

export interface QrClaims { t: string; p: string; f: string; nbf: number; exp: number }
export type QrError = 'qr_invalid' | 'qr_expired' | 'qr_not_yet_valid';
export interface VerificationKey extends JWK { kid: string; alg: 'EdDSA'; verifies_until: string }

const DAY_MS = 86_400_000;
/** Tickets are sold at most a year ahead, so a key verifies its tickets for 400 days. */
export const KEY_VERIFIES_MS = 400 * DAY_MS;
/** Gates' clocks drift: a QR is accepted this long before nbf and after exp. */
export const QR_CLOCK_SKEW_S = 120;

const SELECT_SIGNING = 'SELECT kid, private_pkcs8 FROM ticket_signing_keys WHERE kid = $1';
const INSERT_SIGNING = `
  INSERT INTO ticket_signing_keys (kid, private_pkcs8, public_jwk, signs_from, signs_until, verifies_until)
  VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING`;
const SELECT_PUBLIC = 'SELECT kid, public_jwk, verifies_until FROM ticket_signing_keys WHERE kid = $1';
const SELECT_PUBLIC_FOR_DAY = `
  SELECT kid, public_jwk, verifies_until FROM ticket_signing_keys
  WHERE signs_from < $2 AND verifies_until > $1 ORDER BY kid`;

export const kidFor = (now: Date): string => `tk-${now.toISOString().slice(0, 10).replaceAll('-', '')}`;

const b64url = (s: string) => Buffer.from(s).toString('base64url');
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export async function signQr(claims: QrClaims, kid: string, key: KeyObject): Promise<string> {
  const input = `${b64url(JSON.stringify({ alg: 'EdDSA', kid }))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
}

function jsonOf(part: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

function claimsOf(c: Record<string, unknown> | null): QrClaims | null {
  if (!c) return null;
  const ok = typeof c.t === 'string' && typeof c.p === 'string' && typeof c.f === 'string' && Number.isInteger(c.nbf) && Number.isInteger(c.exp);
  return ok ? (c as unknown as QrClaims) : null;
}

/** The claims of a compact JWS whose EdDSA signature `keyFor(kid)` verifies; null for anything else. */
async function verifiedClaims(token: string, keyFor: (kid: string) => Promise<KeyObject | null>): Promise<QrClaims | null> {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => BASE64URL.test(p))) return null;
  const [head, payload, signature] = parts as [string, string, string];
  const h = jsonOf(head);
  // `crit` names extensions we do not understand (RFC 7515 §4.1.11): refused, as jose does.
  if (!h || h.alg !== 'EdDSA' || typeof h.kid !== 'string' || 'crit' in h) return null;
  const key = await keyFor(h.kid);
  const sig = Buffer.from(signature, 'base64url');
  if (!key || sig.length !== 64 || !verify(null, Buffer.from(`${head}.${payload}`), key, sig)) return null;
  return claimsOf(jsonOf(payload));
}

/**
 * Verifies a QR token's signature with the key its `kid` names (`keyFor` returns null for an unknown
 * one), and, when `now` is given, its validity with QR_CLOCK_SKEW_S either way. What a gate runs offline.
 */
export async function verifyQr(token: string, keyFor: (kid: string) => Promise<KeyObject | null>, now?: Date): Promise<Result<QrClaims, QrError>> {
  if (typeof token !== 'string' || token.length > 2048) return err('qr_invalid');
  let claims: QrClaims | null;
  try {
    claims = await verifiedClaims(token, keyFor);
  } catch {
    return err('qr_invalid');
  }
  if (!claims) return err('qr_invalid');
  if (now) {
    const s = Math.floor(now.getTime() / 1000);
    if (s + QR_CLOCK_SKEW_S < claims.nbf) return err('qr_not_yet_valid');
    if (s - QR_CLOCK_SKEW_S >= claims.exp) return err('qr_expired');
  }
  return ok(claims);
}

/** A gate's verifier: the manifest's keys only, no call to seigo. */
export function keysFromManifest(keys: readonly JWK[]): (kid: string) => Promise<KeyObject | null> {
  const byKid = new Map(keys.map((k) => [k.kid, createPublicKey({ key: { kty: k.kty!, crv: k.crv!, x: k.x! }, format: 'jwk' })]));
  return async (kid) => byKid.get(kid) ?? null;
}

const toVerificationKey = (r: { kid: string; public_jwk: JWK; verifies_until: Date }): VerificationKey =>
  ({ ...r.public_jwk, kid: r.kid, alg: 'EdDSA', verifies_until: r.verifies_until.toISOString() });

/**
 * The ticket keys of one process: today's signing key (read and, the first time of a day, created
 * through the engine's pool) and public keys by kid (through the partner pool), both cached.
 */
export class TicketKeys {
  private signing: { kid: string; key: KeyObject } | undefined;
  private readonly publicKeys = new Map<string, KeyObject>();
  constructor(private readonly enginePool: pg.Pool, private readonly partnerPool: pg.Pool) {}

  async signingKey(now: Date): Promise<{ kid: string; key: KeyObject }> {
    const kid = kidFor(now);
    if (this.signing?.kid === kid) return this.signing;
    let row = (await this.enginePool.query<{ kid: string; private_pkcs8: Buffer }>(SELECT_SIGNING, [kid])).rows[0];
    if (!row) {
      const pair = generateKeyPairSync('ed25519');
      const from = new Date(`${now.toISOString().slice(0, 10)}T00:00:00Z`);
      const until = new Date(from.getTime() + DAY_MS);
      const der = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
      await this.enginePool.query(INSERT_SIGNING, [kid, der, JSON.stringify(pair.publicKey.export({ format: 'jwk' })), from, until, new Date(until.getTime() + KEY_VERIFIES_MS)]);
      row = (await this.enginePool.query<{ kid: string; private_pkcs8: Buffer }>(SELECT_SIGNING, [kid])).rows[0]!;
    }
    this.signing = { kid, key: createPrivateKey({ key: row.private_pkcs8, format: 'der', type: 'pkcs8' }) };
    return this.signing;
  }

  /** The public key `kid` names, or null for none (not remembered: another process may create it later). */
  async publicKey(kid: string): Promise<KeyObject | null> {
    const cached = this.publicKeys.get(kid);
    if (cached) return cached;
    if (!/^tk-[0-9]{8}$/.test(kid)) return null;
    const row = (await this.partnerPool.query<{ kid: string; public_jwk: JWK; verifies_until: Date }>({ name: 'ticket_public_key', text: SELECT_PUBLIC, values: [kid] })).rows[0];
    const key = row ? createPublicKey({ key: { kty: row.public_jwk.kty!, crv: row.public_jwk.crv!, x: row.public_jwk.x! }, format: 'jwk' }) : null;
    if (key) this.publicKeys.set(kid, key);
    return key;
  }

  /** The public keys a gate needs on [dayStart, dayEnd): every key that signed tickets still valid then. */
  async forDay(q: pg.Pool | pg.PoolClient, dayStart: Date, dayEnd: Date): Promise<VerificationKey[]> {
    const r = await q.query<{ kid: string; public_jwk: JWK; verifies_until: Date }>(SELECT_PUBLIC_FOR_DAY, [dayStart, dayEnd]);
    return r.rows.map(toVerificationKey);
  }
}
