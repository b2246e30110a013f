// In-process consumers on real PostgreSQL: the consumer's writes and the delivery's completion
// commit together; failures retry, end in the DLQ and are redriven (function and admin API); two
// workers on one database never run the same delivery twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, secondEngine, startTestEngine, type SecondEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { publish, publishMany, redrive, upsertSubscription, type ConsumerContext, type DeliveredMessage } from './index.ts';

interface DeliveryRow { id: string; status: string; attempts: number; last_error: string | null; redrives: number }

async function deliveriesOf(t: TestEngine, subscription: string): Promise<DeliveryRow[]> {
  const r = await t.tdb.db.pool.query<DeliveryRow>(
    `SELECT d.id, d.status, d.attempts, d.last_error, d.redrives FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
     WHERE s.name = $1 ORDER BY d.message_id`, [subscription]);
  return r.rows;
}

async function drain(t: TestEngine): Promise<void> {
  while (await t.engine.handlerDeliveries.runOnce(100) > 0);
}

describe('an in-process consumer, step by step', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine();
    await t.tdb.db.pool.query('CREATE TABLE effects (delivery_id uuid NOT NULL, payload jsonb)');
  });
  afterAll(async () => { await t?.close(); });

  const effectsOf = async (ids: string[]) =>
    (await t.tdb.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM effects WHERE delivery_id = ANY($1::uuid[])', [ids])).rows[0]!.n;

  it('rolls back the consumer\'s write when it throws, keeps the delivery with its cause, and commits both on the retry', async () => {
    const attempts: number[] = [];
    t.engine.consumers.register('once-failing', {
      async handle({ tx }, m) {
        attempts.push(m.attempt);
        await tx.query('INSERT INTO effects (delivery_id, payload) VALUES ($1, $2)', [m.deliveryId, JSON.stringify(m.payload)]);
        if (m.attempt === 1) throw new Error('downstream said no');
      },
    });
    await upsertSubscription(t.tdb.db.pool, { name: 'once-failing', topic: 'h.once', target: { type: 'handler', handler: 'once-failing' }, retrySchedule: [0, 0, 0] });
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'h.once', { amount: 100 }));

    expect(await t.engine.handlerDeliveries.runOnce(100)).toBe(1);
    const [failed] = await deliveriesOf(t, 'once-failing');
    expect(failed).toMatchObject({ status: 'pending', attempts: 1, last_error: 'downstream said no' });
    expect(await effectsOf([failed!.id])).toBe(0);

    await drain(t);
    const [done] = await deliveriesOf(t, 'once-failing');
    expect(done).toMatchObject({ id: failed!.id, status: 'delivered', attempts: 2, last_error: null });
    expect(await effectsOf([failed!.id])).toBe(1);
    // The consumer may be run more than once for attempt 1 (a failed batch is retried item by item),
    // but only attempt 2's write is kept.
    expect(attempts.at(-1)).toBe(2);
    expect(attempts.filter((a) => a === 2)).toHaveLength(1);
  });

  it('one failing message in a batch does not hold back the others, and their writes happen once', async () => {
    t.engine.consumers.register('picky', {
      async handle({ tx }, m) {
        await tx.query('INSERT INTO effects (delivery_id, payload) VALUES ($1, $2)', [m.deliveryId, JSON.stringify(m.payload)]);
        if ((m.payload as { bad?: boolean }).bad) throw new Error('poison message');
      },
    });
    await upsertSubscription(t.tdb.db.pool, { name: 'picky', topic: 'h.picky', target: { type: 'handler', handler: 'picky' }, retrySchedule: [60_000] });
    await withTx(t.tdb.db.pool, (tx) => publishMany(tx, [
      { topic: 'h.picky', payload: { n: 1 } }, { topic: 'h.picky', payload: { n: 2, bad: true } }, { topic: 'h.picky', payload: { n: 3 } },
    ]));
    await drain(t);
    const rows = await deliveriesOf(t, 'picky');
    expect(rows.map((r) => r.status)).toEqual(['delivered', 'pending', 'delivered']);
    expect(rows[1]).toMatchObject({ attempts: 1, last_error: 'poison message' });
    expect(await effectsOf([rows[0]!.id])).toBe(1);
    expect(await effectsOf([rows[1]!.id])).toBe(0);
    expect(await effectsOf([rows[2]!.id])).toBe(1);
  });

  it('a paused subscription collects deliveries but does not run them until resumed', async () => {
    let calls = 0;
    t.engine.consumers.register('pausable', { async handle() { calls++; } });
    await upsertSubscription(t.tdb.db.pool, { name: 'pausable', topic: 'h.pause', target: { type: 'handler', handler: 'pausable' } });
    expect((await admin(t.url, 'PATCH', '/subscriptions/pausable', { status: 'paused', reason: 'maintenance' })).status).toBe(200);
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'h.pause', {}));
    await drain(t);
    expect(calls).toBe(0);
    expect((await deliveriesOf(t, 'pausable')).map((r) => r.status)).toEqual(['pending']);
    expect((await admin(t.url, 'PATCH', '/subscriptions/pausable', { status: 'active' })).status).toBe(200);
    await drain(t);
    expect(calls).toBe(1);
    expect((await deliveriesOf(t, 'pausable')).map((r) => r.status)).toEqual(['delivered']);
  });
});

