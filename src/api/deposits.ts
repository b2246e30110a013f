// The deposits API (/v1/deposits) for API clients: create a deposit (card: realtime flow;
// konbini / Pay-easy: reservation; bank transfer: to the user's virtual account), read one, list a user's. Money is a decimal string in JSON. Expected refusals are 422
// problem+json with a stable code (balance_limit_exceeded carries `headroom` as an extension).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import { DEFAULT_MAX_DEPOSIT, DEPOSIT_METHODS, DEPOSIT_STATUSES, depositMessage, type CreateDepositError, type Deposits } from '../deposits/index.ts';
import { KONBINI_STORES } from '../providers/komoju/payment.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const MAX = Number(DEFAULT_MAX_DEPOSIT);
const money = z.string().regex(/^\d+$/).describe('minor units as a decimal string');

const depositResponse = z.object({
  id: z.string(), user_id: z.string(), method: z.enum(DEPOSIT_METHODS), amount: money, currency: z.string(), status: z.enum(DEPOSIT_STATUSES),
  provider: z.string(), operation_id: z.string().nullable(), provider_payment_id: z.string().nullable(),
  failure_code: z.string().nullable(), failure_message: z.string().nullable(),
  credited: money, escrowed: money, suspended: money, ledger_transaction_id: z.string().nullable(),
  created_at: z.string(), updated_at: z.string(),
  // konbini / Pay-easy / bank transfer: where and until when to pay, which notice credited it.
  payment_deadline: z.string().nullable(), payment_instructions: z.record(z.string(), z.string()).nullable(),
  credited_at_notice: z.enum(['preliminary', 'final']).nullable(), paid_after_deadline: z.boolean(), shortfall: money,
});

const createBody = z.object({
  method: z.enum(DEPOSIT_METHODS),
  user_id: z.string().min(1).max(255),
  // A JSON number (safe at this size) or a decimal string.
  amount: z.union([z.number().int().min(1).max(MAX), z.string().regex(/^[1-9]\d{0,7}$/).refine((s) => Number(s) <= MAX, `must be at most ${MAX}`)]),
  currency: z.literal('JPY').default('JPY'),
  payment_method: z.string().min(1).max(255).optional(),
  // konbini / payeasy: the customer's email (KOMOJU sends the payment instructions); konbini: the chain.
  email: z.string().min(3).max(254).optional(),
  store: z.enum(KONBINI_STORES).optional(),
  client_key: z.string().min(1).max(255).optional(),
}).strict();

export class UnprocessableError extends SeigoError {
  constructor(code: string, message: string, detail?: Record<string, unknown>, retryable = false) {
    super(code, message, 422, retryable, detail);
  }
}

function refusal(e: CreateDepositError): UnprocessableError {
  switch (e.code) {
    case 'balance_limit_exceeded':
      return new UnprocessableError(e.code, `the deposit would take the wallet over its balance limit; at most ${e.headroom} can be deposited now`, { headroom: e.headroom.toString() });
    case 'account_restricted':
      return new UnprocessableError(e.code, 'this user cannot make deposits at the moment');
    case 'client_key_reused':
      return new UnprocessableError(e.code, 'client_key was already used for a different deposit', { deposit_id: e.depositId });
    // Retryable: the same request succeeds once the account exists, so its Idempotency-Key is not kept for this answer.
    case 'virtual_account_required':
      return new UnprocessableError(e.code, 'this user has no virtual account to transfer to: create it with POST /v1/virtual-accounts, then send this request again',
        { create_with: 'POST /v1/virtual-accounts' }, true);
  }
}

