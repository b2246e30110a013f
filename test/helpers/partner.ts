// Calls the partner API over real HTTP with a real partner key, and sets partners up through the admin API.
import { request } from 'undici';
import { admin } from './admin.ts';

export interface PartnerResponse<T = Record<string, unknown>> { status: number; json: T; headers: Record<string, string | string[] | undefined> }

export async function partnerCall<T = Record<string, unknown>>(
  base: string, method: 'GET' | 'POST', path: string, key: string | null, body?: unknown, headers: Record<string, string> = {},
): Promise<PartnerResponse<T>> {
  const res = await request(`${base}/partner/v1${path}`, {
    method,
    headers: {
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

export interface TestPartner { id: string; name: string; key: string; keyId: string; productId: string; gateId: string; facility: string }

/** A partner with one product and one gate at `facility`, and a key with `scopes` (default: all). */
export async function setUpPartner(
  base: string, name: string, opts: { facility?: string; scopes?: string[]; price?: string; rateLimit?: { requests: number; window_seconds: number } } = {},
): Promise<TestPartner> {
  const facility = opts.facility ?? `${name}-park`;
  const p = await admin<{ id: string }>(base, 'POST', '/partners', { name });
  if (p.status !== 201) throw new Error(`partner: ${p.status} ${JSON.stringify(p.json)}`);
  const scopes = opts.scopes ?? ['tickets:issue', 'tickets:redeem', 'tickets:read', 'products:read', 'gates:sync'];
  const k = await admin<{ id: string; key: string }>(base, 'POST', `/partners/${name}/keys`, { scopes, ...(opts.rateLimit ? { rate_limit: opts.rateLimit } : {}) });
  const pr = await admin<{ id: string }>(base, 'POST', `/partners/${name}/products`, { facility, name: 'day pass', price: opts.price ?? '3000' });
  const g = await admin<{ id: string }>(base, 'POST', `/partners/${name}/gates`, { facility, name: 'north gate' });
  return { id: p.json.id, name, key: k.json.key, keyId: k.json.id, productId: pr.json.id, gateId: g.json.id, facility };
}
