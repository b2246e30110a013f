// The operator's side of the partner API, under /admin/v1/partners: partners, their keys (the
// secret in the creating answer only), and the products and gates they own.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { withTx } from '../kernel/db.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import {
  PARTNER_SCOPES, createGate, createKey, createPartner, createProduct, findPartner, gateJson, keyJson, listGates, listKeys, listPartners,
  listProducts, productJson, revokeKey, rotateKey, type Partner, type PartnerAdminError,
} from '../partners/index.ts';
import { wholeList } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const P = '/admin/v1/partners';
const partnerParam = z.object({ partner: z.string().min(1).max(100) });
const keyParams = partnerParam.extend({ key: z.string().regex(/^pk_[0-9a-f]{16}$/, 'a key id (pk_…)') });
const facility = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'letters, digits, ".", "_" and "-"');
const money = z.union([z.string().regex(/^\d{1,15}$/), z.number().int().nonnegative().max(1e15)]).transform((v) => BigInt(v));

export function adminError(e: PartnerAdminError): SeigoError {
  switch (e.code) {
    case 'partner_not_found': return new NotFoundError(e.code, `no partner ${e.partner}`);
    case 'key_not_found': return new NotFoundError(e.code, `no partner key ${e.keyId}`);
    case 'partner_exists': return new SeigoError(e.code, `a partner named ${e.name} exists`, 409);
    case 'key_revoked': return new SeigoError(e.code, `partner key ${e.keyId} is revoked`, 409);
  }
}

const partnerJson = (p: Partner) => ({ id: p.id, name: p.name, created_at: p.createdAt });

export async function partnerAdminRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const mustFind = async (idOrName: string) => {
    const p = await findPartner(pool, idOrName);
    if (!p) throw adminError({ code: 'partner_not_found', partner: idOrName });
    return p;
  };
  /** The key, checked to belong to the partner in the path. */
  const ownKey = async (partner: string, keyId: string) => {
    const p = await mustFind(partner);
    const k = (await listKeys(pool, p.id)).find((x) => x.id === keyId);
    if (!k) throw adminError({ code: 'key_not_found', keyId });
    return k;
  };

  route(app, registry, {
    method: 'POST', url: P, tags: ['partners'], role: 'operator', summary: 'Create a partner', responseStatus: 201,
    body: z.object({ name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'lowercase letters, digits, ".", "_" and "-"') }).strict(),
  }, async ({ body }) => {
    const r = await createPartner(pool, body.name);
    if (!r.ok) throw adminError(r.error);
    return partnerJson(r.value);
  });

  route(app, registry, { method: 'GET', url: P, tags: ['partners'], role: 'viewer', summary: 'List partners' },
    async () => wholeList((await listPartners(pool)).map(partnerJson)));

  route(app, registry, {
    method: 'GET', url: `${P}/:partner`, tags: ['partners'], role: 'viewer', summary: 'One partner (by id or name) with its keys, products and gates',
    params: partnerParam,
  }, async ({ params }) => {
    const p = await mustFind(params.partner);
    return {
      ...partnerJson(p),
      keys: (await listKeys(pool, p.id)).map(keyJson),
      products: (await listProducts(pool, p.id)).map(productJson),
      gates: (await listGates(pool, p.id)).map(gateJson),
    };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/keys`, tags: ['partners'], role: 'operator', responseStatus: 201,
    summary: 'Create an API key for a partner; the key is in this answer only',
    params: partnerParam,
    body: z.object({
      name: z.string().max(200).optional(),
      scopes: z.array(z.enum(PARTNER_SCOPES)).min(1),
      rate_limit: z.object({ requests: z.number().int().min(1).max(1_000_000), window_seconds: z.number().int().min(1).max(86_400) }).strict().optional(),
    }).strict(),
  }, async ({ params, body }) => {
    const d = engine.config.partners.rateLimit;
    const rateLimit = body.rate_limit ? { requests: body.rate_limit.requests, windowSeconds: body.rate_limit.window_seconds } : d;
    const r = await createKey(pool, { partner: params.partner, name: body.name, scopes: body.scopes, rateLimit });
    if (!r.ok) throw adminError(r.error);
    return keyJson(r.value);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/keys/:key/revoke`, tags: ['partners'], role: 'operator', summary: 'Revoke a key at once',
    params: keyParams,
  }, async ({ params }) => {
    await ownKey(params.partner, params.key);
    const r = await revokeKey(pool, params.key);
    if (!r.ok) throw adminError(r.error);
    return keyJson(r.value);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/keys/:key/rotate`, tags: ['partners'], role: 'operator', responseStatus: 201,
    summary: 'Issue a replacement key; the old one keeps working for the overlap (default 24 h), then is refused',
    params: keyParams,
    body: z.object({ overlap_seconds: z.number().int().min(0).max(30 * 86_400).default(86_400) }).strict().default({ overlap_seconds: 86_400 }),
  }, async ({ params, body }) => {
    await ownKey(params.partner, params.key);
    const until = new Date(engine.clock.now().getTime() + body.overlap_seconds * 1000);
    const r = await withTx(pool, (tx) => rotateKey(tx, params.key, until));
    if (!r.ok) throw adminError(r.error);
    return keyJson(r.value);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/products`, tags: ['partners'], role: 'operator', summary: 'Create a product the partner sells tickets for',
    params: partnerParam, responseStatus: 201,
    body: z.object({ facility, name: z.string().min(1).max(200), price: money, currency: z.string().regex(/^[A-Z]{3}$/).optional() }).strict(),
  }, async ({ params, body }) => {
    const p = await mustFind(params.partner);
    return productJson(await createProduct(pool, { partnerId: p.id, facility: body.facility, name: body.name, price: body.price, currency: body.currency }));
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/gates`, tags: ['partners'], role: 'operator', summary: 'Create a gate where the partner redeems tickets',
    params: partnerParam, responseStatus: 201,
    body: z.object({ facility, name: z.string().min(1).max(200) }).strict(),
  }, async ({ params, body }) => {
    const p = await mustFind(params.partner);
    return gateJson(await createGate(pool, { partnerId: p.id, facility: body.facility, name: body.name }));
  });
}
