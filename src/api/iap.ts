// POST /v1/iap/purchases for API clients (the apps' backend): a StoreKit 2 signed transaction or a
// Google Play purchase token, and the member id, run through the purchase saga. Idempotency-Key as
// every /v1 POST; it also keys the saga, so a retry after a crash continues the same purchase.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import { runPurchase, type PurchaseInput, type PurchaseOutcome } from '../iap/index.ts';
import { route, type OpenApiRegistry } from './route.ts';

const member = z.string().min(1).max(255);
const purchaseBody = z.discriminatedUnion('platform', [
  z.object({
    platform: z.literal('app_store'),
    signed_transaction: z.string().min(1).max(16_384).describe('the StoreKit 2 signed transaction (JWS)'),
    product_id: z.string().min(1).max(255).optional(),
    member_id: member,
  }).strict(),
  z.object({
    platform: z.literal('google_play'),
    purchase_token: z.string().min(1).max(4_096),
    product_id: z.string().min(1).max(255),
    member_id: member,
  }).strict(),
]);

const purchaseResponse = z.object({
  saga_id: z.string(),
  status: z.enum(['completed', 'pending']),
  subscription: z.object({
    id: z.string(), member_id: z.string(), platform: z.enum(['app_store', 'google_play']), product_id: z.string(),
    expires_at: z.string().nullable(), created: z.boolean(),
  }).optional(),
});

/** A refusal's HTTP status: a store's verification refused is 401, a purchase we do not sell or that entitles nothing 422. */
const REFUSAL_STATUS: Record<string, number> = {
  invalid_signature: 401, wrong_bundle_id: 401, wrong_environment: 401,
  unknown_product: 422, product_mismatch: 422, not_entitled: 422, invalid_purchase_token: 422, platform_not_configured: 422,
  claimed_by_another_member: 409,
  store_unavailable: 503,
};

export function purchaseAnswer(o: PurchaseOutcome, reply: { code(n: number): unknown }): z.infer<typeof purchaseResponse> {
  if (o.kind === 'completed') {
    const s = o.subscription;
    return {
      saga_id: o.sagaId, status: 'completed',
      subscription: { id: s.id, member_id: s.member_id, platform: s.platform, product_id: s.product_id, expires_at: s.expires_at?.toISOString() ?? null, created: o.created },
    };
  }
  if (o.kind === 'pending') {
    reply.code(202);
    return { saga_id: o.sagaId, status: 'pending' };
  }
  const status = REFUSAL_STATUS[o.code] ?? 502;
  const code = status === 502 ? 'purchase_failed' : o.code;
  throw new SeigoError(code, o.message, status, status === 503, { saga_id: o.sagaId, cause: o.code, ...(o.caseId ? { case_id: o.caseId } : {}) });
}

export async function iapRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  route(app, registry, {
    method: 'POST', url: '/v1/iap/purchases', tags: ['iap'], apiClient: true,
    summary: 'Records an in-app purchase: verified with the store, started or renewed in the billing system, mapped to the member',
    body: purchaseBody, response: purchaseResponse,
  }, async ({ body, req, reply }) => {
    const iap = engine.iap;
    if (!iap) throw new NotFoundError('iap_not_configured', 'in-app purchases are not configured (config "iap")');
    const header = req.headers['idempotency-key'];
    const key = typeof header === 'string' && header.length > 0 ? `idempotency:${req.apiClient?.name ?? ''}:${header}` : undefined;
    const outcome = await runPurchase(engine.db.pool, engine.sagas, iap, body as PurchaseInput, key);
    engine.metrics.iapPurchases.inc({ platform: body.platform, outcome: outcome.kind === 'refused' ? outcome.code : outcome.kind });
    return purchaseAnswer(outcome, reply);
  });
}
