// `seigo bench fanout`: N messages through a NATS JetStream subscription target (outbox rows claimed,
// published with acks, recorded), against the official client publishing the same messages straight to
// the same stream with acks, 64 in flight, on the same nats-server in the same run; then card event →
// points posted latency at a steady rate, through signed webhooks, intake, the outbox and the ledger.
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { Pool } from 'undici';
import { createServer } from '../api/server.ts';
import { createEngine } from '../engine/index.ts';
import { parseConfig } from '../kernel/config.ts';
import { createDb, withTx, type Db } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { publishMany, syncConfigSubscriptions, upsertSubscription, webhookBody } from '../outbox/index.ts';
import { CardNetworkSimulator } from '../providers/card-network/index.ts';
import { startNatsServer } from '../sim/nats-server.ts';
import { benchDatabase, percentile, round } from './setup.ts';

const STREAM = 'BENCH';
const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FanoutOptions { count: number; inFlight: number; rate: number; latencySeconds: number; batchSize: number }
interface Throughput { messages: number; seconds: number; per_s: number; stored: number }

/** A card-event-shaped payload of realistic size, numbered. */
function payloadOf(i: number): Record<string, unknown> {
  return {
    provider: 'visa', event_id: `evt_bench_${i}`, type: 'card.authorized',
    data: { network_event_type: 'authorization', authorization_id: `auth_bench_${i}`, clearing_id: null, refund_id: null, card_id: `card_u${i % 1000}`,
      user_id: `u${i % 1000}`, merchant_name: 'Merchant 5812', merchant_category: '5812', country: 'JP', amount: String(1000 + (i % 9000)), currency: 'JPY', amount_jpy: String(1000 + (i % 9000)) },
  };
}

export async function benchFanout(o: FanoutOptions): Promise<Record<string, unknown>> {
  const bdb = await benchDatabase();
  const nats = await startNatsServer();
  const db = createDb(bdb.url, { max: 12 });
  const nc = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: STREAM, subjects: ['bench.>'] });
    const direct = await directPublish(jetstream(nc), jsm, o);
    await jsm.streams.purge(STREAM);
    const seigo = await seigoFanout(db, nats.url, jsm, o);
    const latency = await cardToPoints(db, nats.url, o);
    return {
      benchmark: 'fanout',
      server: { postgres: bdb.serverVersion, embedded: bdb.embedded, nats: 'nats-server (JetStream, file store, loopback)' },
      messages: o.count,
      seigo: { ...seigo, batch: o.batchSize, loops: 4 },
      baseline: { 'nats.js direct': { client: '@nats-io/jetstream 3.3', in_flight: o.inFlight, ...direct } },
      ratio: round(seigo.per_s / direct.per_s, 3),
      card_to_points: latency,
      target: 'ratio >= 0.8 (below 0.5 is not done)',
    };
  } finally {
    await nc.close().catch(() => undefined);
    await db.close();
    await nats.close();
    await bdb.close();
  }
}

/** The official client straight to the stream: each publish acknowledged, `inFlight` at a time. */
async function directPublish(js: JetStreamClient, jsm: JetStreamManager, o: FanoutOptions): Promise<Throughput> {
  const created = new Date();
  const bodies = Array.from({ length: o.count }, (_, i) => webhookBody('card.authorized', created, payloadOf(i)));
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    for (let i = next++; i < o.count; i = next++) {
      const h = natsHeaders();
      h.set('Content-Type', 'application/json');
      h.set('Seigo-Topic', 'card.authorized');
      h.set('Seigo-Message-Id', `direct-${i}`);
      await js.publish('bench.direct', bodies[i]!, { msgID: `direct-${i}`, expect: { streamName: STREAM }, headers: h, timeout: 10_000 });
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, lane));
  const seconds = (performance.now() - t0) / 1000;
  const stored = (await jsm.streams.info(STREAM)).state.messages;
  return { messages: o.count, seconds: round(seconds), per_s: round(o.count / seconds, 1), stored };
}

