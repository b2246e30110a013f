// A user's balances by user id for API clients (the wallet's backend): what can be spent, what holds
// reserve, what waits in escrow or suspense, and the limit. Money leaves as decimal strings.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { DEFAULT_CURRENCY, getUserBalances, type UserBalances } from '../ledger/index.ts';
import { route, type OpenApiRegistry } from './route.ts';

const money = z.string().regex(/^-?\d+$/).describe('minor units as a decimal string');
const balancesResponse = z.object({
  object: z.literal('balance'),
  user_id: z.string(),
  currency: z.string(),
  available: money.describe('posted minus outgoing holds: what the user can spend'),
  posted: money,
  holds: z.object({ incoming: money.describe('deposits reserved, not yet paid (count toward the limit)'), outgoing: money }),
  escrow: money.describe('deposited over the limit, waiting for a refund'),
  suspense: money.describe('deposited while the user is restricted'),
  limit: money,
  headroom: money.describe('what the wallet can still take: limit − posted − incoming holds'),
  restricted: z.boolean(),
});

/** The wire shape; `defaultLimit` applies without a per-user override. */
export function balancesJson(b: UserBalances, defaultLimit: bigint): z.output<typeof balancesResponse> {
  const limit = b.limitOverride ?? defaultLimit;
  const headroom = limit - b.posted - b.pendingIn;
  return {
    object: 'balance', user_id: b.owner, currency: b.currency,
    available: String(b.available), posted: String(b.posted),
    holds: { incoming: String(b.pendingIn), outgoing: String(b.pendingOut) },
    escrow: String(b.escrow), suspense: String(b.suspense),
    limit: String(limit), headroom: String(headroom > 0n ? headroom : 0n), restricted: b.restricted,
  };
}

export async function balanceRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  route(app, registry, {
    method: 'GET', url: '/v1/balances/:user_id', tags: ['balances'], apiClient: true,
    summary: "A user's balances by user id: available, holds, escrow, suspense and the limit (zeros for a user without deposits)",
    params: z.object({ user_id: z.string().min(1).max(255) }),
    query: z.object({ currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code, e.g. JPY').default(DEFAULT_CURRENCY) }),
    response: balancesResponse,
  }, async ({ params, query }) => {
    const b = await getUserBalances(engine.db.pool, params.user_id, query.currency);
    return balancesJson(b, BigInt(engine.config.deposits.defaultLimit));
  });
}
