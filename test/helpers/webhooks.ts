// Sends real Standard Webhooks requests, signed with a real key, over loopback HTTP.
import { request } from 'undici';
import { signedHeaders } from '../../src/providers/standard-webhooks/signature.ts';
import { TEST_SECRET } from './engine.ts';

export interface SentWebhook { status: number; json: Record<string, unknown>; headers: Record<string, unknown> }

export async function sendWebhook(base: string, opts: { provider?: string; id: string; type?: string; data?: Record<string, unknown>; secret?: string; body?: string; headers?: Record<string, string>; now?: Date }): Promise<SentWebhook> {
  const body = opts.body ?? JSON.stringify({ type: opts.type ?? 'payment.succeeded', timestamp: new Date().toISOString(), data: opts.data ?? { id: `pay_${opts.id}` } });
  const headers = { 'content-type': 'application/json', ...signedHeaders(opts.secret ?? TEST_SECRET, opts.id, body, opts.now), ...opts.headers };
  const res = await request(`${base}/webhooks/${opts.provider ?? 'acme'}`, { method: 'POST', body, headers });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { json = { raw: text }; }
  return { status: res.statusCode, json, headers: res.headers };
}
