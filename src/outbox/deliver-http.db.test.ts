// HTTP subscribers on real PostgreSQL and real loopback HTTP: Standard Webhooks signatures with the
// subscription's secret, retries and DLQ, 410 Gone, per-subscription timeouts, the SSRF guard, and
// two workers sharing one queue.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { verifySignature } from '../providers/standard-webhooks/signature.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, secondEngine, startTestEngine, type SecondEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type ReceivedRequest, type Receiver } from '../../test/helpers/receiver.ts';
import { publish, publishMany, upsertSubscription } from './index.ts';

interface DeliveryRow { id: string; status: string; attempts: number; last_error: string | null; last_status_code: number | null; later: boolean }

async function deliveriesOf(t: TestEngine, subscription: string): Promise<DeliveryRow[]> {
  const r = await t.tdb.db.pool.query<DeliveryRow>(
    `SELECT d.id, d.status, d.attempts, d.last_error, d.last_status_code, d.next_attempt_at > now() AS later
     FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = $1 ORDER BY d.message_id`, [subscription]);
  return r.rows;
}

function signatureOk(secret: string, req: ReceivedRequest): boolean {
  const h = (k: string) => { const v = req.headers[k]; return Array.isArray(v) ? v[0] : v; };
  return verifySignature([secret], { id: h('webhook-id'), timestamp: h('webhook-timestamp'), signature: h('webhook-signature') }, req.body, new Date()).ok;
}

const receivers: Receiver[] = [];
async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
}
afterEach(async () => { await Promise.all(receivers.splice(0).map((r) => r.close())); });

interface CreatedSubscription { name: string; secret: string; status: string }

describe('HTTP delivery with a running worker', () => {
  let t: TestEngine;
  beforeAll(async () => { t = await startTestEngine({ worker: true }); });
  afterAll(async () => { await t?.close(); });

  it('POSTs {type, timestamp, data} signed with the subscription\'s secret, webhook-id = delivery id', async () => {
    const rx = await receiver();
    const sub = await admin<CreatedSubscription>(t.url, 'POST', '/subscriptions', { name: 'signed', topic: 'x.deposit.paid', target: { type: 'http', url: rx.url, timeout_ms: 5_000 } });
    expect(sub.status).toBe(201);
    expect(sub.json.secret).toMatch(/^whsec_/);
    const payload = { depositId: 'dep_1', amount: 1200, note: 'said "hi" \\ {back}', memo: '入金 速報', tags: ['a', 'b'], nested: { ok: true, none: null } };
    const published = await admin<{ id: string }>(t.url, 'POST', '/messages', { topic: 'x.deposit.paid', payload, attributes: { provider: 'acme' } });
    expect(published.status).toBe(201);

    const [d] = await eventually(async () => {
      const rows = await deliveriesOf(t, 'signed');
      return rows[0]?.status === 'delivered' && rows;
    });
    expect(d).toMatchObject({ attempts: 1, last_status_code: 200, last_error: null });
    expect(rx.requests).toHaveLength(1);
    const req = rx.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/hook');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['webhook-id']).toBe(d!.id);
    expect(signatureOk(sub.json.secret, req)).toBe(true);
    expect(signatureOk('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', req)).toBe(false);
    const m = await t.tdb.db.pool.query<{ created_at: Date }>('SELECT created_at FROM outbox_messages WHERE id = $1', [published.json.id]);
    expect(JSON.parse(req.body.toString())).toEqual({ type: 'x.deposit.paid', timestamp: m.rows[0]!.created_at.toISOString(), data: payload });
  });

  it('retries a non-2xx answer on the schedule, then dead with status and body; a redrive after the fix delivers', async () => {
    const rx = await receiver(() => ({ status: 503, body: 'down for maintenance' }));
    const sub = await admin<CreatedSubscription>(t.url, 'POST', '/subscriptions', {
      name: 'unhealthy', topic: 'x.unhealthy', target: { type: 'http', url: rx.url, timeout_ms: 5_000 }, retry_schedule: [0, 0],
    });
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'x.unhealthy', { n: 1 }));
    const [d] = await eventually(async () => {
      const rows = await deliveriesOf(t, 'unhealthy');
      return rows[0]?.status === 'dead' && rows;
    });
    expect(d).toMatchObject({ attempts: 3, last_status_code: 503, last_error: 'HTTP 503: down for maintenance' });
    expect(rx.requests).toHaveLength(3);
    for (const req of rx.requests) {
      expect(req.headers['webhook-id']).toBe(d!.id);
      expect(signatureOk(sub.json.secret, req)).toBe(true);
    }

    rx.answer(() => ({ status: 204 }));
    expect(await admin(t.url, 'POST', `/deliveries/${d!.id}/redrive`)).toEqual({ status: 202, json: { redriven: 1 } });
    const [after] = await eventually(async () => {
      const rows = await deliveriesOf(t, 'unhealthy');
      return rows[0]?.status === 'delivered' && rows;
    });
    expect(after).toMatchObject({ attempts: 1, last_status_code: 204, last_error: null });
    expect(rx.requests).toHaveLength(4);
  });
});

