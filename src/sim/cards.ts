// `seigo sim cards`: a card network plays N purchases against seigo (separate api and worker processes
// on a real PostgreSQL), with duplicates, reordering and unknown event types; during the run the worker
// that hosts the points consumer is SIGKILLed and restarted, the points store fails for a while, and the
// NATS server is restarted once. Then it waits until quiet, redrives what died as an operator would, and
// judges the ledger, the outbox and the stream against points computed from the events alone.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { request } from 'undici';
import type { ConfigInput } from '../kernel/config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { migrate } from '../kernel/migrate.ts';
import { redrive } from '../outbox/index.ts';
import { CardNetworkSimulator, type NetworkEvent } from '../providers/card-network/index.ts';
import { cardViolations, computeCardFigures, type CardFigures, type SimRules } from './cards-figures.ts';
import { SeigoCluster } from './cluster.ts';
import { startNatsServer, type NatsServer } from './nats-server.ts';

export const SIM_RULES: SimRules = {
  rules: [
    { name: 'dining-3x', merchantCategories: ['5812'], rateBasisPoints: 300 },
    { name: 'travel-2x', merchantCategories: ['4111', '7011'], rateBasisPoints: 200 },
  ],
  defaultRateBasisPoints: 100,
};
export const CARDS_STREAM = 'CARDS';
export const CARD_SUBSCRIPTIONS = ['points', 'cards-stream'] as const;
const PROVIDER = 'visa';
// Short schedules so a run settles in seconds; the mechanisms are the production ones.
const RETRY = [100, 200, 500, 1_000, 2_000, 3_000, 5_000, 5_000];

export interface CardsWorld {
  pool: pg.Pool;
  cluster: SeigoCluster;
  nats: NatsServer;
  /** The harness's own NATS connection (stream set-up and reading). */
  nc: NatsConnection;
  jsm: JetStreamManager;
  js: JetStreamClient;
  network: CardNetworkSimulator;
  webhookUrl: string;
  logDir: string;
  stop(keepLogs: boolean): Promise<void>;
}

export interface CardsWorldOptions {
  seed: number;
  databaseUrl?: string | undefined;
  progress: (msg: string) => void;
}

function cardsConfig(secret: string, natsUrl: string): ConfigInput {
  return {
    log: { level: 'warn' },
    providers: { [PROVIDER]: { kind: 'card-network', secrets: [secret] } },
    nats: { servers: [natsUrl], connectTimeoutMs: 2_000 },
    points: { ...SIM_RULES, expiryMonths: 12, expiringSoonDays: 30 },
    subscriptions: [
      { name: 'points', topic: 'card.*', filter: {}, target: { type: 'handler', handler: 'points' }, retrySchedule: RETRY },
      { name: 'cards-stream', topic: 'card.*', filter: {}, target: { type: 'nats', subject: 'cards.events', stream: CARDS_STREAM, timeoutMs: 2_000 }, retrySchedule: RETRY },
    ],
    worker: { pollIntervalMs: 200, leaseMs: 10_000, batchSize: 100, concurrency: 8 },
    intake: { retrySchedule: [200, 500, 1_000, 2_000, 5_000] },
  };
}

