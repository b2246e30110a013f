// Stripe's REST API as the adapter needs it: form-encoded requests, JSON answers, and the shapes
// of the objects we read (PaymentIntent, Charge, Event, error), validated at the edge with zod.
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { SeigoError } from '../../kernel/errors.ts';

export const DEFAULT_API_BASE = 'https://api.stripe.com';

export const paymentIntentSchema = z.looseObject({
  id: z.string().min(1),
  object: z.literal('payment_intent'),
  amount: z.number().int().nonnegative(),
  currency: z.string().min(1),
  status: z.string().min(1),
  created: z.number().int(),
  metadata: z.record(z.string(), z.string()).nullish(),
  last_payment_error: z.looseObject({ code: z.string().nullish(), decline_code: z.string().nullish(), message: z.string().nullish(), type: z.string().nullish() }).nullish(),
});
export type PaymentIntent = z.infer<typeof paymentIntentSchema>;

export const chargeSchema = z.looseObject({
  id: z.string().min(1),
  object: z.literal('charge'),
  amount: z.number().int().nonnegative(),
  amount_refunded: z.number().int().nonnegative(),
  currency: z.string().min(1),
  status: z.string(),
  refunded: z.boolean().optional(),
  payment_intent: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
});

export const eventSchema = z.looseObject({
  id: z.string().min(1).max(255),
  object: z.literal('event'),
  type: z.string().min(1).max(200),
  created: z.number().int(),
  livemode: z.boolean().optional(),
  api_version: z.string().nullish(),
  data: z.looseObject({ object: z.record(z.string(), z.unknown()) }),
});
export type StripeEvent = z.infer<typeof eventSchema>;

export const errorSchema = z.looseObject({
  error: z.looseObject({
    type: z.string(),
    code: z.string().nullish(),
    decline_code: z.string().nullish(),
    message: z.string().nullish(),
    param: z.string().nullish(),
    payment_intent: z.record(z.string(), z.unknown()).nullish(),
  }),
});
export type StripeApiError = z.infer<typeof errorSchema>['error'];

export const listSchema = z.looseObject({
  object: z.enum(['list', 'search_result']),
  has_more: z.boolean(),
  next_page: z.string().nullish(),
  data: z.array(z.unknown()),
});

/**
 * Stripe answered, but not with an outcome we may record as final: 5xx, 429, an idempotency
 * conflict, a body we cannot read, or a PaymentIntent still `processing`. Thrown, so the caller
 * records the operation `unknown` and the janitor's inquiry settles it.
 */
export class StripeNoOutcomeError extends SeigoError {
  constructor(code: string, message: string, detail?: Record<string, unknown>) {
    super(code, message, 502, true, detail);
  }
}

export interface StripeHttp {
  apiBase: string;
  secretKey: string;
  apiVersion?: string | undefined;
  dispatcher?: Dispatcher | undefined;
}

export interface StripeResponse {
  status: number;
  json: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** One call to Stripe. Throws on transport failures and aborts; any HTTP status is returned. */
export async function stripeRequest(
  http: StripeHttp,
  method: 'GET' | 'POST',
  path: string,
  opts: { query?: URLSearchParams; form?: URLSearchParams; idempotencyKey?: string; signal: AbortSignal },
): Promise<StripeResponse> {
  const url = new URL(path, http.apiBase);
  if (opts.query) url.search = opts.query.toString();
  const headers: Record<string, string> = { authorization: `Bearer ${http.secretKey}`, accept: 'application/json' };
  if (http.apiVersion) headers['stripe-version'] = http.apiVersion;
  if (opts.idempotencyKey) headers['idempotency-key'] = opts.idempotencyKey;
  let body: string | undefined;
  if (opts.form) {
    body = opts.form.toString();
    headers['content-type'] = 'application/x-www-form-urlencoded';
  }
  const res = await request(url, {
    method,
    headers,
    signal: opts.signal,
    ...(body === undefined ? {} : { body }),
    ...(http.dispatcher ? { dispatcher: http.dispatcher } : {}),
  });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, headers: res.headers };
}

export function parseError(json: unknown): StripeApiError | undefined {
  const r = errorSchema.safeParse(json);
  return r.success ? r.data.error : undefined;
}

/** Quotes a value for Stripe's search query language. */
export function searchValue(v: string): string {
  return `'${v.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}
