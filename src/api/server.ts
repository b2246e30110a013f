// The HTTP server: provider webhooks, the admin API, health, metrics and OpenAPI. Every error is
// RFC 9457 problem+json with a stable code; nothing about a request's secrets reaches a log.
import { timingSafeEqual, createHash } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { SeigoError, problem } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { VERSION } from '../kernel/version.ts';
import type { Engine } from '../engine/engine.ts';
import { adminRoutes } from './admin.ts';
import { subscriptionRoutes } from './subscriptions.ts';
import { apiClientAuth } from './api-clients.ts';
import { idempotency } from './idempotency.ts';
import { ledgerAdminRoutes } from './ledger.ts';
import { balanceRoutes } from './balances.ts';
import { depositRoutes } from './deposits.ts';
import { bankTransferRoutes } from './bank-transfers.ts';
import { refundRoutes } from './refunds.ts';
import { pointsRoutes } from './points.ts';
import { reconcileRoutes } from './reconcile.ts';
import { caseRoutes } from './cases.ts';
import { healthRoutes } from './health.ts';
import { sagaRoutes } from './sagas.ts';
import { iapRoutes } from './iap.ts';
import { consoleRoutes } from './console.ts';
import { needsCsrf, readCookie, SESSION_COOKIE, Sessions, sessionRoutes } from './session.ts';
import { partnerAdminRoutes } from './partner-admin.ts';
import { partnerRoutes } from './partner.ts';
import { masterdataRoutes } from './masterdata.ts';
import { openApiDocument, type OpenApiRegistry, type Role } from './route.ts';
import { webhookRoutes } from './webhooks.ts';

declare module 'fastify' {
  interface FastifyContextConfig { role?: Role | undefined }
  interface FastifyRequest { admin?: { name: string; role: Role } }
}

const ROLE_RANK: Record<Role, number> = { viewer: 1, operator: 2 };
const digest = (s: string) => createHash('sha256').update(s).digest();

/** The problem for any error: a SeigoError as it says, a client error from Fastify as a 4xx, anything else as a 500. */
function toProblem(error: FastifyError | SeigoError | Error, maxBodyBytes: number): { status: number; code: string; detail: string; extra?: Record<string, unknown> | undefined } {
  if (error instanceof SeigoError) return { status: error.status, code: error.code, detail: error.message, extra: error.detail };
  if ('statusCode' in error && typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    const status = error.statusCode;
    const code = status === 413 ? 'payload_too_large' : status === 415 ? 'unsupported_media_type' : status === 414 ? 'uri_too_long' : 'invalid_request';
    return { status, code, detail: status === 413 ? `body exceeds the limit of ${maxBodyBytes} bytes` : error.message };
  }
  return { status: 500, code: 'internal_error', detail: 'an unexpected error occurred; it has been logged' };
}

/** A caller's Request-Id is echoed when it is short printable ASCII (it goes into logs); otherwise we make one. */
const CALLER_REQUEST_ID = /^[\x21-\x7E]{1,200}$/;
export function requestIdOf(given: string | string[] | undefined): string {
  return typeof given === 'string' && CALLER_REQUEST_ID.test(given) ? given : uuidv7();
}
/** Probes and scrapes log at debug: a line per probe every few seconds would bury the requests that matter. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

export interface ServerOptions {
  /** Stop answering /readyz (graceful shutdown in progress). */
  isShuttingDown?: () => boolean;
}

