// `seigo bench delivery`: N messages to an in-process consumer that writes one row per message,
// against graphile-worker and pg-boss doing the same work on the same server in the same run;
// then publish→handler latency at a steady rate. Every queue is filled first, then drained, and
// the drain is what is timed.
import PgBoss from 'pg-boss';
import { Logger as GraphileLogger, run as runGraphileWorker } from 'graphile-worker';
import { createEngine } from '../engine/index.ts';
import { parseConfig } from '../kernel/config.ts';
import { createDb, withTx, type Db } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { publish, publishMany, upsertSubscription, type DeliveredMessage } from '../outbox/index.ts';
import { benchDatabase, percentile, round } from './setup.ts';

interface DrainFigure { messages: number; seconds: number; per_s: number; rows_written: number }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('benchmark did not finish in time');
    await sleep(5);
  }
}
async function rows(db: Db, table: string): Promise<number> {
  return Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
}

export async function benchDelivery(o: { count: number; rate: number; latencySeconds: number }): Promise<Record<string, unknown>> {
  const bdb = await benchDatabase();
  const db = createDb(bdb.url, { max: 12 });
  try {
    await db.pool.query('CREATE TABLE bench_seigo (message_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    await db.pool.query('CREATE TABLE bench_seigo_batch (message_id uuid PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    await db.pool.query('CREATE TABLE bench_gw (job int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    await db.pool.query('CREATE TABLE bench_pgboss (job int PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())');
    const seigo = await seigoDrain(db, o.count, 'handle');
    const seigoBatch = await seigoDrain(db, o.count, 'handleBatch');
    const gw = await graphileDrain(db, bdb.url, o.count);
    const boss = await pgBossDrain(db, bdb.url, o.count);
    const latency = await seigoLatency(db, o.rate, o.latencySeconds);
    return {
      benchmark: 'delivery',
      server: { version: bdb.serverVersion, embedded: bdb.embedded },
      messages: o.count,
      seigo: { per_message_consumer: seigo, batch_consumer: seigoBatch, latency },
      baseline: { 'graphile-worker': { version: '0.16', concurrency: 8, ...gw }, 'pg-boss': { version: '10', batchSize: 500, ...boss } },
      ratio: round(seigo.per_s / gw.per_s, 3),
      ratio_vs_pgboss: round(seigo.per_s / boss.per_s, 3),
      target: 'ratio >= 2 (vs graphile-worker), per_s >= pg-boss batched, latency p50 <= 5 ms',
    };
  } finally {
    await db.close();
    await bdb.close();
  }
}

async function seigoDrain(db: Db, count: number, mode: 'handle' | 'handleBatch'): Promise<DrainFigure> {
  const table = mode === 'handle' ? 'bench_seigo' : 'bench_seigo_batch';
  const name = `bench-${mode.toLowerCase()}`;
  const config = parseConfig({ worker: { pollIntervalMs: 100, batchSize: 500, leaseMs: 30_000, concurrency: 8 } });
  const engine = createEngine({ config, db, log: silentLogger });
  let handled = 0;
  if (mode === 'handle') {
    engine.consumers.register(name, {
      async handle({ tx }, m: DeliveredMessage) {
        await tx.query({ name: 'bench_insert_one', text: `INSERT INTO ${table} (message_id) VALUES ($1)`, values: [m.messageId] });
        handled++;
      },
    });
  } else {
    engine.consumers.register(name, {
      async handleBatch({ tx }, ms: DeliveredMessage[]) {
        await tx.query({ name: 'bench_insert_many', text: `INSERT INTO ${table} (message_id) SELECT unnest($1::uuid[])`, values: [ms.map((m) => m.messageId)] });
        handled += ms.length;
      },
    });
  }
  await upsertSubscription(db.pool, { name, topic: `bench.${mode}`, target: { type: 'handler', handler: name } });
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await withTx(db.pool, (tx) => publishMany(tx, Array.from({ length: n }, (_, j) => ({ topic: `bench.${mode}`, payload: { i: i + j } }))));
  }
  const worker = engine.createWorker('bench');
  const t0 = performance.now();
  await worker.start();
  await until(() => handled >= count, 600_000);
  const seconds = (performance.now() - t0) / 1000;
  await worker.shutdown();
  await engine.close();
  return { messages: count, seconds: round(seconds), per_s: round(count / seconds, 1), rows_written: await rows(db, table) };
}

// graphile-worker logs to the console by default; a benchmark prints only its JSON.
const quietGraphile = new GraphileLogger(() => () => undefined);

async function graphileDrain(db: Db, url: string, count: number): Promise<DrainFigure> {
  let handled = 0;
  // Migrate graphile-worker's schema and fill its queue through its own SQL API, then time the drain.
  const runner = await runGraphileWorker({
    connectionString: url, concurrency: 8, noHandleSignals: true, pollInterval: 100,
    taskList: { noop: async () => undefined }, logger: quietGraphile,
  });
  await runner.stop();
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await db.pool.query(
      `SELECT graphile_worker.add_jobs(array(SELECT json_populate_record(null::graphile_worker.job_spec, json_build_object('identifier', 'bench', 'payload', json_build_object('i', g)))
         FROM generate_series($1::int, $2::int) g))`, [i, i + n - 1]);
  }
  const t0 = performance.now();
  const worker = await runGraphileWorker({
    connectionString: url, concurrency: 8, noHandleSignals: true, pollInterval: 100, logger: quietGraphile,
    taskList: {
      bench: async (payload, helpers) => {
        await helpers.query('INSERT INTO bench_gw (job) VALUES ($1)', [(payload as { i: number }).i]);
        handled++;
      },
    },
  });
  await until(() => handled >= count, 600_000);
  const seconds = (performance.now() - t0) / 1000;
  await worker.stop();
  return { messages: count, seconds: round(seconds), per_s: round(count / seconds, 1), rows_written: await rows(db, 'bench_gw') };
}

async function pgBossDrain(db: Db, url: string, count: number): Promise<DrainFigure> {
  const boss = new PgBoss({ connectionString: url, max: 8 });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue('bench');
  for (let i = 0; i < count; i += 5000) {
    const n = Math.min(5000, count - i);
    await boss.insert(Array.from({ length: n }, (_, j) => ({ name: 'bench', data: { i: i + j } })));
  }
  let handled = 0;
  const t0 = performance.now();
  // pg-boss's best case: 500-job batches, one INSERT per batch, several workers.
  for (let w = 0; w < 4; w++) {
    await boss.work<{ i: number }>('bench', { batchSize: 500, pollingIntervalSeconds: 0.5 }, async (jobs: PgBoss.Job<{ i: number }>[]) => {
      await db.pool.query('INSERT INTO bench_pgboss (job) SELECT unnest($1::int[])', [jobs.map((j) => j.data.i)]);
      handled += jobs.length;
    });
  }
  await until(() => handled >= count, 600_000);
  const seconds = (performance.now() - t0) / 1000;
  await boss.stop({ graceful: true, wait: true });
  return { messages: count, seconds: round(seconds), per_s: round(count / seconds, 1), rows_written: await rows(db, 'bench_pgboss') };
}

/** Publishes one message per transaction at a steady rate; the consumer records publish→handler time. */
async function seigoLatency(db: Db, rate: number, seconds: number): Promise<Record<string, number>> {
  const config = parseConfig({ worker: { pollIntervalMs: 1_000, batchSize: 500, leaseMs: 30_000, concurrency: 8 } });
  const engine = createEngine({ config, db, log: silentLogger });
  const lat: number[] = [];
  const now = () => performance.timeOrigin + performance.now();
  engine.consumers.register('bench-latency', {
    async handle(_ctx, m) {
      lat.push(now() - (m.payload as { t: number }).t);
    },
  });
  await upsertSubscription(db.pool, { name: 'bench-latency', topic: 'bench.latency', target: { type: 'handler', handler: 'bench-latency' } });
  const worker = engine.createWorker('bench');
  await worker.start();
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  const inflight: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    inflight.push(withTx(db.pool, (tx) => publish(tx, 'bench.latency', { t: now() })));
  }
  await Promise.all(inflight);
  await until(() => lat.length >= total, 60_000);
  await worker.shutdown();
  await engine.close();
  lat.sort((a, b) => a - b);
  return { messages: total, rate_per_s: rate, p50_ms: round(percentile(lat, 50)), p90_ms: round(percentile(lat, 90)), p99_ms: round(percentile(lat, 99)), max_ms: round(lat[lat.length - 1] ?? 0) };
}
