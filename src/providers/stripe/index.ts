// The `stripe` provider kind: webhook events signed with `Stripe-Signature`, charges made as
// confirmed PaymentIntents, inquiry through PaymentIntent search/retrieve, history from the list API.
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { err, ok, type Result } from '../../kernel/errors.ts';
import type {
  CallOutcome, CanonicalEvent, HistoryRow, IncomingNotification, InquiryResult, OperationRequest, ProviderAdapter, SyntheticNotification,
} from '../types.ts';
import {
  DEFAULT_API_BASE, StripeNoOutcomeError, chargeSchema, eventSchema, listSchema, parseError, paymentIntentSchema,
  searchValue, stripeRequest, type PaymentIntent, type StripeEvent, type StripeHttp,
} from './api.ts';
import { DEFAULT_TOLERANCE_SECONDS, verifySignature } from './signature.ts';
import { keepHeaders, parseJsonBody, zodIssues } from '../shared.ts';

export { computeSignature, signatureHeader, verifySignature, parseSignatureHeader } from './signature.ts';
export { StripeNoOutcomeError, type PaymentIntent } from './api.ts';
export { StripeSimulator, type StripeFaults, type StripeSimulatorOptions } from './simulator.ts';

/** The metadata key that ties a PaymentIntent to the seigo operation that created it. */
export const OPERATION_METADATA_KEY = 'seigo_operation_id';

const KEPT_HEADERS = ['stripe-signature', 'content-type', 'user-agent'] as const;

export interface StripeOptions {
  secretKey: string;
  webhookSecrets: readonly string[];
  /** Default https://api.stripe.com; the simulator's URL in dev and tests. */
  apiBase?: string;
  dispatcher?: Dispatcher;
  toleranceSeconds?: number;
  /** Pins `Stripe-Version`; unset, the account's default version answers. */
  apiVersion?: string;
  /**
   * Stripe's search index can lag writes (normally under a minute, up to an hour in outages), so an
   * empty search only means "never received" for operations older than this. Default 3600.
   */
  searchLagSeconds?: number;
  /** Timeout for each history page request. Default 30 s. */
  historyPageTimeoutMs?: number;
}

/** What `op.request` must hold for `kind: 'charge'`. */
const chargeRequestSchema = z.object({
  amount: z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d{0,17}$/)]),
  currency: z.string().regex(/^[A-Za-z]{3}$/),
  payment_method: z.string().min(1),
  description: z.string().optional(),
  customer: z.string().optional(),
  off_session: z.boolean().optional(),
  return_url: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** Set once the PaymentIntent id is known, so inquiry can retrieve instead of search. */
  provider_payment_id: z.string().optional(),
});