describe('DLQ and redrive, with a running worker', () => {
  let t: TestEngine;
  let broken = true;
  let calls = 0;
  beforeAll(async () => {
    t = await startTestEngine();
    await t.tdb.db.pool.query('CREATE TABLE effects (delivery_id uuid NOT NULL)');
    t.engine.consumers.register('flaky', {
      async handle({ tx }, m) {
        calls++;
        await tx.query('INSERT INTO effects (delivery_id) VALUES ($1)', [m.deliveryId]);
        if (broken) throw new Error(`flaky consumer refused attempt ${m.attempt}`);
      },
    });
    await t.startWorker();
  });
  afterAll(async () => { await t?.close(); });

  const effects = async (id: string) =>
    (await t.tdb.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM effects WHERE delivery_id = $1', [id])).rows[0]!.n;

  it('a consumer failing on every attempt ends dead after the schedule, with its last error; each redrive path then delivers exactly once', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'flaky', topic: 'h.flaky', target: { type: 'handler', handler: 'flaky' }, retrySchedule: [0, 0, 0] });
    await withTx(pool, (tx) => publishMany(tx, [1, 2, 3, 4].map((n) => ({ topic: 'h.flaky', payload: { n } }))));

    const dead = await eventually(async () => {
      const rows = await deliveriesOf(t, 'flaky');
      return rows.length === 4 && rows.every((r) => r.status === 'dead') && rows;
    });
    // The schedule has three retries: four attempts in all, the last one's cause kept.
    for (const r of dead) expect(r).toMatchObject({ status: 'dead', attempts: 4, last_error: 'flaky consumer refused attempt 4' });
    expect(calls).toBeGreaterThanOrEqual(16);
    for (const r of dead) expect(await effects(r.id)).toBe(0);
    const dlq = await admin<{ data: { id: string; last_error: string }[] }>(t.url, 'GET', '/deliveries?subscription=flaky&status=dead');
    expect(dlq.json.data.map((d) => d.id).sort()).toEqual(dead.map((r) => r.id).sort());

    broken = false;
    const callsWhenFixed = calls;
    const [a, b, c, d] = dead.map((r) => r.id) as [string, string, string, string];

    // One by id over the API.
    expect(await admin(t.url, 'POST', `/deliveries/${a}/redrive`)).toEqual({ status: 202, json: { redriven: 1 } });
    await eventually(async () => (await deliveriesOf(t, 'flaky')).find((r) => r.id === a)?.status === 'delivered');
    expect(await effects(a)).toBe(1);
    expect((await deliveriesOf(t, 'flaky')).filter((r) => r.status === 'dead').map((r) => r.id)).toEqual([b, c, d]);

    // One by the function.
    expect(await redrive(pool, { ids: [b] })).toBe(1);
    await eventually(async () => (await deliveriesOf(t, 'flaky')).find((r) => r.id === b)?.status === 'delivered');

    // The rest in bulk over the API, by subscription.
    expect(await admin(t.url, 'POST', '/deliveries/redrive', { subscription: 'flaky' })).toEqual({ status: 202, json: { redriven: 2 } });
    const end = await eventually(async () => {
      const rows = await deliveriesOf(t, 'flaky');
      return rows.every((r) => r.status === 'delivered') && rows;
    });
    for (const r of end) {
      expect(r).toMatchObject({ status: 'delivered', attempts: 1, last_error: null, redrives: 1 });
      expect(await effects(r.id)).toBe(1);
    }
    expect(calls - callsWhenFixed).toBe(4);

    // Delivered ones are not redriven again.
    expect((await admin(t.url, 'POST', `/deliveries/${a}/redrive`)).status).toBe(404);
    expect(await admin(t.url, 'POST', '/deliveries/redrive', { subscription: 'flaky' })).toEqual({ status: 202, json: { redriven: 0 } });
    expect(calls - callsWhenFixed).toBe(4);
  });

  it('bulk redrive moves only what the filter names: an empty id list or name is nothing, not everything; viewers may not redrive', async () => {
    const pool = t.tdb.db.pool;
    t.engine.consumers.register('hopeless', { async handle() { throw new Error('never works'); } });
    await upsertSubscription(pool, { name: 'hopeless', topic: 'h.hopeless', target: { type: 'handler', handler: 'hopeless' }, retrySchedule: [] });
    await withTx(pool, (tx) => publish(tx, 'h.hopeless', {}));
    await eventually(async () => (await deliveriesOf(t, 'hopeless'))[0]?.status === 'dead');

    expect((await admin(t.url, 'POST', '/deliveries/redrive', { subscription: 'hopeless' }, 'test-viewer-token-0123456789ab')).status).toBe(403);
    expect((await admin(t.url, 'POST', '/deliveries/redrive', { ids: [] })).json).toEqual({ redriven: 0 });
    expect((await admin(t.url, 'POST', '/deliveries/redrive', { subscription: '' })).json).toEqual({ redriven: 0 });
    expect((await admin(t.url, 'POST', '/deliveries/redrive', { topic: '' })).json).toEqual({ redriven: 0 });
    expect(await redrive(pool, { ids: [] })).toBe(0);
    expect((await deliveriesOf(t, 'hopeless')).map((r) => [r.status, r.redrives])).toEqual([['dead', 0]]);
    expect((await admin(t.url, 'POST', '/deliveries/redrive', { topic: 'h.hopeless' })).json).toEqual({ redriven: 1 });
  });
});

