// The legacy billing system's adapter: outbound calls only, keyed by member id. Operation
// kinds `billing.start`, `billing.renew`, `billing.cancel` with request `{ member_id, product_id,
// expires_at, reference }`; the operation's idempotency key travels as X-Request-Id, and `inquire`
// asks GET /v1/requests/:id what became of an unanswered call.
import { request, type Dispatcher } from 'undici';
import { err, ok } from '../../kernel/errors.ts';
import type { CallOutcome, InquiryResult, OperationRequest, ProviderAdapter } from '../types.ts';

export { BillingSimulator, type BillingFaults, type BillingSimulatorOptions, type BillingStatus, type BillingSubscription } from './simulator.ts';

export const BILLING_OPERATIONS = ['billing.start', 'billing.renew', 'billing.cancel'] as const;
export type BillingOperation = (typeof BILLING_OPERATIONS)[number];

export interface BillingOptions {
  name: string;
  apiBase: string;
  apiKey: string;
  dispatcher?: Dispatcher | undefined;
}

type ErrorBody = { error?: { code?: string; message?: string } };

/** A reply of the billing system as an outcome: 2xx done, 4xx refused (nothing done), anything else unknown. */
export function outcomeOf(status: number, body: Record<string, unknown> & ErrorBody): CallOutcome {
  if (status >= 200 && status < 300) return { status: 'succeeded', response: body };
  if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return { status: 'failed', code: body.error?.code ?? `http_${status}`, message: body.error?.message ?? `billing answered ${status}`, response: body };
  }
  throw new Error(`billing answered ${status}`);
}

export function billingAdapter(o: BillingOptions): ProviderAdapter {
  const base = o.apiBase.replace(/\/+$/, '');
  const headers = { authorization: `Bearer ${o.apiKey}`, 'content-type': 'application/json' };
  return {
    name: o.name,
    kind: 'billing',
    verify: () => err({ code: 'invalid_signature', message: 'the billing system sends no notifications' }),
    eventId: () => undefined,
    normalize: () => ok([]),
    async client(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome> {
      const action = /^billing\.(start|renew|cancel)$/.exec(op.kind)?.[1];
      const memberId = op.request.member_id;
      if (!action || typeof memberId !== 'string') return { status: 'failed', code: 'invalid_operation', message: `cannot send ${op.kind} without a member_id` };
      const { member_id: _m, ...body } = op.request;
      const res = await request(`${base}/v1/members/${encodeURIComponent(memberId)}/subscription/${action}`, {
        method: 'POST', signal, body: JSON.stringify(body), headers: { ...headers, 'x-request-id': op.idempotencyKey },
        ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
      });
      return outcomeOf(res.statusCode, await res.body.json() as Record<string, unknown>);
    },
    async inquire(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult> {
      const res = await request(`${base}/v1/requests/${encodeURIComponent(op.idempotencyKey)}`, {
        signal, headers, ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
      });
      const body = await res.body.json() as { status?: number; response?: Record<string, unknown> & ErrorBody; error?: { message?: string } };
      if (res.statusCode === 404) return { status: 'not_found' };
      if (res.statusCode !== 200 || typeof body.status !== 'number') return { status: 'unknown', message: body.error?.message ?? `billing answered ${res.statusCode}` };
      try {
        const out = outcomeOf(body.status, body.response ?? {});
        return out.status === 'succeeded' ? out : { status: 'failed', code: out.code, message: out.message, ...(out.response ? { response: out.response } : {}) };
      } catch {
        return { status: 'not_found' };
      }
    },
  };
}
