// Points for API clients: a user's balance (provisional, confirmed, expiring soon) and history,
// and spending (POST honours Idempotency-Key, as every API-client POST does).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import { pointsBalance, pointsHistory, spendPoints } from '../points/index.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const points = z.string().regex(/^-?\d+$/).describe('points as a decimal string');
const balanceResponse = z.object({ user_id: z.string(), provisional: points, confirmed: points, expiring_soon: points, expiring_before: z.string() });

export async function pointsRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const cfg = engine.config.points;
  const pool = engine.db.pool;
  const enabled = () => {
    if (!cfg) throw new NotFoundError('points_disabled', 'points are not configured (config key "points")');
    return cfg;
  };
  route(app, registry, {
    method: 'GET', url: '/v1/points/:user_id', tags: ['points'], apiClient: true, errors: { 404: ['points_disabled'] }, summary: "A user's points: provisional, confirmed and expiring soon",
    params: z.object({ user_id: z.string().min(1).max(255) }), response: balanceResponse,
  }, async ({ params }) => {
    const b = await pointsBalance(pool, params.user_id, engine.clock.now(), enabled().expiringSoonDays);
    return {
      user_id: b.userId, provisional: b.provisional.toString(), confirmed: b.confirmed.toString(),
      expiring_soon: b.expiringSoon.toString(), expiring_before: b.expiringBefore.toISOString(),
    };
  });
  route(app, registry, {
    method: 'GET', url: '/v1/points/:user_id/history', tags: ['points'], apiClient: true, errors: { 404: ['points_disabled'] }, summary: "A user's awards (with the rule applied), spends and expiries, newest first",
    params: z.object({ user_id: z.string().min(1).max(255) }), query: z.object(listQuery({ max: 500, default: 100 })),
    response: listOf(z.object({
      id: z.string(), kind: z.string(), purchase_key: z.string().nullable(), rule: z.string().nullable(),
      provisional: points, confirmed: points, transaction_id: z.string(), created_at: z.string(),
    })),
  }, async ({ params, query }) => {
    enabled();
    const rows = await pointsHistory(pool, params.user_id, query.limit + 1, query.starting_after);
    return pageOf(rows, query.limit, (h) => h.id, (h) => ({
      id: h.id, kind: h.kind, purchase_key: h.purchaseKey, rule: h.rule, provisional: h.provisional.toString(),
      confirmed: h.confirmed.toString(), transaction_id: h.transactionId, created_at: h.createdAt.toISOString(),
    }));
  });
  route(app, registry, {
    method: 'POST', url: '/v1/points/spend', tags: ['points'], apiClient: true, responseStatus: 201, errors: { 404: ['points_disabled'], 409: ['insufficient_points'] },
    summary: "Spends a user's confirmed points, oldest lots first; 409 insufficient_points when they do not have them",
    body: z.object({ user_id: z.string().min(1).max(255), points: z.string().regex(/^[1-9]\d{0,17}$/).describe('a positive number of points, as a string') }).strict(),
    response: z.object({ user_id: z.string(), spent: points, confirmed: points, transaction_id: z.string() }),
  }, async ({ body }) => {
    enabled();
    const r = await spendPoints(pool, body.user_id, BigInt(body.points));
    if (!r.ok) throw new SeigoError('insufficient_points', `the user has ${r.error.available} points to spend`, 409, false, { available: r.error.available.toString() });
    return { user_id: body.user_id, spent: r.value.spent.toString(), confirmed: r.value.balance.toString(), transaction_id: r.value.transactionId };
  });
}
