// The KOMOJU adapter: konbini, Pay-easy and bank-transfer (銀行振込) reservations through the
// Payments API v1, their webhooks in seigo's canonical terms, inquiry and history for the janitor
// and reconciliation. Facts from doc.komoju.com (payments, payment details, webhooks, idempotent
// requests, errors); the preliminary/final paid-notice split is our extension, see payment.ts.
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { err, ok } from '../../kernel/errors.ts';
import type {
  CallOutcome, CanonicalEvent, HistoryRow, IncomingNotification, InquiryResult, OperationRequest, ProviderAdapter, SyntheticNotification,
} from '../types.ts';
import {
  KOMOJU_TYPE, KONBINI_STORES, PRELIMINARY_CANCELLED_EVENT, PRELIMINARY_PAID_EVENT, describePayment, errorBodySchema, eventSchema,
  methodOf, paymentListSchema, paymentSchema, type KomojuPayment,
} from './payment.ts';
import { SIGNATURE_HEADER, verifySignature } from './signature.ts';
import { keepHeaders, parseJsonBody, zodIssues } from '../shared.ts';

export { sign, verifySignature } from './signature.ts';
export { KomojuSimulator, type KomojuFaults, type KomojuSimulatorOptions } from './simulator.ts';
export { PRELIMINARY_CANCELLED_EVENT, PRELIMINARY_PAID_EVENT } from './payment.ts';

export const DEFAULT_API_BASE = 'https://komoju.com';
const KEPT_HEADERS = ['x-komoju-id', 'x-komoju-event', 'x-komoju-signature', 'content-type', 'user-agent'] as const;
const PER_PAGE = 100;

export interface KomojuOptions {
  /** The merchant's secret API key, sent as the Basic-auth username. */
  secretKey: string;
  /** Webhook secret tokens; more than one while rotating. */
  webhookSecrets: readonly string[];
  apiBase?: string | undefined;
  dispatcher?: Dispatcher | undefined;
}

// What `op.request` holds for each kind. JSON from our own table, validated anyway: it is an edge.
const amountSchema = z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,14}$/)]).transform((v) => Number(v));
const reserveSchema = z.object({
  method: z.enum(['konbini', 'payeasy', 'bank_transfer']),
  amount: amountSchema,
  currency: z.string().length(3).default('JPY'),
  /** Defaults to the operation's idempotency key, which is what lets `inquire` find the payment again. */
  externalOrderNum: z.string().min(1).max(255).optional(),
  email: z.string().min(3),
  phone: z.string().optional(),
  store: z.enum(KONBINI_STORES).optional(),
  familyName: z.string().optional(),
  givenName: z.string().optional(),
  familyNameKana: z.string().optional(),
  givenNameKana: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
});
const cancelSchema = z.object({ paymentId: z.string().min(1) });
// A payout of escrowed money (src/deposits/refunds.ts) to the user's bank account.
const bankAccountSchema = {
  bankCode: z.string().regex(/^\d{4}$/),
  bankName: z.string().min(1).optional(),
  branchCode: z.string().regex(/^\d{3}$/),
  branchName: z.string().min(1).optional(),
  accountType: z.enum(['ordinary', 'checking', 'savings']),
  accountNumber: z.string().regex(/^\d{7}$/),
  holderKana: z.string().min(1),
};
/** POST /api/v1/payments/:id/refund_request: the documented refund of konbini / Pay-easy / bank-transfer payments. */
const refundRequestSchema = z.object({
  paymentId: z.string().min(1), amount: amountSchema, refundId: z.string().min(1), ...bankAccountSchema,
  providerRefundId: z.string().optional(),
});
/** POST /api/v1/disbursements: a payout from the merchant's KOMOJU balance (no KOMOJU payment to refund). */
const disbursementSchema = z.object({
  amount: amountSchema, currency: z.string().length(3).default('JPY'), refundId: z.string().min(1), ...bankAccountSchema,
  providerRefundId: z.string().optional(),
});
/** KOMOJU's refund request account types (CreateRefundRequestRequest); disbursements take ours as they are. */
const REFUND_REQUEST_ACCOUNT_TYPE = { ordinary: 'normal', checking: 'checking', savings: 'savings' } as const;
const refundRequestObject = z.looseObject({ id: z.string(), status: z.string(), description: z.string().nullish() });
const disbursementObject = z.looseObject({
  id: z.string(), status: z.string(), amount: z.number().int(), fee: z.number().int().nullish(), fee_tax: z.number().int().nullish(),
  external_id: z.string().nullish(), error: z.string().nullish(), created_at: z.string().optional(),
});
/**
 * Our words for where a payout stands: pending, completed, or rejected (refused by the bank or
 * KOMOJU); a status not named here is still pending. KOMOJU's own names, from the enums of its
 * OpenAPI document as its official SDKs carry them (the doc.komoju.com pages were not found):
 * a refund request is pending, completed or rejected
 * (https://github.com/komoju/komoju-node-sdk/blob/1544e52049622ae564eaeb5b0e7404f447b18105/models/refund-request-status.ts);
 * a disbursement is pending, paid, failed or cancelled
 * (https://github.com/komoju/komoju-node-sdk/blob/1544e52049622ae564eaeb5b0e7404f447b18105/models/disbursement-status.ts,
 * the same in komoju/komoju-ruby-sdk lib/komoju-ruby-client/models/disbursement_status.rb).
 */