export async function createServer(engine: Engine, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: engine.config.intake.maxBodyBytes,
    // Operators' ids travel in paths; keep them exact.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 300 },
    return503OnClosing: true,
    // Every response carries a Request-Id (the caller's, echoed, or ours), and so does its log line.
    genReqId: (req) => requestIdOf(req.headers['request-id']),
    // Errors the router raises before any route runs (malformed percent-encoding, a parameter over
    // maxParamLength) would otherwise bypass the error handler and answer plain JSON.
    frameworkErrors: (error, req, res) => {
      const p = toProblem(error, engine.config.intake.maxBodyBytes);
      const reply = res as FastifyReply;
      void reply.header('request-id', req.id).code(p.status).type('application/problem+json').send(problem(p.status, p.code, p.detail, p.extra));
    },
  });
  // Requests Node's HTTP parser refuses before Fastify sees them (headers over 16 KB: 431; malformed
  // requests: 400) are answered as problem+json too, then the connection is closed.
  app.server.removeAllListeners('clientError');
  app.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const code = status === 431 ? 'headers_too_large' : status === 408 ? 'request_timeout' : 'bad_request';
    const body = JSON.stringify(problem(status, code, status === 431 ? 'request headers exceed 16 KB' : 'malformed HTTP request'));
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\n`
      + `Request-Id: ${uuidv7()}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  const registry: OpenApiRegistry = { routes: [] };
  const tokens = engine.config.adminTokens.map((t) => ({ ...t, digest: digest(t.token) }));
  const sessions = new Sessions(engine.config.adminTokens, engine.clock);

  app.setErrorHandler((error: FastifyError | SeigoError | Error, req, reply) => {
    const p = toProblem(error, engine.config.intake.maxBodyBytes);
    if (p.status >= 500) engine.log.error({ err: { message: error.message, stack: error.stack }, req_id: req.id, method: req.method, url: req.routeOptions.url }, 'request failed');
    void reply.code(p.status).type('application/problem+json').send(problem(p.status, p.code, p.detail, p.extra));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).type('application/problem+json').send(problem(404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  // First of all hooks, so a refusal (401, 404, 429…) carries it too.
  app.addHook('onRequest', async (req, reply) => { void reply.header('request-id', req.id); });

  // Admin routes carry a role in their config; a bearer token from the configuration must grant it.
  app.addHook('onRequest', async (req, reply) => {
    const need = req.routeOptions.config.role;
    if (!need) return;
    const auth = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const given = m ? digest(m[1]!) : null;
    let who: { name: string; role: Role } | undefined = given ? tokens.find((t) => timingSafeEqual(t.digest, given)) : undefined;
    // No bearer token: the console's session cookie, which needs the CSRF header to change anything.
    const session = m ? null : sessions.check(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (session && !session.ok) return reply.code(401).type('application/problem+json').send(problem(401, session.code, session.detail));
    if (session?.ok) {
      if (needsCsrf(req)) return reply.code(403).type('application/problem+json').send(problem(403, 'csrf_header_required', 'send the X-Seigo-CSRF header with a session cookie'));
      who = session.admin;
    }
    if (!who) {
      return reply.code(401).header('www-authenticate', 'Bearer').type('application/problem+json')
        .send(problem(401, 'unauthorized', 'a valid admin bearer token is required'));
    }
    if (ROLE_RANK[who.role] < ROLE_RANK[need]) {
      return reply.code(403).type('application/problem+json').send(problem(403, 'forbidden', `this route needs the ${need} role; the token has ${who.role}`));
    }
    req.admin = { name: who.name, role: who.role };
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    engine.metrics.httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) });
    engine.metrics.httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
    recordHealth(engine, req, route, reply.statusCode, reply.elapsedTime);
    const line = { req_id: req.id, method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 };
    if (QUIET_ROUTES.has(route)) engine.log.debug(line, 'request');
    else engine.log.info(line, 'request');
  });

  // API clients (the wallet's backend) authenticate with their keys; their POSTs honour
  // Idempotency-Key as Stripe does. Root-level hooks, so they apply to every plugin below.
  apiClientAuth(app, engine);
  idempotency(app, engine);

  await app.register(async (scope) => webhookRoutes(scope, engine, registry));
  await app.register(async (scope) => adminRoutes(scope, engine, registry));
  await app.register(async (scope) => subscriptionRoutes(scope, engine, registry));
  await app.register(async (scope) => ledgerAdminRoutes(scope, engine, registry));
  await app.register(async (scope) => balanceRoutes(scope, engine, registry));
  await app.register(async (scope) => depositRoutes(scope, engine, registry, engine.deposits));
  await app.register(async (scope) => refundRoutes(scope, engine, registry));
  await app.register(async (scope) => pointsRoutes(scope, engine, registry));
  await app.register(async (scope) => caseRoutes(scope, engine, registry));
  await app.register(async (scope) => sagaRoutes(scope, engine, registry));
  await app.register(async (scope) => iapRoutes(scope, engine, registry));
  await app.register(async (scope) => bankTransferRoutes(scope, engine, registry, { policy: engine.bankTransferPolicy }));
  await app.register(async (scope) => reconcileRoutes(scope, engine, registry));
  await app.register(async (scope) => healthRoutes(scope, engine, registry));
  await app.register(async (scope) => sessionRoutes(scope, sessions, registry));
  await app.register(async (scope) => consoleRoutes(scope));
  await app.register(async (scope) => partnerAdminRoutes(scope, engine, registry));
  await app.register(async (scope) => masterdataRoutes(scope, engine, registry));
  // Partner routes in their own plugin: their auth, rate-limit and idempotency hooks run on the partner pool.
  await app.register(async (scope) => partnerRoutes(scope, engine, registry));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (opts.isShuttingDown?.()) return reply.code(503).type('application/problem+json').send(problem(503, 'shutting_down', 'this process is stopping'));
    try {
      await engine.db.pool.query('SELECT 1');
      return { status: 'ready' };
    } catch (e) {
      return reply.code(503).type('application/problem+json').send(problem(503, 'database_unavailable', (e as Error).message));
    }
  });
  app.get('/metrics', async (_req, reply) => {
    const body = await engine.metrics.registry.metrics();
    return reply.type(engine.metrics.registry.contentType).send(body);
  });
  const doc = openApiDocument(registry, { title: 'seigo', version: VERSION, serverUrl: `http://${engine.config.host}:${engine.config.port}` });
  app.get('/openapi.json', async () => doc);
  return app;
}

/**
 * The Health screen's and the alert rules' traffic figures: every route but the quiet ones (a 5xx is an
 * error), and webhooks per configured provider (any refusal is an error: a wrong secret shows as one).
 */
function recordHealth(engine: Engine, req: FastifyRequest, route: string, status: number, ms: number): void {
  if (QUIET_ROUTES.has(route) || route === 'unmatched') return;
  engine.health.record('route', `${req.method} ${route}`, ms, status >= 500);
  const provider = (req.params as { provider?: unknown } | undefined)?.provider;
  if (route === '/webhooks/:provider' && typeof provider === 'string' && engine.providers.get(provider)) {
    engine.health.record('webhook', provider, ms, status >= 400);
  }
}