describe('HTTP delivery step by step', () => {
  let t: TestEngine;
  beforeAll(async () => { t = await startTestEngine(); });
  afterAll(async () => { await t?.close(); });

  it('410 Gone disables the subscription; its deliveries wait, and go out once it is re-enabled', async () => {
    const rx = await receiver(() => ({ status: 410 }));
    await upsertSubscription(t.tdb.db.pool, { name: 'gone', topic: 'x.gone', target: { type: 'http', url: rx.url, timeoutMs: 5_000 }, retrySchedule: [0, 0, 0] });
    await withTx(t.tdb.db.pool, (tx) => publishMany(tx, [{ topic: 'x.gone', payload: { n: 1 } }, { topic: 'x.gone', payload: { n: 2 } }]));

    await t.engine.httpDeliveries.runOnce(100);
    const seen = rx.requests.length;
    expect(seen).toBeGreaterThan(0);
    const sub = await admin<{ status: string; status_reason: string }>(t.url, 'GET', '/subscriptions/gone');
    expect(sub.json.status).toBe('disabled');
    expect(sub.json.status_reason).toContain('410');
    let rows = await deliveriesOf(t, 'gone');
    expect(rows.map((r) => r.status)).toEqual(['pending', 'pending']);

    // While disabled nothing is sent, however often the worker looks.
    for (let i = 0; i < 3; i++) await t.engine.httpDeliveries.runOnce(100);
    expect(rx.requests).toHaveLength(seen);
    expect((await deliveriesOf(t, 'gone')).map((r) => r.status)).toEqual(['pending', 'pending']);

    rx.answer(() => ({ status: 200 }));
    expect((await admin(t.url, 'PATCH', '/subscriptions/gone', { status: 'active' })).status).toBe(200);
    await t.engine.httpDeliveries.runOnce(100);
    rows = await deliveriesOf(t, 'gone');
    expect(rows.map((r) => r.status)).toEqual(['delivered', 'delivered']);
    const delivered = rx.requests.slice(seen).map((r) => r.headers['webhook-id']).sort();
    expect(delivered).toEqual(rows.map((r) => r.id).sort());
  });

  it('a receiver that never answers times out after the subscription\'s timeoutMs and the delivery is retried later', async () => {
    const rx = await receiver(() => 'hang');
    await upsertSubscription(t.tdb.db.pool, { name: 'slow', topic: 'x.slow', target: { type: 'http', url: rx.url, timeoutMs: 300 }, retrySchedule: [60_000] });
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'x.slow', {}));
    await t.engine.httpDeliveries.runOnce(100);
    const [d] = await deliveriesOf(t, 'slow');
    expect(d).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null, later: true });
    expect(d!.last_error).toMatch(/timeout/i);
  });

  it('takes over a delivery whose worker died mid-call (lease ran out), never one whose lease is still live', async () => {
    const rx = await receiver();
    await upsertSubscription(t.tdb.db.pool, { name: 'lease', topic: 'x.lease', target: { type: 'http', url: rx.url, timeoutMs: 5_000 } });
    await withTx(t.tdb.db.pool, (tx) => publishMany(tx, [{ topic: 'x.lease', payload: { n: 1 } }, { topic: 'x.lease', payload: { n: 2 } }]));
    const [expired, live] = await deliveriesOf(t, 'lease');
    await t.tdb.db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, locked_until = now() - interval '1 second' WHERE id = $1`, [expired!.id]);
    await t.tdb.db.pool.query(`UPDATE deliveries SET status = 'sending', attempts = 1, locked_until = now() + interval '1 hour' WHERE id = $1`, [live!.id]);
    await t.engine.httpDeliveries.runOnce(100);
    expect(rx.requests.map((r) => r.headers['webhook-id'])).toEqual([expired!.id]);
    const rows = await deliveriesOf(t, 'lease');
    expect(rows.map((r) => [r.id, r.status, r.attempts])).toEqual([[expired!.id, 'delivered', 2], [live!.id, 'sending', 1]]);
  });
});

describe('SSRF guard', () => {
  let t: TestEngine;
  beforeAll(async () => { t = await startTestEngine({ config: { outbound: { allow: [] } } }); });
  afterAll(async () => { await t?.close(); });

  it('without outbound.allow, refuses loopback targets by address and by a name that resolves to loopback', async () => {
    const rx = await receiver();
    const urls = { 'ssrf-ip': rx.url, 'ssrf-name': `http://localhost:${rx.port}/hook`, 'ssrf-v6': `http://[::1]:${rx.port}/hook` };
    for (const [name, url] of Object.entries(urls)) {
      await upsertSubscription(t.tdb.db.pool, { name, topic: 'x.ssrf', target: { type: 'http', url, timeoutMs: 5_000 }, retrySchedule: [60_000] });
    }
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'x.ssrf', {}));
    expect(await t.engine.httpDeliveries.runOnce(100)).toBe(3);
    expect(rx.requests).toHaveLength(0);
    for (const name of Object.keys(urls)) {
      const [d] = await deliveriesOf(t, name);
      expect(d, name).toMatchObject({ status: 'pending', attempts: 1, last_status_code: null });
      expect(d!.last_error, name).toMatch(/refused to connect to .*outbound\.allow/);
    }
  });
});

