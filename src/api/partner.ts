// The partner API under /partner/v1, one plugin: its own hooks authenticate the partner key, check
// the route's scope, count the request against the key's rate limit (429 with Retry-After and the
// IETF RateLimit headers) and honour Idempotency-Key, all on the partner pool (role seigo_partner).
// Every id a route touches is read inside a partner transaction, so another partner's is a 404.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError, problem } from '../kernel/errors.ts';
import {
  PartnerBusyError, PartnerKeys, RateCounter, gateJson, getGate, getProduct, listProducts, productJson, rateLimitHeaders, withPartner,
  type AuthError, type PartnerCaller, type PartnerScope,
} from '../partners/index.ts';
import { idempotency } from './idempotency.ts';
import { partnerTicketRoutes } from './partner-tickets.ts';
import { wholeList } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

declare module 'fastify' {
  interface FastifyContextConfig { partnerScope?: string | undefined }
  interface FastifyRequest { partner?: PartnerCaller }
}

export const PARTNER_PREFIX = '/partner/v1';
const uuid = z.string().uuid();

const AUTH_DETAIL: Record<AuthError, string> = {
  missing_key: 'a partner API key is required (Authorization: Bearer <key>)',
  invalid_key: 'the partner API key is not valid',
  key_revoked: 'this partner API key has been revoked',
  key_expired: 'this partner API key was rotated and its overlap has ended; use its replacement',
};

function refuse(reply: FastifyReply, status: number, code: string, detail: string) {
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  return reply.code(status).type('application/problem+json').send(problem(status, code, detail));
}

/** Pool errors while connecting (the pool exhausted past its wait) are a 503 for the caller, not a 500. */
async function busyAware<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (/timeout exceeded when trying to connect/i.test((e as Error).message)) throw new PartnerBusyError();
    throw e;
  }
}

/**
 * The hooks of the partner plugin: authentication, scope, rate limit, then idempotency. Keys are
 * cached per server (forgotten at once when one changes) and rate counts are bumped in batches.
 */
export function partnerHooks(app: FastifyInstance, engine: Engine): void {
  const pool = engine.partnerDb.pool;
  const keys = new PartnerKeys(pool, { log: engine.log });
  const rates = new RateCounter(pool);
  keys.listen();
  app.addHook('onClose', async () => { await keys.close(); });
  app.addHook('onRequest', async (req, reply) => {
    const scope = req.routeOptions.config.partnerScope as PartnerScope | undefined;
    if (!scope) return;
    const who = await busyAware(keys.authenticate(req.headers.authorization));
    if (!who.ok) return refuse(reply, 401, who.error === 'missing_key' ? 'unauthorized' : who.error, AUTH_DETAIL[who.error]);
    const rate = await busyAware(rates.admit(who.value, engine.clock.now()));
    reply.headers(rateLimitHeaders(rate));
    if (!rate.allowed) {
      return refuse(reply, 429, 'rate_limited', `this key may make ${rate.limit} requests per ${rate.windowSeconds} s; retry in ${rate.resetSeconds} s`);
    }
    if (!who.value.scopes.includes(scope)) return refuse(reply, 403, 'insufficient_scope', `this route needs the scope ${scope}`);
    req.partner = who.value;
  });
  idempotency(app, engine, {
    pool,
    clientOf: (req) => (req.method === 'POST' && req.partner ? `partner:${req.partner.partnerId}` : undefined),
  });
}

export async function partnerRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  partnerHooks(app, engine);
  const pool = engine.partnerDb.pool;
  const P = PARTNER_PREFIX;
  const as = <T>(partnerId: string, fn: Parameters<typeof withPartner<T>>[2]) => withPartner<T>(pool, partnerId, fn);

  route(app, registry, {
    method: 'GET', url: `${P}/products`, tags: ['partner'], partnerScope: 'products:read', summary: 'The products this partner sells tickets for',
  }, async ({ req }) => wholeList((await as(req.partner!.partnerId, (tx) => listProducts(tx, req.partner!.partnerId))).map(productJson)));

  route(app, registry, {
    method: 'GET', url: `${P}/products/:id`, tags: ['partner'], partnerScope: 'products:read', errors: { 404: ['product_not_found'] }, summary: 'One of this partner\'s products',
    params: z.object({ id: uuid }),
  }, async ({ params, req }) => {
    const p = await as(req.partner!.partnerId, (tx) => getProduct(tx, params.id));
    if (!p) throw new NotFoundError('product_not_found', `no product ${params.id}`);
    return productJson(p);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/gates/:gate`, tags: ['partner'], partnerScope: 'gates:sync', errors: { 404: ['gate_not_found'] }, summary: 'One of this partner\'s gates',
    params: z.object({ gate: uuid }),
  }, async ({ params, req }) => {
    const g = await as(req.partner!.partnerId, (tx) => getGate(tx, params.gate));
    if (!g) throw new NotFoundError('gate_not_found', `no gate ${params.gate}`);
    return gateJson(g);
  });

  partnerTicketRoutes(app, engine, registry, engine.ticketKeys);
}