/** PostgreSQL (DATABASE_URL's, or an embedded one), nats-server with the stream, one api and one worker process. */
export async function startCardsWorld(o: CardsWorldOptions): Promise<CardsWorld> {
  const tmp = await mkdtemp(join(tmpdir(), 'seigo-sim-cards-'));
  await chmod(tmp, 0o755);
  const logDir = join(tmp, 'logs');
  await mkdir(logDir);
  const stops: (() => Promise<unknown>)[] = [];
  // Ctrl-C (or a SIGTERM) stops every process and server this run started before exiting.
  const interrupted = (sig: NodeJS.Signals) => {
    o.progress(`${sig}: stopping everything`);
    void stop(true).finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const stop = async (keepLogs: boolean) => {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
    if (keepLogs) o.progress(`logs kept in ${logDir}`);
    else await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    let url = o.databaseUrl;
    if (!url) {
      o.progress('starting an embedded PostgreSQL');
      const starting: Promise<EmbeddedPostgres> = startEmbeddedPostgres({ dataDir: join(tmp, 'pg'), port: 53000 + (process.pid % 3000) });
      stops.push(async () => (await starting.catch(() => undefined))?.stop());
      url = (await starting).url;
    }
    const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'seigo-sim-cards' });
    stops.push(() => pool.end());
    await migrate(pool);
    o.progress('starting nats-server with JetStream');
    const nats = await startNatsServer();
    stops.push(() => nats.close());
    const nc = await connect({ servers: nats.url, reconnectTimeWait: 200, maxReconnectAttempts: -1 });
    stops.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    // The stream is the operators' to make (seigo never creates one); its dedupe window covers the retry schedule.
    await jsm.streams.add({ name: CARDS_STREAM, subjects: ['cards.>'], duplicate_window: 10 * 60 * 1e9 });
    const secret = `whsec_${randomBytes(24).toString('base64')}`;
    const configPath = join(tmp, 'seigo.config.json');
    await writeFile(configPath, JSON.stringify(cardsConfig(secret, nats.url), null, 2));
    const cluster = new SeigoCluster({
      apis: 1, workers: 1, logDir, seed: o.seed, restartDelayMs: () => 500,
      env: { ...process.env, DATABASE_URL: url, SEIGO_CONFIG: configPath, SEIGO_DATA_DIR: join(tmp, 'data'), SEIGO_LOG_LEVEL: 'warn' },
    });
    stops.push(() => cluster.stop());
    o.progress('starting an api and a worker process');
    await cluster.start();
    return {
      pool, cluster, nats, nc, jsm, js: jetstream(nc), network: new CardNetworkSimulator({ secret, seed: o.seed }),
      webhookUrl: `http://127.0.0.1:${cluster.apiPorts()[0]!}/webhooks/${PROVIDER}`, logDir, stop,
    };
  } catch (e) {
    await stop(true);
    throw e;
  }
}

/** Sends one event as a network does: again after a failure or a non-2xx answer, until seigo takes it. */
async function deliver(w: CardsWorld, e: NetworkEvent): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { headers, body } = w.network.signed(e);
      const res = await request(w.webhookUrl, { method: 'POST', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 });
      await res.body.dump();
      if (res.statusCode < 300) return;
      if (res.statusCode < 500 && res.statusCode !== 429) throw new Error(`seigo refused event ${e.id} (${e.type}) with ${res.statusCode}`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('seigo refused')) throw err;
      if (attempt >= 50) throw err;
    }
    await sleep(Math.min(2_000, 50 * attempt));
  }
}

/** The outages of a run, each at a share of the events sent: the worker killed, the points store failing, NATS restarted. */
export interface Outage { at: number; name: string; run: (w: CardsWorld) => Promise<void> }

export const OUTAGES: readonly Outage[] = [
  { at: 0.25, name: 'worker SIGKILLed (points consumer and NATS publisher with it), restarted by the supervisor', run: async (w) => { w.cluster.kill('worker-1'); } },
  {
    at: 0.45, name: 'points store failing for 3 s (its events table gone)', run: async (w) => {
      await w.pool.query('ALTER TABLE points_card_events RENAME TO points_card_events_away');
      await sleep(3_000);
      await w.pool.query('ALTER TABLE points_card_events_away RENAME TO points_card_events');
    },
  },
  { at: 0.65, name: 'nats-server stopped for 2 s and started again', run: async (w) => { await w.nats.stop(); await sleep(2_000); await w.nats.start(); } },
];

/** Sends `events` over `lanes` concurrent connections at about `perSecond`; runs each outage as its share is reached. */
export async function driveCards(w: CardsWorld, events: readonly NetworkEvent[], o: { perSecond: number; lanes: number; outages: readonly Outage[]; progress: (m: string) => void }): Promise<void> {
  let next = 0;
  const started = Date.now();
  const pending = [...o.outages].sort((a, b) => a.at - b.at);
  const running: Promise<void>[] = [];
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= events.length) return;
      while (pending.length > 0 && i >= pending[0]!.at * events.length) {
        const outage = pending.shift()!;
        o.progress(`at event ${i}: ${outage.name}`);
        running.push(outage.run(w));
      }
      const due = started + (i / o.perSecond) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
      await deliver(w, events[i]!);
    }
  };
  await Promise.all(Array.from({ length: o.lanes }, lane));
  await Promise.all(running);
}

const BACKLOG = `
SELECT (SELECT count(*) FROM inbox WHERE provider = $1 AND status = 'pending')::int
     + (SELECT count(*) FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
        WHERE s.name = ANY($2::text[]) AND d.status IN ('pending', 'sending'))::int AS n`;