describe('two workers on one database, HTTP', () => {
  const N = 2_000;
  let t: TestEngine;
  let second: SecondEngine;
  beforeAll(async () => {
    t = await startTestEngine();
    second = secondEngine(t);
  });
  afterAll(async () => {
    await second?.close();
    await t?.close();
  });

  it(`send each of ${N} deliveries exactly once to a healthy receiver`, async () => {
    const rx = await receiver();
    const sub = await upsertSubscription(t.tdb.db.pool, { name: 'fanout', topic: 'x.many', target: { type: 'http', url: rx.url, timeoutMs: 10_000 } });
    await t.startWorker();
    await second.startWorker();

    await withTx(t.tdb.db.pool, (tx) => publishMany(tx, Array.from({ length: N }, (_, i) => ({ topic: 'x.many', payload: { i } }))));
    const rows = await eventually(async () => {
      const r = await deliveriesOf(t, 'fanout');
      return r.length === N && r.every((d) => d.status === 'delivered') && r;
    }, 60_000);

    const ids = rx.requests.map((r) => String(r.headers['webhook-id']));
    expect(ids).toHaveLength(N);
    expect(new Set(ids).size).toBe(N);
    expect([...ids].sort()).toEqual(rows.map((d) => d.id).sort());
    expect(rx.requests.filter((r) => !signatureOk(sub.secret!, r))).toHaveLength(0);
    expect(rows.filter((d) => d.attempts !== 1)).toEqual([]);
  });
});
