// Subscriptions as Svix / Convoy users manage them, over the real admin API with a running worker and a real
// loopback receiver: change, delete, rotate the secret (both secrets sign during the overlap), test messages,
// and the attempt log (status, latency, bounded response excerpt).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../providers/standard-webhooks/signature.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type ReceivedRequest, type Receiver } from '../../test/helpers/receiver.ts';

const receivers: Receiver[] = [];
async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}
afterEach(async () => { await Promise.all(receivers.splice(0).map((r) => r.close())); });

const header = (req: ReceivedRequest, k: string) => { const v = req.headers[k]; return Array.isArray(v) ? v[0] : v; };
const verifies = (secret: string, req: ReceivedRequest) => verifySignature([secret],
  { id: header(req, 'webhook-id'), timestamp: header(req, 'webhook-timestamp'), signature: header(req, 'webhook-signature') }, req.body, new Date()).ok;

interface Attempt { attempt: number; status_code: number | null; latency_ms: number; outcome: string; error: string | null; response_excerpt: string | null }
interface AttemptList { object: string; data: Attempt[]; has_more: boolean; next_cursor: string | null }

describe('subscription management', () => {
  let t: TestEngine;
  beforeAll(async () => { t = await startTestEngine({ worker: true }); });
  afterAll(async () => { await t?.close(); });

  async function create(name: string, url: string, extra: Record<string, unknown> = {}) {
    const r = await admin<{ secret: string }>(t.url, 'POST', '/subscriptions', { name, topic: 'orders.*', target: { type: 'http', url, timeout_ms: 5_000 }, ...extra });
    expect(r.status).toBe(201);
    return r.json.secret;
  }

  it('a test message reaches the endpoint alone, signed, and its attempts are logged with status, latency and a bounded excerpt', async () => {
    let n = 0;
    const rx = await receiver(() => (++n === 1 ? { status: 503, body: 'x'.repeat(5000) } : { status: 200, body: '{"ok":true}' }));
    const other = await receiver();
    const secret = await create('tested', rx.url, { retry_schedule: ['1s'] });
    await create('bystander', other.url);
    const sent = await admin<{ delivery_id: string; topic: string }>(t.url, 'POST', '/subscriptions/tested/test', { payload: { hello: 'world' } });
    expect(sent.status).toBe(202);
    expect(sent.json.topic).toBe('seigo.test');
    const log = await eventually(async () => {
      const r = await admin<AttemptList>(t.url, 'GET', `/deliveries/${sent.json.delivery_id}/attempts`);
      return r.json.data.length === 2 && r.json;
    });
    expect(log).toMatchObject({ object: 'list', has_more: false, next_cursor: null });
    const [first, second] = log.data;
    expect(first).toMatchObject({ attempt: 1, status_code: 503, outcome: 'retry' });
    expect(first!.response_excerpt).toHaveLength(1024);
    expect(first!.error).toMatch(/^HTTP 503/);
    expect(second).toMatchObject({ attempt: 2, status_code: 200, outcome: 'delivered', error: null, response_excerpt: '{"ok":true}' });
    for (const a of log.data) expect(a.latency_ms).toBeGreaterThanOrEqual(0);
    expect(rx.requests).toHaveLength(2);
    expect(JSON.parse(rx.requests[1]!.body.toString())).toMatchObject({ type: 'seigo.test', data: { hello: 'world' } });
    expect(verifies(secret, rx.requests[1]!)).toBe(true);
    expect(other.requests).toHaveLength(0);

    const paged = await admin<AttemptList>(t.url, 'GET', `/deliveries/${sent.json.delivery_id}/attempts?limit=1`);
    expect(paged.json).toMatchObject({ has_more: true, data: [{ attempt: 1 }] });
    const next = await admin<AttemptList>(t.url, 'GET', `/deliveries/${sent.json.delivery_id}/attempts?limit=1&starting_after=${paged.json.next_cursor}`);
    expect(next.json).toMatchObject({ has_more: false, data: [{ attempt: 2 }] });
  });

  it('rotating the secret with an overlap signs with both; without one, only the new secret signs', async () => {
    const rx = await receiver();
    const old = await create('rotated', rx.url);
    const rotated = await admin<{ secret: string; previous_secret_expires_at: string }>(t.url, 'POST', '/subscriptions/rotated/secret/rotate', { overlap_seconds: 3600 });
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).toMatch(/^whsec_/);
    expect(rotated.json.secret).not.toBe(old);
    expect(Date.parse(rotated.json.previous_secret_expires_at) - Date.now()).toBeGreaterThan(3500_000);
    await admin(t.url, 'POST', '/subscriptions/rotated/test');
    await eventually(async () => rx.requests.length === 1);
    const during = rx.requests[0]!;
    expect(header(during, 'webhook-signature')!.split(' ')).toHaveLength(2);
    expect(verifies(rotated.json.secret, during)).toBe(true);
    expect(verifies(old, during)).toBe(true);

    const again = await admin<{ secret: string; previous_secret_expires_at: string | null }>(t.url, 'POST', '/subscriptions/rotated/secret/rotate', { overlap_seconds: 0 });
    expect(again.json.previous_secret_expires_at).toBeNull();
    await admin(t.url, 'POST', '/subscriptions/rotated/test');
    await eventually(async () => rx.requests.length === 2);
    const after = rx.requests[1]!;
    expect(header(after, 'webhook-signature')!.split(' ')).toHaveLength(1);
    expect(verifies(again.json.secret, after)).toBe(true);
    expect(verifies(rotated.json.secret, after)).toBe(false);
  });

  it('PATCH changes what it names and keeps the rest (and the secret); DELETE removes it with its deliveries', async () => {
    const rx = await receiver();
    const secret = await create('changed', 'http://127.0.0.1:9/nowhere');
    const patched = await admin<Record<string, unknown>>(t.url, 'PATCH', '/subscriptions/changed', { target: { type: 'http', url: rx.url, timeout_ms: 2000 }, filter: { provider: 'acme' } });
    expect(patched.status).toBe(200);
    expect(patched.json).toMatchObject({ name: 'changed', topic: 'orders.*', filter: { provider: 'acme' }, target: { type: 'http', url: rx.url, timeout_ms: 2000 }, status: 'active' });
    const paused = await admin(t.url, 'PATCH', '/subscriptions/changed', { status: 'paused', reason: 'maintenance' });
    expect(paused.json).toMatchObject({ status: 'paused', status_reason: 'maintenance', filter: { provider: 'acme' } });
    await admin(t.url, 'PATCH', '/subscriptions/changed', { status: 'active' });
    await admin(t.url, 'POST', '/messages', { topic: 'orders.created', payload: { id: 1 }, attributes: { provider: 'acme' } });
    await eventually(async () => rx.requests.length === 1);
    expect(verifies(secret, rx.requests[0]!)).toBe(true);

    const deleted = await admin(t.url, 'DELETE', '/subscriptions/changed');
    expect(deleted.json).toMatchObject({ name: 'changed', deleted: true, deliveries_deleted: 1 });
    expect((await admin(t.url, 'GET', '/subscriptions/changed')).status).toBe(404);
    const gone = await admin(t.url, 'DELETE', '/subscriptions/changed');
    expect(gone.status).toBe(404);
    expect(gone.json).toMatchObject({ code: 'subscription_not_found' });
  });

  it('refusals are problems with codes: a handler target takes no test message and has no secret; a bad body names the field', async () => {
    await admin(t.url, 'POST', '/subscriptions', { name: 'inproc', topic: 'x', target: { type: 'handler', handler: 'points' } });
    const test = await admin(t.url, 'POST', '/subscriptions/inproc/test');
    expect(test.status).toBe(422);
    expect(test.json).toMatchObject({ code: 'not_http_target' });
    expect((await admin(t.url, 'POST', '/subscriptions/inproc/secret/rotate', {})).json).toMatchObject({ code: 'not_http_target' });
    const bad = await admin(t.url, 'PATCH', '/subscriptions/inproc', { retry_schedule: [] });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: 'invalid_request' });
    expect((await admin(t.url, 'GET', '/deliveries/01a23ce3-0000-7000-8000-000000000000/attempts')).status).toBe(404);
  });
});