type PayoutStatus = 'completed' | 'rejected';
const REFUND_REQUEST_STATUS: ReadonlyMap<string, PayoutStatus> = new Map([['completed', 'completed'], ['rejected', 'rejected']]);
const DISBURSEMENT_STATUS: ReadonlyMap<string, PayoutStatus> = new Map([['paid', 'completed'], ['failed', 'rejected'], ['cancelled', 'rejected']]);
const payoutStatus = (names: ReadonlyMap<string, PayoutStatus>, s: string): PayoutStatus | 'pending' => names.get(s) ?? 'pending';
const refundDescription = (refundId: string) => `seigo refund ${refundId}`;
const lookupSchema = z.object({ paymentId: z.string().min(1).optional(), externalOrderNum: z.string().min(1).optional() });

/** A response we could not classify: thrown so the operation becomes `unknown`, never `failed`. */
export class KomojuTransportError extends Error {
  constructor(message: string, readonly statusCode?: number) {
    super(message);
    this.name = 'KomojuTransportError';
  }
}

export function komojuAdapter(name: string, opts: KomojuOptions): ProviderAdapter {
  const base = (opts.apiBase ?? DEFAULT_API_BASE).replace(/\/+$/, '');
  const auth = `Basic ${Buffer.from(`${opts.secretKey}:`).toString('base64')}`;

  async function call(method: 'GET' | 'POST', path: string, o: { body?: unknown; idempotencyKey?: string; signal?: AbortSignal | undefined } = {}) {
    const headers: Record<string, string> = { authorization: auth, accept: 'application/json' };
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    if (o.idempotencyKey !== undefined) headers['x-komoju-idempotency'] = o.idempotencyKey;
    const res = await request(`${base}${path}`, {
      method, headers,
      ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
    });
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text.length ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, json };
  }

  /** 2xx → the payment; a definite 4xx refusal → failed with KOMOJU's code; anything else throws. */
  function outcomeOf(status: number, json: unknown): CallOutcome {
    if (status >= 200 && status < 300) {
      const p = paymentSchema.safeParse(json);
      if (!p.success) throw new KomojuTransportError(`KOMOJU answered ${status} with a body that is not a payment`, status);
      return { status: 'succeeded', response: { ...describePayment(p.data), payment: p.data } };
    }
    // 409: a retry overlapped the first request with this idempotency key, whose outcome we do not know yet.
    // 429: not processed, but "try again", not "no". Both leave the operation to inquiry.
    if (status >= 400 && status < 500 && status !== 409 && status !== 429 && status !== 408) {
      const e = errorBodySchema.safeParse(json);
      const code = e.success ? e.data.error.code : `http_${status}`;
      const message = e.success ? e.data.error.message : `KOMOJU refused the request with HTTP ${status}`;
      return { status: 'failed', code, message, retryable: false, response: { http_status: status, ...(e.success ? { error: e.data.error } : {}) } };
    }
    throw new KomojuTransportError(`KOMOJU answered HTTP ${status}`, status);
  }

  async function findByOrderNum(orderNum: string, signal: AbortSignal): Promise<InquiryResult> {
    const r = await call('GET', `/api/v1/payments?${new URLSearchParams({ external_order_num: orderNum, per_page: '10' })}`, { signal });
    if (r.status !== 200) return { status: 'unknown', message: `payment search answered HTTP ${r.status}` };
    const list = paymentListSchema.safeParse(r.json);
    if (!list.success) return { status: 'unknown', message: 'payment search answered with an unexpected body' };
    const found = list.data.data.map((d) => paymentSchema.safeParse(d)).filter((p) => p.success).map((p) => p.data)
      .filter((p) => p.external_order_num === orderNum);
    if (found.length === 0) return { status: 'not_found' };
    if (found.length > 1) return { status: 'unknown', message: `${found.length} payments carry external_order_num ${orderNum}` };
    return reservationResult(found[0]!);
  }

  async function showPayment(id: string, signal: AbortSignal): Promise<{ kind: 'found'; payment: KomojuPayment } | { kind: 'missing' } | { kind: 'unknown'; message: string }> {
    const r = await call('GET', `/api/v1/payments/${encodeURIComponent(id)}`, { signal });
    if (r.status === 404) return { kind: 'missing' };
    if (r.status !== 200) return { kind: 'unknown', message: `show payment answered HTTP ${r.status}` };
    const p = paymentSchema.safeParse(r.json);
    return p.success ? { kind: 'found', payment: p.data } : { kind: 'unknown', message: 'show payment answered with an unexpected body' };
  }

  return {
    name,
    kind: 'komoju',

    eventId(req) {
      try {
        const id = (JSON.parse(req.rawBody.toString('utf8')) as { id?: unknown }).id;
        return typeof id === 'string' && id.length > 0 ? id : undefined;
      } catch {
        return undefined;
      }
    },

    verify(req: IncomingNotification) {
      const check = verifySignature(opts.webhookSecrets, header(req.headers, SIGNATURE_HEADER), req.rawBody);
      if (!check.ok) {
        return err({ code: 'invalid_signature', message: check.reason === 'missing_signature' ? 'the X-Komoju-Signature header is required' : 'X-Komoju-Signature does not match the body under any webhook secret' });
      }
      const parsed = parseEvent(req.rawBody);
      if (!parsed.ok) return err({ code: 'unparseable', message: parsed.error });
      return ok({ eventId: parsed.value.id, headers: keepHeaders(req.headers, KEPT_HEADERS) });
    },

    normalize(stored) {
      const parsed = parseEvent(stored.body);
      if (!parsed.ok) return parsed;
      return normalizeEvent(parsed.value);
    },

    async client(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome> {
      switch (op.kind) {
        case 'reserve': {
          const r = reserveSchema.safeParse(op.request);
          if (!r.success) return { status: 'failed', code: 'invalid_request', message: zodIssues(r.error), retryable: false };
          const q = r.data;
          const details: Record<string, unknown> = { type: KOMOJU_TYPE[q.method], email: q.email };
          if (q.method === 'konbini') {
            if (!q.store) return { status: 'failed', code: 'invalid_request', message: 'store is required for a konbini payment', retryable: false };
            details.store = q.store;
          }
          if (q.phone !== undefined) details.phone = q.phone;
          if (q.familyName !== undefined) details.family_name = q.familyName;
          if (q.givenName !== undefined) details.given_name = q.givenName;
          if (q.familyNameKana !== undefined) details.family_name_kana = q.familyNameKana;
          if (q.givenNameKana !== undefined) details.given_name_kana = q.givenNameKana;
          const body = {
            amount: q.amount, currency: q.currency, external_order_num: q.externalOrderNum ?? op.idempotencyKey,
            payment_details: details, ...(q.metadata ? { metadata: q.metadata } : {}),
          };
          const res = await call('POST', '/api/v1/payments', { body, idempotencyKey: op.idempotencyKey, signal });
          return outcomeOf(res.status, res.json);
        }
        case 'cancel': {
          const r = cancelSchema.safeParse(op.request);
          if (!r.success) return { status: 'failed', code: 'invalid_request', message: zodIssues(r.error), retryable: false };
          const res = await call('POST', `/api/v1/payments/${encodeURIComponent(r.data.paymentId)}/cancel`, { idempotencyKey: op.idempotencyKey, signal });
          return outcomeOf(res.status, res.json);
        }
        case 'refund_request': {
          const r = refundRequestSchema.safeParse(op.request);
          if (!r.success) return { status: 'failed', code: 'invalid_request', message: zodIssues(r.error), retryable: false };
          const q = r.data;
          const body = {
            amount: q.amount, customer_name: q.holderKana, bank_name: q.bankName ?? q.bankCode, bank_code: q.bankCode,
            ...(q.branchName !== undefined ? { branch_name: q.branchName } : {}), branch_number: q.branchCode,
            // A string, not the documented integer: an account number may start with 0.
            account_type: REFUND_REQUEST_ACCOUNT_TYPE[q.accountType], account_number: q.accountNumber,
            include_payment_method_fee: false, description: refundDescription(q.refundId),
          };
          const res = await call('POST', `/api/v1/payments/${encodeURIComponent(q.paymentId)}/refund_request`, { body, idempotencyKey: op.idempotencyKey, signal });
          if (res.status < 200 || res.status >= 300) return outcomeOf(res.status, res.json);
          const p = paymentSchema.safeParse(res.json);
          if (!p.success) throw new KomojuTransportError(`KOMOJU answered ${res.status} with a body that is not a payment`, res.status);
          const found = refundRequestOf(p.data, q.refundId);
          if (!found) throw new KomojuTransportError('KOMOJU accepted the refund request but the payment does not list it');
          return { status: 'succeeded', response: found };
        }
        case 'disbursement': {
          const r = disbursementSchema.safeParse(op.request);
          if (!r.success) return { status: 'failed', code: 'invalid_request', message: zodIssues(r.error), retryable: false };
          const q = r.data;
          const body = {
            amount: q.amount, currency: q.currency, account_number: q.accountNumber, account_type: q.accountType,
            account_name_kana: q.holderKana, bank_code: q.bankCode, branch_code: q.branchCode, external_id: q.refundId,
          };
          const res = await call('POST', '/api/v1/disbursements', { body, idempotencyKey: op.idempotencyKey, signal });
          if (res.status < 200 || res.status >= 300) return outcomeOf(res.status, res.json);
          const x = disbursementObject.safeParse(res.json);
          if (!x.success) throw new KomojuTransportError(`KOMOJU answered ${res.status} with a body that is not a disbursement`, res.status);
          return { status: 'succeeded', response: describeDisbursement(x.data) };
        }
        default:
          return { status: 'failed', code: 'unsupported_operation', message: `KOMOJU adapter has no operation "${op.kind}"`, retryable: false };
      }
    },

    async inquire(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult> {
      const r = lookupSchema.safeParse(op.request);
      const lookup = r.success ? r.data : {};
      switch (op.kind) {
        case 'reserve': {
          if (lookup.paymentId) {
            const s = await showPayment(lookup.paymentId, signal);
            if (s.kind === 'missing') return { status: 'not_found' };
            return s.kind === 'unknown' ? { status: 'unknown', message: s.message } : reservationResult(s.payment);
          }
          return findByOrderNum(lookup.externalOrderNum ?? op.idempotencyKey, signal);
        }
        case 'cancel': {
          if (!lookup.paymentId) return { status: 'unknown', message: 'a cancel operation without paymentId cannot be looked up' };
          const s = await showPayment(lookup.paymentId, signal);
          if (s.kind === 'unknown') return { status: 'unknown', message: s.message };
          if (s.kind === 'missing') return { status: 'failed', code: 'not_found', message: `KOMOJU has no payment ${lookup.paymentId}` };
          const p = s.payment;
          const response = { ...describePayment(p), payment: p };
          if (p.status === 'cancelled') return { status: 'succeeded', response };
          // Still awaiting payment: the cancel never took effect.
          if (p.status === 'authorized' || p.status === 'pending') return { status: 'not_found' };
          return { status: 'failed', code: `payment_${p.status}`, message: `the payment is ${p.status} and cannot be cancelled`, response };
        }
        case 'refund_request': {
          // The request is found on its payment by the description we gave it (KOMOJU has no other key for it).
          const q = refundRequestSchema.safeParse(op.request);
          if (!q.success) return { status: 'unknown', message: 'a refund_request operation without paymentId cannot be looked up' };
          const s = await showPayment(q.data.paymentId, signal);
          if (s.kind === 'unknown') return { status: 'unknown', message: s.message };
          if (s.kind === 'missing') return { status: 'failed', code: 'not_found', message: `KOMOJU has no payment ${q.data.paymentId}` };
          const found = refundRequestOf(s.payment, q.data.refundId);
          return found ? { status: 'succeeded', response: found } : { status: 'not_found' };
        }
        case 'disbursement': {
          const q = disbursementSchema.safeParse(op.request);
          if (!q.success) return { status: 'unknown', message: 'a disbursement operation without refundId cannot be looked up' };
          if (q.data.providerRefundId) {
            const r = await call('GET', `/api/v1/disbursements/${encodeURIComponent(q.data.providerRefundId)}`, { signal });
            if (r.status === 404) return { status: 'failed', code: 'not_found', message: `KOMOJU has no disbursement ${q.data.providerRefundId}` };
            const x = disbursementObject.safeParse(r.json);
            if (r.status !== 200 || !x.success) return { status: 'unknown', message: `show disbursement answered HTTP ${r.status}` };
            return { status: 'succeeded', response: describeDisbursement(x.data) };
          }
          // Not answered: look for our external_id among the disbursements (newest pages first are not promised, so all of them).
          for (let page = 1; ; page++) {
            const r = await call('GET', `/api/v1/disbursements?${new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) })}`, { signal });
            const list = paymentListSchema.safeParse(r.json);
            if (r.status !== 200 || !list.success) return { status: 'unknown', message: `disbursement list answered HTTP ${r.status}` };
            for (const raw of list.data.data) {
              const x = disbursementObject.safeParse(raw);
              if (x.success && x.data.external_id === q.data.refundId) return { status: 'succeeded', response: describeDisbursement(x.data) };
            }
            if (list.data.data.length === 0 || page >= list.data.last_page) return { status: 'not_found' };
          }
        }
        default:
          return { status: 'unknown', message: `KOMOJU adapter cannot inquire about "${op.kind}"` };
      }
    },

    async *history(from: Date, to: Date): AsyncIterable<HistoryRow> {
      for (let page = 1; ; page++) {
        const qs = new URLSearchParams({ start_time: from.toISOString(), end_time: to.toISOString(), page: String(page), per_page: String(PER_PAGE) });
        const r = await call('GET', `/api/v1/payments?${qs}`);
        if (r.status !== 200) throw new KomojuTransportError(`payment list answered HTTP ${r.status}`, r.status);
        const list = paymentListSchema.safeParse(r.json);
        if (!list.success) throw new KomojuTransportError('payment list answered with an unexpected body');
        for (const raw of list.data.data) {
          const p = paymentSchema.safeParse(raw);
          if (!p.success) throw new KomojuTransportError(`payment list page ${page} holds a row that is not a payment`);
          yield {
            externalId: p.data.id,
            occurredAt: p.data.captured_at ?? p.data.created_at,
            amount: BigInt(p.data.amount),
            currency: p.data.currency,
            status: p.data.status,
            raw: p.data,
          };
        }
        if (list.data.data.length === 0 || page >= list.data.last_page) return;
      }
    },

    syntheticNotification(object, o): SyntheticNotification | undefined {
      const type = typeof object.status === 'string' ? EVENT_FOR_STATUS.get(object.status) : undefined;
      if (!type) return undefined;
      const event = { id: o.eventId, type, resource: 'event', data: object, created_at: o.at.toISOString() };
      return { type, body: Buffer.from(JSON.stringify(event)) };
    },
  };
}

/** Our refund's request on a payment, in seigo's words, or undefined when the payment does not list it. */
function refundRequestOf(p: KomojuPayment, refundId: string): Record<string, unknown> | undefined {
  const list = Array.isArray(p.refund_requests) ? p.refund_requests : [];
  for (const raw of list) {
    const r = refundRequestObject.safeParse(raw);
    if (r.success && r.data.description === refundDescription(refundId)) {
      return { provider_refund_id: r.data.id, refund_status: payoutStatus(REFUND_REQUEST_STATUS, r.data.status), provider_payment_id: p.id, refund_request: r.data };
    }
  }
  return undefined;
}

function describeDisbursement(x: z.infer<typeof disbursementObject>): Record<string, unknown> {
  return {
    provider_refund_id: x.id, refund_status: payoutStatus(DISBURSEMENT_STATUS, x.status), fee: String((x.fee ?? 0) + (x.fee_tax ?? 0)),
    ...(x.error ? { error: x.error } : {}), disbursement: x,
  };
}

/** What a found payment says about the reservation call that created it. */
function reservationResult(p: KomojuPayment): InquiryResult {
  const response = { ...describePayment(p), payment: p };
  if (p.status === 'failed') return { status: 'failed', code: 'payment_failed', message: 'KOMOJU has the payment as failed', response };
  // authorized, captured, expired, cancelled, refunded: the reservation itself was made.
  return { status: 'succeeded', response };
}

const CANONICAL: Readonly<Record<string, { type: string; notice?: 'preliminary' | 'final' }>> = {
  'payment.authorized': { type: 'reservation.created' },
  [PRELIMINARY_PAID_EVENT]: { type: 'payment.paid_preliminary', notice: 'preliminary' }, // 速報
  [PRELIMINARY_CANCELLED_EVENT]: { type: 'payment.preliminary_cancelled' }, // 速報取消
  'payment.captured': { type: 'payment.succeeded', notice: 'final' }, // 確報
  'payment.expired': { type: 'reservation.expired' },
  'payment.cancelled': { type: 'reservation.cancelled' },
  'payment.refunded': { type: 'payment.refunded' },
};

/** The KOMOJU event that announces a payment's reaching each status (for syntheticNotification). */
const EVENT_FOR_STATUS: ReadonlyMap<string, string> = new Map([
  ['captured', 'payment.captured'], ['expired', 'payment.expired'], ['cancelled', 'payment.cancelled'], ['refunded', 'payment.refunded'],
]);

/**
 * One KOMOJU event → at most one canonical event. Events we have no use for (ping, payment.updated,
 * payment.refund.created, customer.*, …) and payments of other methods (cards, wallets) yield none:
 * they are acknowledged and kept in the inbox, not errors.
 */
export function normalizeEvent(e: ReturnType<typeof eventSchema.parse>) {
  const m = CANONICAL[e.type];
  if (!m) return ok([] as CanonicalEvent[]);
  const p = paymentSchema.safeParse(e.data);
  if (!p.success) return err(`event ${e.id} (${e.type}) does not carry a payment: ${zodIssues(p.error)}`);
  const method = methodOf(p.data.payment_details?.type ?? undefined);
  if (!method) return ok([] as CanonicalEvent[]);
  const data = describePayment(p.data);
  if (m.notice) data.notice = m.notice;
  if (m.notice === 'final' && p.data.captured_at && p.data.payment_deadline) {
    data.paid_after_deadline = Date.parse(p.data.captured_at) > Date.parse(p.data.payment_deadline);
  }
  const event: CanonicalEvent = { type: m.type, entityType: 'payment', entityId: p.data.id, data };
  if (e.created_at !== undefined) event.occurredAt = e.created_at;
  return ok([event]);
}

function parseEvent(body: Buffer) {
  return parseJsonBody(body, eventSchema, 'a KOMOJU event');
}

function header(headers: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const direct = headers[name];
  if (direct !== undefined) return direct;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