/** Waits until no card event and no card delivery is pending (three polls in a row), or the time is up. */
export async function waitUntilQuiet(w: CardsWorld, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  let quiet = 0;
  while (Date.now() < end) {
    const n = (await w.pool.query<{ n: number }>(BACKLOG, [PROVIDER, CARD_SUBSCRIPTIONS])).rows[0]!.n;
    quiet = n === 0 ? quiet + 1 : 0;
    if (quiet >= 3) return true;
    await sleep(300);
  }
  return false;
}

/** The Seigo-Message-Id of every message on the stream, read with an ordered consumer from the first. */
export async function streamMessageIds(w: Pick<CardsWorld, 'js' | 'jsm'>, stream = CARDS_STREAM): Promise<string[]> {
  const total = (await w.jsm.streams.info(stream)).state.messages;
  const consumer = await w.js.consumers.get(stream);
  const ids: string[] = [];
  while (ids.length < total) {
    const before = ids.length;
    for await (const m of await consumer.fetch({ max_messages: Math.min(1_000, total - ids.length), expires: 2_000 })) {
      ids.push(m.headers?.get('Seigo-Message-Id') ?? '');
    }
    if (ids.length === before) throw new Error(`read ${ids.length} of the ${total} messages on stream ${stream}, then nothing more came`);
  }
  return ids;
}

/** Inbox rows of event types seigo does not know: stored and ignored, never refused. */
async function unknownTypesStored(pool: pg.Pool): Promise<number> {
  const r = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM inbox WHERE provider = $1 AND status = 'ignored'`, [PROVIDER]);
  return r.rows[0]!.n;
}

export interface CardsSimOptions {
  seed: number;
  count: number;
  faultRate: number;
  databaseUrl?: string | undefined;
  /** Events per second the network sends (default 100). */
  perSecond?: number | undefined;
  quiesceTimeoutMs?: number | undefined;
  progress: (msg: string) => void;
}

export interface CardsSimResult extends CardFigures {
  seed: number;
  purchases: number;
  sent: number;
  unknown_types_stored: number;
  redriven: number;
  outages: string[];
  quiesced: boolean;
  ok: boolean;
  violations: string[];
}

/** A run on a started world: drive with faults, settle, redrive the dead once, settle, judge. Returns what was sent too. */
export async function runCardsOn(w: CardsWorld, o: CardsSimOptions): Promise<{ result: CardsSimResult; events: NetworkEvent[]; sent: NetworkEvent[] }> {
  const { events } = w.network.generate(o.count);
  // Nothing dropped here: a dropped event is only in the daily clearing file, and reconciliation's to find.
  const { sent } = w.network.withFaults(events, { duplicate: o.faultRate, reorder: o.faultRate, unknownType: o.faultRate / 4 });
  const outages = o.faultRate > 0 ? OUTAGES : [];
  o.progress(`sending ${sent.length} events of ${o.count} purchases`);
  await driveCards(w, sent, { perSecond: o.perSecond ?? 100, lanes: 8, outages, progress: o.progress });
  o.progress('waiting until seigo is quiet');
  let quiesced = await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000);
  // An operator redrives what died during the outages; a redrive by filter replays each once.
  let redriven = 0;
  for (const s of CARD_SUBSCRIPTIONS) redriven += await redrive(w.pool, { subscription: s });
  if (redriven > 0) quiesced = (await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000)) && quiesced;
  const figures = await computeCardFigures({
    pool: w.pool, generated: events, accepted: sent, rules: SIM_RULES, streamMessageIds: await streamMessageIds(w), subscriptions: CARD_SUBSCRIPTIONS,
  });
  const violations = [...cardViolations(figures), ...(quiesced ? [] : ['seigo did not become quiet'])];
  const result: CardsSimResult = {
    ...figures, seed: o.seed, purchases: o.count, sent: sent.length, unknown_types_stored: await unknownTypesStored(w.pool), redriven,
    outages: outages.map((x) => x.name), quiesced, ok: violations.length === 0, violations,
  };
  return { result, events, sent };
}

/** The whole run: start the world, run, stop it (keeping the logs when the run failed). */
export async function runCardsSim(o: CardsSimOptions): Promise<CardsSimResult> {
  const w = await startCardsWorld(o);
  let ok = false;
  try {
    const { result } = await runCardsOn(w, o);
    ok = result.ok;
    return result;
  } finally {
    await w.stop(!ok);
  }
}
