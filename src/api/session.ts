// Console sign-in: an admin token from the configuration is exchanged for an httpOnly, SameSite=Strict
// cookie holding a signed session; admin routes then accept the cookie, and for anything but GET also
// the X-Seigo-CSRF header, which a cross-site form cannot send (a cross-site fetch with it needs CORS, never granted).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Clock } from '../kernel/clock.ts';
import { UnauthorizedError } from '../kernel/errors.ts';
import type { Role } from './route.ts';
import { route, type OpenApiRegistry } from './route.ts';

export const SESSION_COOKIE = 'seigo_session';
export const CSRF_HEADER = 'x-seigo-csrf';
export const SESSION_TTL_MS = 8 * 3600_000;

export interface AdminToken { name: string; token: string; role: Role }
export interface Admin { name: string; role: Role }
interface Claims { n: string; r: Role; e: number; t: string }

/** Why a cookie did not authenticate: refusals are values, the caller turns them into a 401. */
export type SessionCheck = { ok: true; admin: Admin } | { ok: false; code: 'session_expired' | 'session_invalid'; detail: string } | null;

const tokenTag = (token: string) => createHash('sha256').update(token).digest('base64url').slice(0, 16);
const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** Signs and checks sessions with a secret made per process: a restart signs everyone out, by design. */
export class Sessions {
  private readonly secret: Buffer;
  constructor(private readonly tokens: AdminToken[], private readonly clock: Clock, secret = randomBytes(32)) {
    this.secret = secret;
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  /** The configured token's holder, or null; compared in constant time. */
  findToken(given: string): AdminToken | null {
    const d = createHash('sha256').update(given).digest();
    return this.tokens.find((t) => timingSafeEqual(createHash('sha256').update(t.token).digest(), d)) ?? null;
  }

  issue(t: AdminToken): { cookie: string; expiresAt: Date } {
    const expiresAt = new Date(this.clock.now().getTime() + SESSION_TTL_MS);
    const payload = b64(JSON.stringify({ n: t.name, r: t.role, e: expiresAt.getTime(), t: tokenTag(t.token) } satisfies Claims));
    return { cookie: `${payload}.${this.mac(payload)}`, expiresAt };
  }

  /** The session a cookie value carries; a token removed from the configuration ends its sessions. */
  check(value: string | undefined): SessionCheck {
    if (!value) return null;
    const [payload, sig] = value.split('.');
    if (!payload || !sig) return { ok: false, code: 'session_invalid', detail: 'the session cookie is malformed; sign in again' };
    const want = Buffer.from(this.mac(payload));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) {
      return { ok: false, code: 'session_invalid', detail: 'the session is not valid here (the engine restarted?); sign in again' };
    }
    const c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    if (c.e <= this.clock.now().getTime()) return { ok: false, code: 'session_expired', detail: 'the session has expired; sign in again' };
    const t = this.tokens.find((x) => x.name === c.n && tokenTag(x.token) === c.t);
    if (!t) return { ok: false, code: 'session_invalid', detail: 'the token this session came from is no longer configured' };
    return { ok: true, admin: { name: t.name, role: t.role } };
  }
}

/** One cookie's value from a Cookie header (RFC 6265 pairs; no library needed for one name). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function sessionCookie(req: FastifyRequest, value: string, maxAgeS: number): string {
  const secure = req.protocol === 'https' ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure}`;
}

/** A cookie-authenticated request that changes something must carry the CSRF header. */
export function needsCsrf(req: FastifyRequest): boolean {
  return req.method !== 'GET' && req.method !== 'HEAD' && req.headers[CSRF_HEADER] === undefined;
}

const sessionResponse = z.object({ name: z.string(), role: z.enum(['viewer', 'operator']), expires_at: z.string().optional() });

export async function sessionRoutes(app: FastifyInstance, sessions: Sessions, registry: OpenApiRegistry): Promise<void> {
  const P = '/admin/v1/session';
  route(app, registry, {
    method: 'POST', url: P, tags: ['session'], auth: 'public', errors: { 401: ['unauthorized'] }, summary: 'Sign in with an admin token: sets an httpOnly session cookie (console)',
    body: z.object({ token: z.string().min(1).max(500) }).strict(), response: sessionResponse,
  }, async ({ body, req, reply }) => {
    const t = sessions.findToken(body.token);
    if (!t) throw new UnauthorizedError('unauthorized', 'this token is not a configured admin token');
    const { cookie, expiresAt } = sessions.issue(t);
    void reply.header('set-cookie', sessionCookie(req, cookie, SESSION_TTL_MS / 1000));
    return { name: t.name, role: t.role, expires_at: expiresAt.toISOString() };
  });
  route(app, registry, {
    method: 'GET', url: P, tags: ['session'], role: 'viewer', summary: 'Who this session (or bearer token) is', response: sessionResponse,
  }, async ({ req }) => ({ name: req.admin!.name, role: req.admin!.role }));
  route(app, registry, {
    method: 'DELETE', url: P, tags: ['session'], auth: 'public', summary: 'Sign out: clears the session cookie', responseStatus: 204,
  }, async ({ req, reply }: { req: FastifyRequest; reply: FastifyReply }) => {
    void reply.header('set-cookie', sessionCookie(req, '', 0));
    return null;
  });
}