describe('two workers on one database', () => {
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

  it(`handle each of ${N} deliveries exactly once between them`, async () => {
    const pool = t.tdb.db.pool;
    await pool.query('CREATE TABLE handled (delivery_id uuid NOT NULL UNIQUE, worker text NOT NULL)');
    const calls = { a: 0, b: 0 };
    const violations: string[] = [];
    const consumer = (who: 'a' | 'b') => ({
      async handle({ tx }: ConsumerContext, m: DeliveredMessage) {
        calls[who]++;
        try {
          await tx.query('INSERT INTO handled (delivery_id, worker) VALUES ($1, $2)', [m.deliveryId, who]);
        } catch (e) {
          if ((e as { code?: string }).code === '23505') violations.push(m.deliveryId);
          throw e;
        }
      },
    });
    t.engine.consumers.register('shared', consumer('a'));
    second.engine.consumers.register('shared', consumer('b'));
    await upsertSubscription(pool, { name: 'shared', topic: 'h.shared', target: { type: 'handler', handler: 'shared' } });
    await t.startWorker();
    await second.startWorker();

    await withTx(pool, (tx) => publishMany(tx, Array.from({ length: N }, (_, i) => ({ topic: 'h.shared', payload: { i } }))));
    await eventually(async () => {
      const r = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE status = 'delivered'`);
      return r.rows[0]!.n === N;
    }, 60_000);

    expect(violations).toEqual([]);
    expect(calls.a + calls.b).toBe(N);
    const r = await pool.query<{ n: number; distinct_ids: number; first_try: number }>(
      `SELECT (SELECT count(*)::int FROM handled) AS n, (SELECT count(DISTINCT delivery_id)::int FROM handled) AS distinct_ids,
              (SELECT count(*)::int FROM deliveries WHERE status = 'delivered' AND attempts = 1) AS first_try`);
    expect(r.rows[0]).toEqual({ n: N, distinct_ids: N, first_try: N });
    const byWorker = await pool.query<{ worker: string; n: number }>('SELECT worker, count(*)::int AS n FROM handled GROUP BY worker ORDER BY worker');
    // Which worker took how many is up to the scheduler; the counts must agree with each worker's calls.
    expect(Object.fromEntries(byWorker.rows.map((x) => [x.worker, x.n]))).toEqual(Object.fromEntries(Object.entries(calls).filter(([, n]) => n > 0)));
  });
});
