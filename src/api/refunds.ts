// Refunds of escrowed money (src/deposits/refunds.ts) for API clients: the wallet's backend
// registers the bank account a user's refunds go to (registering starts every refund that waited
// for one), reads it back, and lists the user's refunds.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError } from '../kernel/errors.ts';
import { BANK_ACCOUNT_TYPES, REFUND_STATUSES, refundMessage, type RefundAccount } from '../deposits/refunds.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const money = z.string().regex(/^\d+$/).describe('minor units as a decimal string');
const accountResponse = z.object({
  user_id: z.string(), bank_code: z.string(), bank_name: z.string().nullable(), branch_code: z.string(), branch_name: z.string().nullable(),
  account_type: z.enum(BANK_ACCOUNT_TYPES), account_number: z.string(), holder_kana: z.string(), version: z.number(),
  created_at: z.string(), updated_at: z.string(),
});
const refundResponse = z.object({
  id: z.string(), user_id: z.string(), source_type: z.enum(['deposit', 'bank_transfer']), source_id: z.string(),
  deposit_id: z.string().nullable(), bank_transfer_id: z.string().nullable(), route: z.enum(['komoju_refund_request', 'komoju_disbursement']),
  provider: z.string(), currency: z.string(), amount: money, payout_amount: money, fee: money, fee_payer: z.enum(['platform', 'user']),
  status: z.enum(REFUND_STATUSES), provider_refund_id: z.string().nullable(),
  failure_code: z.string().nullable(), failure_message: z.string().nullable(), created_at: z.string(), updated_at: z.string(),
});

const accountMessage = (a: RefundAccount) => ({
  user_id: a.userId, bank_code: a.bankCode, bank_name: a.bankName, branch_code: a.branchCode, branch_name: a.branchName,
  account_type: a.accountType, account_number: a.accountNumber, holder_kana: a.holderKana, version: a.version,
  created_at: a.createdAt.toISOString(), updated_at: a.updatedAt.toISOString(),
});

export async function refundRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const refunds = engine.refunds;
  route(app, registry, {
    method: 'POST', url: '/v1/refund-accounts', tags: ['deposits'], apiClient: true,
    summary: "Registers (or replaces) the bank account a user's refunds of escrowed money go to; starts the refunds that waited for it",
    body: z.object({
      user_id: z.string().min(1).max(255),
      bank_code: z.string().regex(/^\d{4}$/).describe('4-digit Zengin bank code'),
      bank_name: z.string().min(1).max(60).optional(),
      branch_code: z.string().regex(/^\d{3}$/).describe('3-digit Zengin branch code'),
      branch_name: z.string().min(1).max(60).optional(),
      account_type: z.enum(BANK_ACCOUNT_TYPES),
      account_number: z.string().regex(/^\d{1,7}$/),
      holder_kana: z.string().min(1).max(30).describe('口座名義 in half-width katakana'),
    }).strict(),
    response: z.object({ account: accountResponse, started_refunds: z.array(refundResponse) }),
  }, async ({ body }) => {
    const r = await refunds.registerAccount({
      userId: body.user_id, bankCode: body.bank_code, bankName: body.bank_name, branchCode: body.branch_code, branchName: body.branch_name,
      accountType: body.account_type, accountNumber: body.account_number, holderKana: body.holder_kana,
    });
    return { account: accountMessage(r.account), started_refunds: r.started.map(refundMessage) };
  });

  route(app, registry, {
    method: 'GET', url: '/v1/refund-accounts/:user_id', tags: ['deposits'], apiClient: true, errors: { 404: ['not_found'] }, summary: "The user's refund account",
    params: z.object({ user_id: z.string().min(1).max(255) }), response: accountResponse,
  }, async ({ params }) => {
    const a = await refunds.getAccount(params.user_id);
    if (!a) throw new NotFoundError('not_found', `no refund account for ${params.user_id}`);
    return accountMessage(a);
  });

  route(app, registry, {
    method: 'GET', url: '/v1/refunds', tags: ['deposits'], apiClient: true, summary: "A user's refunds of escrowed money, newest first",
    query: z.object({ user_id: z.string().min(1).max(255), ...listQuery() }),
    response: listOf(refundResponse),
  }, async ({ query }) => pageOf(await refunds.listRefunds(query.user_id, query.limit + 1, query.starting_after), query.limit, (r) => r.id, refundMessage));

  route(app, registry, {
    method: 'GET', url: '/v1/refunds/:id', tags: ['deposits'], apiClient: true, errors: { 404: ['not_found'] }, summary: 'One refund',
    params: z.object({ id: z.string().uuid() }), response: refundResponse,
  }, async ({ params }) => {
    const r = await refunds.getRefund(params.id);
    if (!r) throw new NotFoundError('not_found', `no refund ${params.id}`);
    return refundMessage(r);
  });

  route(app, registry, {
    method: 'GET', url: '/admin/v1/refunds', tags: ['deposits'], role: 'viewer',
    summary: 'Refunds of escrowed money across users, newest first; status=failed lists what went back to escrow',
    query: z.object({
      status: z.enum(REFUND_STATUSES).optional(),
      ...listQuery({ max: 500, default: 50 }),
    }),
    response: listOf(refundResponse),
  }, async ({ query }) => pageOf(
    await refunds.listAllRefunds({ status: query.status, limit: query.limit + 1, startingAfter: query.starting_after }), query.limit, (r) => r.id, refundMessage,
  ));
}