export async function depositRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry, deposits: Deposits): Promise<void> {
  route(app, registry, {
    method: 'POST', url: '/v1/deposits', tags: ['deposits'], apiClient: true, responseStatus: 201, errors: { 422: ['balance_limit_exceeded', 'account_restricted', 'client_key_reused', 'virtual_account_required', 'email_required', 'store_required', 'method_not_available', 'payment_method_required'] },
    summary: 'Create a deposit. card: charged at once (realtime); konbini / payeasy: reserved (awaiting_payment with payment_instructions and payment_deadline), paid later; '
      + 'bank_transfer: awaiting_payment with the user\'s virtual account as payment_instructions (bank_code, branch_code, account_type, account_number, payer_name_kana) and a payment_deadline, '
      + 'paid by the first transfer of that amount to it (422 virtual_account_required without one: POST /v1/virtual-accounts first); '
      + 'the amount counts toward the balance limit until paid or expired. The answer is the deposit as it stands',
    body: createBody, response: depositResponse,
  }, async ({ body, req }) => {
    // A request whose process died after recording its deposit is run again when its Idempotency-Key
    // is taken over; without a client_key of its own, the key names the deposit, so the second run
    // finds the first run's deposit instead of making (and charging) another one.
    const header = req.headers['idempotency-key'];
    const clientKey = body.client_key ?? (typeof header === 'string' && header.length > 0 ? `idempotency:${req.apiClient?.name ?? ''}:${header}` : undefined);
    // A bank transfer needs the user's virtual account, which POST /v1/virtual-accounts assigns with
    // the registered kana name that transfers are matched by. Not assigned here from the deposit's
    // body: that name is the user's identity, set once by its own call, not a payment's parameter.
    if (body.method === 'bank_transfer') {
      const r = await deposits.createBankTransferDeposit({ userId: body.user_id, amount: BigInt(body.amount), currency: body.currency, clientKey });
      if (!r.ok) throw refusal(r.error);
      return depositMessage(r.value);
    }
    // Reservations need their provider (KOMOJU) configured; without it they are not offered.
    if ((body.method === 'konbini' || body.method === 'payeasy') && engine.providers.has(engine.config.deposits.reservationProvider)) {
      if (body.email === undefined) throw new UnprocessableError('email_required', `a ${body.method} deposit needs email`);
      if (body.method === 'konbini' && body.store === undefined) throw new UnprocessableError('store_required', 'a konbini deposit needs store');
      const r = await deposits.createReservationDeposit({
        userId: body.user_id, method: body.method, amount: BigInt(body.amount), currency: body.currency, email: body.email,
        store: body.store, clientKey,
      });
      if (!r.ok) throw refusal(r.error);
      return depositMessage(r.value);
    }
    if (body.method !== 'card') throw new UnprocessableError('method_not_available', `deposits by ${body.method} are not available yet`);
    if (body.payment_method === undefined) throw new UnprocessableError('payment_method_required', 'a card deposit needs payment_method');
    const r = await deposits.createCardDeposit({
      userId: body.user_id, amount: BigInt(body.amount), currency: body.currency, paymentMethod: body.payment_method, clientKey,
    });
    if (!r.ok) throw refusal(r.error);
    return depositMessage(r.value);
  });

  route(app, registry, {
    method: 'GET', url: '/v1/deposits/:id', tags: ['deposits'], apiClient: true, errors: { 404: ['not_found'] }, summary: 'One deposit',
    params: z.object({ id: z.string().uuid() }), response: depositResponse,
  }, async ({ params }) => {
    const d = await deposits.getDeposit(params.id);
    if (!d) throw new NotFoundError('not_found', `no deposit ${params.id}`);
    return depositMessage(d);
  });

  route(app, registry, {
    method: 'GET', url: '/v1/deposits', tags: ['deposits'], apiClient: true, summary: "A user's deposits, newest first",
    query: z.object({
      user_id: z.string().min(1).max(255),
      ...listQuery(),
    }),
    response: listOf(depositResponse),
  }, async ({ query }) => {
    const list = await deposits.listDeposits(query.user_id, { limit: query.limit + 1, before: query.starting_after });
    return pageOf(list, query.limit, (d) => d.id, depositMessage);
  });
}
