// The health rollup: real requests to a real server are counted per route and per webhook
// provider, and several flushes (several processes) add up in the same minute's row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VIEWER_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { reportBreakers } from './index.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';
import { HealthRollup, LATENCY_BOUNDS_MS, latencyBucket, quantileMs } from './index.ts';

let t: TestEngine;
beforeAll(async () => { t = await startTestEngine(); });
afterAll(async () => { await t.close(); });

describe('health figures', () => {
  it('quantiles come from the histogram: the bound of the bucket holding the rank', () => {
    const counts = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
    expect(quantileMs(counts, 0.95)).toBeNull();
    for (let i = 0; i < 95; i++) counts[latencyBucket(3)]!++;
    for (let i = 0; i < 5; i++) counts[latencyBucket(700)]!++;
    expect(quantileMs(counts, 0.95)).toBe(5);
    counts[latencyBucket(60_000)]!++;
    expect(quantileMs(counts, 0.99)).toBe(1_000);
    expect(quantileMs(counts, 1)).toBe(Number.POSITIVE_INFINITY);
  });

  it('counts real requests per route and webhook provider; flushes of two processes add up', async () => {
    const pool = t.engine.db.pool;
    await t.engine.flushHealth();
    await pool.query('TRUNCATE health_buckets');
    expect((await sendWebhook(t.url, { id: 'evt_health_1' })).status).toBe(200);
    expect((await sendWebhook(t.url, { id: 'evt_health_2', secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(401);
    // An unknown provider's name is not a subject (anyone could invent names).
    expect((await sendWebhook(t.url, { id: 'evt_health_3', provider: 'nobody' })).status).toBe(404);
    await t.engine.flushHealth();
    const r = await pool.query<{ source: string; name: string; requests: string; errors: string }>(
      `SELECT source, name, requests::text, errors::text FROM health_buckets ORDER BY source, name`);
    expect(r.rows).toEqual([
      { source: 'route', name: 'POST /webhooks/:provider', requests: '3', errors: '0' },
      { source: 'webhook', name: 'acme', requests: '2', errors: '1' },
    ]);

    const now = Date.now();
    const a = new HealthRollup(() => now);
    const b = new HealthRollup(() => now);
    a.record('delivery', 'crm', 30, false);
    b.record('delivery', 'crm', 3_000, true);
    b.record('delivery', 'crm', 3_000, false);
    await a.flush(pool);
    await b.flush(pool);
    expect(await b.flush(pool)).toBe(0);
    const d = await pool.query<{ requests: string; errors: string; latency_counts: string[] }>(
      `SELECT requests::text, errors::text, latency_counts::text[] FROM health_buckets WHERE source = 'delivery'`);
    expect(d.rows).toHaveLength(1);
    expect(d.rows[0]!.requests).toBe('3');
    expect(d.rows[0]!.errors).toBe('1');
    expect(d.rows[0]!.latency_counts[latencyBucket(30)]).toBe('1');
    expect(d.rows[0]!.latency_counts[latencyBucket(3_000)]).toBe('2');
  });

  it('GET /admin/v1/health: traffic per subject and over time, queues, DLQ, unknowns and breakers, for a viewer', async () => {
    const pool = t.engine.db.pool;
    await pool.query('TRUNCATE health_buckets');
    expect((await sendWebhook(t.url, { id: 'evt_health_9' })).status).toBe(200);
    await reportBreakers(pool, 'proc-a', [{ endpoint: 'stripe', state: 'open', changedAt: new Date() }]);
    const res = await fetch(`${t.url}/admin/v1/health?hours=2&step_minutes=30`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    expect(res.status).toBe(200);
    const body = await res.json() as { subjects: { source: string; name: string; requests: number }[]; series: { requests: number }[];
      breakers: { endpoint: string; state: string }[]; dlq_size: number; step_minutes: number; inbox: { pending: number; failed: number } };
    expect(body.step_minutes).toBe(30);
    expect(body.series.length).toBeGreaterThanOrEqual(4);
    expect(body.series.reduce((n, s) => n + s.requests, 0)).toBe(2);
    expect(body.subjects).toEqual(expect.arrayContaining([
      expect.objectContaining({ source: 'webhook', name: 'acme', requests: 1 }),
      expect.objectContaining({ source: 'route', name: 'POST /webhooks/:provider', requests: 1 }),
    ]));
    expect(body.breakers).toEqual([expect.objectContaining({ endpoint: 'stripe', state: 'open' })]);
    expect(body.dlq_size).toBe(0);
    expect((await fetch(`${t.url}/admin/v1/health?hours=100`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } })).status).toBe(400);
  });
});