/** The outbox filled first (one subscription with a nats target), then the workers' drain timed until every delivery is recorded. */
async function seigoFanout(db: Db, natsUrl: string, jsm: JetStreamManager, o: FanoutOptions): Promise<Throughput> {
  const config = parseConfig({ nats: { servers: [natsUrl] }, worker: { pollIntervalMs: 100, batchSize: o.batchSize, leaseMs: 60_000, concurrency: 8 } });
  const engine = createEngine({ config, db, log: silentLogger });
  await upsertSubscription(db.pool, { name: 'bench-stream', topic: 'bench.fanout', target: { type: 'nats', subject: 'bench.seigo', stream: STREAM, timeoutMs: 10_000 } });
  for (let i = 0; i < o.count; i += 5000) {
    const n = Math.min(5000, o.count - i);
    await withTx(db.pool, (tx) => publishMany(tx, Array.from({ length: n }, (_, j) => ({ topic: 'bench.fanout', payload: payloadOf(i + j) }))));
  }
  await db.pool.query('VACUUM ANALYZE deliveries');
  const worker = engine.createWorker('bench');
  const t0 = performance.now();
  await worker.start();
  const end = Date.now() + 600_000;
  for (;;) {
    const r = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE target_type = 'nats' AND status <> 'delivered'`);
    if (r.rows[0]!.n === 0) break;
    if (Date.now() > end) throw new Error('the NATS deliveries did not finish in time');
    await sleep(20);
  }
  const seconds = (performance.now() - t0) / 1000;
  await worker.shutdown();
  await engine.close();
  const stored = (await jsm.streams.info(STREAM)).state.messages;
  return { messages: o.count, seconds: round(seconds), per_s: round(o.count / seconds, 1), stored };
}

/**
 * Signed card-network authorizations at a steady `rate` for `latencySeconds` to a real API and worker
 * (in this process); latency = the points posting's transaction time − the moment the webhook was sent.
 */
async function cardToPoints(db: Db, natsUrl: string, o: FanoutOptions): Promise<Record<string, unknown>> {
  const config = parseConfig({
    nats: { servers: [natsUrl] }, providers: { visa: { kind: 'card-network', secrets: [SECRET] } },
    points: { rules: [{ name: 'dining-3x', merchantCategories: ['5812'], rateBasisPoints: 300 }] },
    worker: { pollIntervalMs: 200, batchSize: 100, leaseMs: 30_000, concurrency: 8 },
  });
  const engine = createEngine({ config, db, log: silentLogger });
  await syncConfigSubscriptions(db.pool, config.subscriptions);
  const app = await createServer(engine);
  await app.listen({ port: 0, host: '127.0.0.1' });
  // A bounded pool, as a network's sender has: a request waiting for a connection counts in its latency.
  const http = new Pool(`http://127.0.0.1:${(app.server.address() as { port: number }).port}`, { connections: 64 });
  const worker = engine.createWorker('bench');
  await worker.start();
  const network = new CardNetworkSimulator({ secret: SECRET, seed: 5 });
  const total = Math.round(o.rate * o.latencySeconds);
  const sentAt = new Map<string, number>();
  const inFlight: Promise<void>[] = [];
  let failed = 0;
  const t0 = Date.now();
  try {
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / o.rate;
      if (due > Date.now()) await sleep(due - Date.now());
      const [auth] = network.purchase({ user: `lat${i % 200}`, amount: 5_000n, currency: 'JPY', mcc: '5812', country: 'JP', scenario: 'reversed' });
      const { headers, body } = network.signed(auth!);
      sentAt.set(String(auth!.data.authorization_id), Date.now());
      inFlight.push(http.request({ path: '/webhooks/visa', method: 'POST', headers, body }).then(async (r) => {
        await r.body.dump();
        if (r.statusCode >= 300) failed++;
      }, () => { failed++; }));
    }
    await Promise.all(inFlight);
    const sendSeconds = (Date.now() - t0) / 1000;
    const keys = [...sentAt.keys()];
    const end = Date.now() + 120_000;
    let posted: { purchase_key: string; at: number }[] = [];
    while (Date.now() < end) {
      posted = (await db.pool.query<{ purchase_key: string; at: number }>(
        `SELECT purchase_key, (extract(epoch FROM min(created_at)) * 1000)::float8 AS at FROM points_history
         WHERE purchase_key = ANY($1::text[]) GROUP BY purchase_key`, [keys])).rows;
      if (posted.length === keys.length) break;
      await sleep(200);
    }
    const ms = posted.map((p) => p.at - sentAt.get(p.purchase_key)!).sort((a, b) => a - b);
    return {
      events: total, rate_per_s: o.rate, achieved_per_s: round(total / sendSeconds, 1), refused: failed, posted: posted.length,
      p50_ms: round(percentile(ms, 50), 1), p99_ms: round(percentile(ms, 99), 1), max_ms: round(ms.at(-1) ?? Number.NaN, 1),
      measured: 'webhook sent → the points posting\'s transaction (points_history.created_at)',
    };
  } finally {
    await http.close();
    await worker.shutdown();
    await app.close();
    await engine.close();
  }
}
