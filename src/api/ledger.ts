// Admin API for the ledger (read only, role viewer): an account with its balances and recent
// transactions, and one transaction with its entries. Money leaves as decimal strings.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { OpenApiRegistry } from './route.ts';
import { route } from './route.ts';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError } from '../kernel/errors.ts';
import { getAccount, getTransaction, listAccountTransactions } from '../ledger/index.ts';

const money = z.string().regex(/^-?\d+$/).describe('minor units as a decimal string');
const accountResponse = z.object({
  id: z.string(), kind: z.string(), owner: z.string(), currency: z.string(), shards: z.number(), created_at: z.string(),
  balance: z.object({ posted: money, pending_in: money, pending_out: money, available: money }),
  recent_transactions: z.array(z.object({ id: z.string(), kind: z.string(), description: z.string().nullable(), amount: money, created_at: z.string() })),
});
const transactionResponse = z.object({
  id: z.string(), idempotency_key: z.string(), kind: z.string(), description: z.string().nullable(), metadata: z.record(z.string(), z.unknown()),
  reverses: z.string().nullable(), created_at: z.string(),
  entries: z.array(z.object({ id: z.string(), account_id: z.string(), currency: z.string(), amount: money })),
});

export async function ledgerAdminRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const P = '/admin/v1/ledger';

  route(app, registry, {
    method: 'GET', url: `${P}/accounts/:id`, tags: ['ledger'], role: 'viewer', errors: { 404: ['not_found'] },
    summary: 'One ledger account with its balances (posted, holds, available) and recent transactions',
    params: z.object({ id: z.string().uuid() }),
    query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
    response: accountResponse,
  }, async ({ params, query }) => {
    const a = await getAccount(pool, params.id);
    if (!a) throw new NotFoundError('not_found', `no ledger account ${params.id}`);
    const recent = await listAccountTransactions(pool, a.id, query.limit);
    return {
      id: a.id, kind: a.kind, owner: a.owner, currency: a.currency, shards: a.shards, created_at: a.createdAt.toISOString(),
      balance: { posted: String(a.balance.posted), pending_in: String(a.balance.pendingIn), pending_out: String(a.balance.pendingOut), available: String(a.balance.available) },
      recent_transactions: recent.map((t) => ({ id: t.transactionId, kind: t.kind, description: t.description, amount: String(t.amount), created_at: t.createdAt.toISOString() })),
    };
  });

  route(app, registry, {
    method: 'GET', url: `${P}/transactions/:id`, tags: ['ledger'], role: 'viewer', errors: { 404: ['not_found'] },
    summary: 'One ledger transaction with its entries',
    params: z.object({ id: z.string().uuid() }),
    response: transactionResponse,
  }, async ({ params }) => {
    const t = await getTransaction(pool, params.id);
    if (!t) throw new NotFoundError('not_found', `no ledger transaction ${params.id}`);
    return {
      id: t.id, idempotency_key: t.idempotencyKey, kind: t.kind, description: t.description, metadata: t.metadata, reverses: t.reverses,
      created_at: t.createdAt.toISOString(),
      entries: t.entries.map((e) => ({ id: e.id, account_id: e.accountId, currency: e.currency, amount: String(e.amount) })),
    };
  });
}
