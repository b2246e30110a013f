// purchases.subscriptionsv2.get against the Google Play Developer API (or its simulator): the
// purchase token's subscription, validated, as facts; refusals (unknown token, bad credentials) as values.
import { request, type Dispatcher } from 'undici';
import { err, ok, type Result } from '../../kernel/errors.ts';
import { factsOf, subscriptionPurchaseV2, type GooglePlayFacts } from './subscription.ts';

export const DEFAULT_API_BASE = 'https://androidpublisher.googleapis.com';

export interface GooglePlayClientOptions {
  packageName: string;
  /** An OAuth 2.0 access token of the service account with access to the app. */
  accessToken: string;
  apiBase?: string | undefined;
  dispatcher?: Dispatcher | undefined;
}

export type GooglePlayRefusal =
  | { code: 'invalid_purchase_token'; message: string }
  | { code: 'store_unauthorized'; message: string }
  | { code: 'store_unavailable'; message: string }
  | { code: 'store_malformed_response'; message: string };

export const subscriptionPath = (packageName: string, token: string): string =>
  `/androidpublisher/v3/applications/${encodeURIComponent(packageName)}/purchases/subscriptionsv2/tokens/${encodeURIComponent(token)}`;

export async function getSubscriptionV2(o: GooglePlayClientOptions, purchaseToken: string, signal: AbortSignal): Promise<Result<GooglePlayFacts, GooglePlayRefusal>> {
  const res = await request(`${(o.apiBase ?? DEFAULT_API_BASE).replace(/\/+$/, '')}${subscriptionPath(o.packageName, purchaseToken)}`, {
    signal, headers: { authorization: `Bearer ${o.accessToken}`, accept: 'application/json' }, ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
  });
  const body = await res.body.json().catch(() => undefined) as { error?: { message?: string } } | undefined;
  if (res.statusCode === 401 || res.statusCode === 403) return err({ code: 'store_unauthorized', message: body?.error?.message ?? `Google Play answered ${res.statusCode}` });
  if (res.statusCode === 400 || res.statusCode === 404 || res.statusCode === 410) {
    return err({ code: 'invalid_purchase_token', message: body?.error?.message ?? `Google Play answered ${res.statusCode}` });
  }
  if (res.statusCode !== 200) return err({ code: 'store_unavailable', message: `Google Play answered ${res.statusCode}` });
  const parsed = subscriptionPurchaseV2.safeParse(body);
  if (!parsed.success) return err({ code: 'store_malformed_response', message: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
  return ok(factsOf(purchaseToken, parsed.data));
}