export function stripeAdapter(name: string, opts: StripeOptions): ProviderAdapter {
  const http: StripeHttp = { apiBase: opts.apiBase ?? DEFAULT_API_BASE, secretKey: opts.secretKey, apiVersion: opts.apiVersion, dispatcher: opts.dispatcher };
  const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const searchLagMs = (opts.searchLagSeconds ?? 3600) * 1000;
  const historyTimeoutMs = opts.historyPageTimeoutMs ?? 30_000;

  return {
    name,
    kind: 'stripe',
    eventId(req) {
      const e = parseEvent(req.rawBody);
      return e.ok ? e.value.id : undefined;
    },
    verify(req: IncomingNotification) {
      const check = verifySignature(opts.webhookSecrets, req.headers['stripe-signature'], req.rawBody, req.receivedAt, tolerance);
      if (!check.ok) return err({ code: 'invalid_signature', message: signatureMessage(check.reason) });
      const event = parseEvent(req.rawBody);
      if (!event.ok) return err({ code: 'unparseable', message: event.error });
      return ok({ eventId: event.value.id, headers: keepHeaders(req.headers, KEPT_HEADERS) });
    },
    normalize(stored) {
      const event = parseEvent(stored.body);
      if (!event.ok) return event;
      return normalizeEvent(event.value);
    },

    async client(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome> {
      if (op.kind !== 'charge') return { status: 'failed', code: 'unsupported_operation', message: `stripe cannot perform "${op.kind}"`, retryable: false };
      const parsed = chargeRequestSchema.safeParse(op.request);
      if (!parsed.success) return { status: 'failed', code: 'invalid_request', message: zodIssues(parsed.error), retryable: false };
      const r = parsed.data;
      const form = new URLSearchParams();
      form.set('amount', String(r.amount));
      form.set('currency', r.currency.toLowerCase());
      form.set('payment_method', r.payment_method);
      form.set('confirm', 'true');
      if (r.description !== undefined) form.set('description', r.description);
      if (r.customer !== undefined) form.set('customer', r.customer);
      if (r.off_session !== undefined) form.set('off_session', String(r.off_session));
      // A server-side confirm has no page to come back to: without a return_url, refuse redirect-based methods.
      if (r.return_url !== undefined) form.set('return_url', r.return_url);
      else {
        form.set('automatic_payment_methods[enabled]', 'true');
        form.set('automatic_payment_methods[allow_redirects]', 'never');
      }
      for (const [k, v] of Object.entries(r.metadata ?? {})) form.set(`metadata[${k}]`, v);
      form.set(`metadata[${OPERATION_METADATA_KEY}]`, op.id);

      const res = await stripeRequest(http, 'POST', '/v1/payment_intents', { form, idempotencyKey: op.idempotencyKey, signal });
      if (res.status >= 200 && res.status < 300) {
        const pi = paymentIntentSchema.safeParse(res.json);
        if (!pi.success) throw new StripeNoOutcomeError('stripe_bad_response', `Stripe answered ${res.status} with a body that is not a PaymentIntent`);
        const outcome = outcomeOf(pi.data);
        if (outcome.status === 'unknown') throw new StripeNoOutcomeError('stripe_outcome_not_final', outcome.message, { provider_payment_id: pi.data.id });
        return outcome;
      }
      return classifyHttpError(res.status, res.json);
    },

    async inquire(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult> {
      const known = typeof op.request.provider_payment_id === 'string' ? op.request.provider_payment_id : undefined;
      if (known) {
        const res = await stripeRequest(http, 'GET', `/v1/payment_intents/${encodeURIComponent(known)}`, { signal });
        if (res.status === 404) return { status: 'not_found' };
        const pi = expectOk(res.status, res.json, paymentIntentSchema);
        return outcomeOf(pi);
      }
      const query = new URLSearchParams({ query: `metadata['${OPERATION_METADATA_KEY}']:${searchValue(op.id)}`, limit: '100' });
      const res = await stripeRequest(http, 'GET', '/v1/payment_intents/search', { query, signal });
      const page = expectOk(res.status, res.json, listSchema);
      const found = page.data.map((d) => paymentIntentSchema.safeParse(d)).filter((p) => p.success).map((p) => p.data);
      if (found.length === 0) {
        const age = ageOfUuidV7(op.id);
        if (searchLagMs > 0 && (age === undefined || age < searchLagMs)) {
          return { status: 'unknown', message: 'no PaymentIntent found yet; Stripe search may lag recent writes' };
        }
        return { status: 'not_found' };
      }
      // One key gives one PaymentIntent; two only if a key was pruned (24 h) and reused: any success wins.
      const best = found.find((p) => p.status === 'succeeded') ?? found.sort((a, b) => b.created - a.created)[0]!;
      return outcomeOf(best);
    },

    async *history(from: Date, to: Date): AsyncGenerator<HistoryRow> {
      // Half-open windows in whole seconds, so adjacent windows tile without overlap or gap.
      const base = new URLSearchParams({
        'created[gte]': String(Math.floor(from.getTime() / 1000)),
        'created[lt]': String(Math.floor(to.getTime() / 1000)),
        limit: '100',
      });
      let after: string | undefined;
      for (;;) {
        const query = new URLSearchParams(base);
        if (after !== undefined) query.set('starting_after', after);
        const res = await stripeRequest(http, 'GET', '/v1/payment_intents', { query, signal: AbortSignal.timeout(historyTimeoutMs) });
        const page = expectOk(res.status, res.json, listSchema);
        let last: string | undefined;
        for (const item of page.data) {
          const pi = paymentIntentSchema.safeParse(item);
          if (!pi.success) throw new StripeNoOutcomeError('stripe_bad_response', `history: not a PaymentIntent: ${zodIssues(pi.error)}`);
          last = pi.data.id;
          yield {
            externalId: pi.data.id,
            occurredAt: new Date(pi.data.created * 1000).toISOString(),
            amount: BigInt(pi.data.amount),
            currency: pi.data.currency.toUpperCase(),
            status: pi.data.status,
            raw: pi.data,
          };
        }
        if (!page.has_more || last === undefined) return;
        after = last;
      }
    },

    syntheticNotification(object, o): SyntheticNotification | undefined {
      const status = object.status;
      const type = status === 'succeeded' ? 'payment_intent.succeeded' : status === 'canceled' ? 'payment_intent.canceled'
        : status === 'requires_payment_method' && object.last_payment_error ? 'payment_intent.payment_failed' : undefined;
      if (!type) return undefined;
      const event = { id: o.eventId, object: 'event', api_version: null, created: Math.floor(o.at.getTime() / 1000), livemode: false, type, data: { object } };
      return { type, body: Buffer.from(JSON.stringify(event)) };
    },
  };
}

/** What a PaymentIntent's status tells us about the charge. */
export function outcomeOf(pi: PaymentIntent): Exclude<InquiryResult, { status: 'not_found' }> {
  switch (pi.status) {
    case 'succeeded':
      return { status: 'succeeded', response: pi };
    case 'canceled':
      return { status: 'failed', code: 'canceled', message: 'the PaymentIntent was canceled', response: pi };
    case 'requires_payment_method': {
      // After a confirm, this status means the attempt failed; the cause is in last_payment_error.
      const e = pi.last_payment_error;
      return { status: 'failed', code: e?.decline_code ?? e?.code ?? 'requires_payment_method', message: e?.message ?? 'the payment method was refused', response: pi };
    }
    default:
      // processing, requires_action, requires_confirmation, requires_capture: not final yet.
      return { status: 'unknown', message: `PaymentIntent ${pi.id} is ${pi.status}` };
  }
}

function classifyHttpError(status: number, json: unknown): CallOutcome {
  const e = parseError(json);
  if (status === 429 || status >= 500 || status === 409) {
    throw new StripeNoOutcomeError(status === 429 ? 'stripe_rate_limited' : 'stripe_unavailable', `Stripe answered ${status}: ${e?.message ?? 'no error body'}`);
  }
  // Same key, different parameters: a request under this key exists and may have charged. Inquiry decides.
  if (e?.type === 'idempotency_error') throw new StripeNoOutcomeError('stripe_idempotency_conflict', e.message ?? 'idempotency key reused with different parameters');
  const response: Record<string, unknown> = e?.payment_intent ? { error: e, payment_intent: e.payment_intent } : { error: e ?? json ?? null };
  if (status === 402) {
    return { status: 'failed', code: e?.decline_code ?? e?.code ?? 'card_error', message: e?.message ?? 'the card was declined', response, retryable: false };
  }
  if (status >= 400 && status < 500) {
    return { status: 'failed', code: e?.code ?? e?.type ?? `http_${status}`, message: e?.message ?? `Stripe answered ${status}`, response, retryable: false };
  }
  throw new StripeNoOutcomeError('stripe_unexpected_status', `Stripe answered ${status}`);
}

function expectOk<T>(status: number, json: unknown, schema: z.ZodType<T>): T {
  if (status < 200 || status >= 300) {
    const e = parseError(json);
    throw new StripeNoOutcomeError(`stripe_http_${status}`, `Stripe answered ${status}: ${e?.message ?? 'no error body'}`);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new StripeNoOutcomeError('stripe_bad_response', `unexpected Stripe answer: ${zodIssues(r.error)}`);
  return r.data;
}

function parseEvent(body: Buffer): Result<StripeEvent, string> {
  return parseJsonBody(body, eventSchema, 'a Stripe event');
}

const PAYMENT_INTENT_EVENTS: Record<string, string> = {
  'payment_intent.succeeded': 'payment.succeeded',
  'payment_intent.payment_failed': 'payment.failed',
  'payment_intent.canceled': 'payment.canceled',
};

/** Stripe events in seigo's terms; types we do not map pass through as `stripe.<type>` with their object. */
export function normalizeEvent(event: StripeEvent): Result<CanonicalEvent[], string> {
  const occurredAt = new Date(event.created * 1000).toISOString();
  const mapped = PAYMENT_INTENT_EVENTS[event.type];
  if (mapped) {
    const pi = paymentIntentSchema.safeParse(event.data.object);
    if (!pi.success) return err(`${event.type}: data.object is not a PaymentIntent: ${zodIssues(pi.error)}`);
    return ok([{
      type: mapped,
      entityType: 'payment_intent',
      entityId: pi.data.id,
      occurredAt,
      data: {
        provider_payment_id: pi.data.id,
        amount: String(pi.data.amount),
        currency: pi.data.currency.toUpperCase(),
        status: pi.data.status,
        metadata: pi.data.metadata ?? {},
        ...(pi.data.last_payment_error ? { error_code: pi.data.last_payment_error.decline_code ?? pi.data.last_payment_error.code ?? null } : {}),
      },
    }]);
  }
  if (event.type === 'charge.refunded') {
    const ch = chargeSchema.safeParse(event.data.object);
    if (!ch.success) return err(`charge.refunded: data.object is not a Charge: ${zodIssues(ch.error)}`);
    const paymentId = ch.data.payment_intent ?? ch.data.id;
    return ok([{
      type: 'payment.refunded',
      entityType: ch.data.payment_intent ? 'payment_intent' : 'charge',
      entityId: paymentId,
      occurredAt,
      data: {
        provider_payment_id: paymentId,
        provider_charge_id: ch.data.id,
        // The cumulative refunded amount: a second partial refund sends a larger total, not a delta.
        amount: String(ch.data.amount_refunded),
        charge_amount: String(ch.data.amount),
        currency: ch.data.currency.toUpperCase(),
        status: ch.data.refunded ? 'refunded' : 'partially_refunded',
        metadata: ch.data.metadata ?? {},
      },
    }]);
  }
  const object = event.data.object;
  const out: CanonicalEvent = { type: `stripe.${event.type}`, occurredAt, data: object };
  if (typeof object.id === 'string' && typeof object.object === 'string') {
    out.entityType = object.object;
    out.entityId = object.id;
  }
  return ok([out]);
}

/** Milliseconds since the time embedded in a UUIDv7, or undefined when the id is not one. */
function ageOfUuidV7(id: string, now = Date.now()): number | undefined {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.exec(id);
  if (!m) return undefined;
  return now - parseInt(m[1]! + m[2]!, 16);
}


function signatureMessage(reason: string): string {
  switch (reason) {
    case 'missing_header': return 'the Stripe-Signature header is required';
    case 'bad_header': return 'Stripe-Signature has no timestamp or no v1 signature';
    case 'stale_timestamp': return 'the Stripe-Signature timestamp is outside the tolerance window';
    default: return 'no v1 signature in Stripe-Signature matches';
  }
}
