// The `seigo` command line: start | api | worker | migrate | replay | redrive | reconcile | bench.
import { Command, InvalidArgumentError, Option } from 'commander';
import { createServer } from '../api/server.ts';
import { idempotencyPruneJob } from '../api/idempotency.ts';
import { createEngine } from '../engine/index.ts';
import { startTracing } from '../kernel/tracing.ts';
import { replayInbox, replayInboxSince } from '../intake/index.ts';
import { SeigoError } from '../kernel/errors.ts';
import { liveEmbeddedOwner, stopEmbeddedPostgres, type EmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { loadConfig, type Config, type ProviderConfig } from '../kernel/config.ts';
import { backfill, getSubscription, redrive, syncConfigSubscriptions } from '../outbox/index.ts';
import { applyLocalDefaults, onShutdown, openRuntime, portIsFree } from './bootstrap.ts';
import { createLogger, type Logger } from '../kernel/logger.ts';
import { mkdirSync } from 'node:fs';
import { claimRuntime, liveRuntime, publishRuntime, releaseRuntime } from './runtime-file.ts';
import { printProblem, problemOf } from './problem.ts';
import { applyRuntimeOptions, runtimeOptions } from './options.ts';
import { SIM_BANK_PROVIDER, simulatedBank, startLocalSimulators, type LocalSimulators } from '../sim/local.ts';
import { casesCommand } from './cases.ts';
import { simPayCommand } from './sim-pay.ts';
import { subscriptionsCommand } from './subscriptions.ts';
import { sagasCommand } from './sagas.ts';
import { partnersCommand } from './partners.ts';
import { VERSION } from '../kernel/version.ts';
import { masterdataCommand } from './masterdata.ts';

const program = new Command('seigo')
  .description('seigo (整合): keeps payment and partner integrations consistent with the outside world, on PostgreSQL.\n'
    + 'Without DATABASE_URL it runs its own PostgreSQL under ./.seigo (SEIGO_DATA_DIR).')
  .version(VERSION)
  .showHelpAfterError()
  .hook('preAction', applyRuntimeOptions);

const date = (v: string) => {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(`not a date: ${v} (use ISO 8601, e.g. 2026-11-01T00:00:00Z)`);
  return d;
};

async function serve(role: 'start' | 'api' | 'worker'): Promise<void> {
  const config = loadConfig();
  // A second `start` in the same directory leaves before touching anything (database, simulators, port).
  if (role === 'start' && !config.databaseUrl) {
    mkdirSync(config.dataDir, { recursive: true });
    const claim = claimRuntime(config.dataDir, { port: config.port, host: config.host });
    if (!claim.ok) {
      throw new SeigoError('already_running', `seigo already runs here (pid ${claim.holder.pid}, port ${claim.holder.port}); `
        + `its data directory is ${config.dataDir}. Stop it first (Ctrl-C where it runs, or kill -TERM ${claim.holder.pid}).`, 409);
    }
  }
  try {
    if (role !== 'worker' && !(await portIsFree(config.host, config.port))) {
      throw new SeigoError('port_in_use', `port ${config.port} on ${config.host} is taken by another program: stop it, `
        + 'or choose another port with --port <n> (SEIGO_PORT)', 409);
    }
    await serveClaimed(role, config);
  } catch (e) {
    releaseRuntime(config.dataDir);
    throw e;
  }
}

async function serveClaimed(role: 'start' | 'api' | 'worker', config: Config): Promise<void> {
  const rt = await openRuntime({ role, config, migrate: role === 'start', poolMax: role === 'worker' ? 12 : 10 });
  const { log, db } = rt;
  let sims: LocalSimulators | undefined;
  if (role === 'start') {
    applyLocalDefaults(config, log);
    if (config.simulators.enabled && !config.databaseUrl) {
      sims = await startLocalSimulators(config, `http://127.0.0.1:${config.port}`, log);
      simulatedBank(config, log);
    }
  }
  // OpenTelemetry traces when the standard OTEL_* variables ask for them (src/kernel/tracing.ts).
  const tracing = await startTracing();
  if (tracing) log.info('OpenTelemetry tracing on (OTEL_* environment variables)');
  const engine = createEngine({ config, db, log });
  if (role !== 'worker') await syncConfigSubscriptions(db.pool, config.subscriptions);
  let shuttingDown = false;
  const app = role === 'worker' ? null : await createServer(engine, { isShuttingDown: () => shuttingDown });
  // The API layer's own upkeep (idempotency keys) runs on workers too, added here where the process is composed.
  const worker = role === 'api' ? null : engine.createWorker(role === 'start' ? 'start' : 'worker', { periodic: [idempotencyPruneJob(db.pool)] });
  await worker?.start();
  if (app) {
    await app.listen({ port: config.port, host: config.host });
    log.info({ url: `http://${config.host}:${config.port}`, openapi: '/openapi.json', metrics: '/metrics' }, 'seigo is listening');
  }
  if (role === 'start' && rt.embedded) {
    publishRuntime(config.dataDir, { databaseUrl: rt.embedded.url, providers: simulatedProviders(config, sims) });
  }
  const stop = onShutdown(log, async () => {
    shuttingDown = true;
    await app?.close();
    await worker?.shutdown();
    await engine.close();
    await tracing?.shutdown().catch((e: Error) => log.warn({ err: e }, 'could not flush the last spans'));
    await sims?.stop();
    await rt.close();
    releaseRuntime(config.dataDir);
  });
  if (rt.embedded) watchEmbedded(rt.embedded, config.dataDir, log, stop);
}

/** The providers the simulators registered, for the runtime file (commands run beside the engine use them). */
function simulatedProviders(config: Config, sims: LocalSimulators | undefined): Record<string, ProviderConfig> {
  const out: Record<string, ProviderConfig> = {};
  if (sims?.stripe && config.providers.stripe) out.stripe = config.providers.stripe;
  if (sims?.komoju && config.providers.komoju) out.komoju = config.providers.komoju;
  const bank = config.deposits.bankTransferProvider;
  if (sims && bank === SIM_BANK_PROVIDER && config.providers[bank]) out[bank] = config.providers[bank];
  return out;
}

/**
 * An engine whose embedded PostgreSQL went away (stopped or killed under it) cannot do anything: it says so
 * and exits with code 1 instead of answering /readyz 503 for ever.
 */
function watchEmbedded(embedded: EmbeddedPostgres, dataDir: string, log: Logger, stop: (code: number) => void): void {
  const timer = setInterval(() => {
    void embedded.running().then((up) => {
      if (up) return;
      clearInterval(timer);
      log.error({ dataDir, port: embedded.port }, 'the embedded PostgreSQL stopped under this process (was `seigo db stop` run, '
        + 'or the server killed?); seigo cannot work without it and exits. Start it again with `npm start`');
      stop(1);
    });
  }, 2_000);
  timer.unref();
}

runtimeOptions(program.command('start'), { withPort: true })
  .description('Run everything in one process: migrations, API, workers and scheduler (the embedded PostgreSQL unless DATABASE_URL is set)')
  .action(() => serve('start'));

runtimeOptions(program.command('api'), { withPort: true })
  .description('Run an API process (webhooks, admin API, metrics). Run `seigo migrate` first; run as many as you like')
  .action(() => serve('api'));

runtimeOptions(program.command('worker'))
  .description('Run a worker process (inbox, deliveries, operations janitor, periodic jobs). Run as many as you like')
  .action(() => serve('worker'));

runtimeOptions(program.command('migrate'))
  .description('Apply database migrations (safe to run from many processes at once)')
  .action(async () => {
    const rt = await openRuntime({ role: 'migrate', migrate: true });
    console.log(JSON.stringify({ migrated: true }));
    await rt.close();
  });

runtimeOptions(program.command('replay'))
  .description('Process stored notifications again, idempotently: one by inbox id, or a provider\'s since a time')
  .argument('[id]', 'inbox row id')
  .option('--provider <name>', 'replay this provider\'s notifications')
  .option('--since <time>', 'received at or after this time (ISO 8601)', date)
  .option('--until <time>', 'received before this time (ISO 8601)', date)
  .action(async (id: string | undefined, o: { provider?: string; since?: Date; until?: Date }, cmd: Command) => {
    if (!id && !(o.provider && o.since)) cmd.error('give an inbox id, or --provider and --since');
    const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
    try {
      if (id) {
        const ok = await replayInbox(rt.db.pool, id);
        console.log(JSON.stringify({ replayed: ok ? 1 : 0 }));
        if (!ok) process.exitCode = 1;
      } else {
        console.log(JSON.stringify({ replayed: await replayInboxSince(rt.db.pool, o.provider!, o.since!, o.until) }));
      }
    } finally {
      await rt.close();
    }
  });

runtimeOptions(program.command('redrive'))
  .description('Put dead deliveries back in the queue: by id, or by subscription, topic and time; --backfill gives a subscription earlier messages')
  .argument('[ids...]', 'delivery ids')
  .option('--subscription <name>', 'only this subscription\'s deliveries')
  .option('--topic <topic>', 'only messages of this topic')
  .option('--status <list>', 'which deliveries to redrive, comma-separated: dead, pending, cancelled', 'dead')
  .option('--since <time>', 'created at or after this time (ISO 8601)', date)
  .option('--until <time>', 'created before this time (ISO 8601)', date)
  .option('--backfill', 'create deliveries for messages published since --since that the subscription matches')
  .action(async (ids: string[], o: { subscription?: string; topic?: string; status: string; since?: Date; until?: Date; backfill?: boolean }, cmd: Command) => {
    const statuses = o.status.split(',').map((s) => s.trim());
    for (const s of statuses) if (!['dead', 'pending', 'cancelled'].includes(s)) cmd.error(`--status: unknown status ${s}`);
    if (o.backfill && !(o.subscription && o.since)) cmd.error('--backfill needs --subscription and --since');
    if (!o.backfill && ids.length === 0 && !o.subscription && !o.topic && !o.since) cmd.error('give delivery ids or a filter (--subscription, --topic, --since)');
    const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
    try {
      // A misspelt name would redrive nothing and say `0`, as if that subscription had no dead deliveries.
      if (o.subscription && !(await getSubscription(rt.db.pool, o.subscription))) {
        throw new SeigoError('subscription_not_found',
          `the subscription "${o.subscription}" does not exist (GET /admin/v1/subscriptions lists them)`, 404);
      }
      if (o.backfill) console.log(JSON.stringify({ created: await backfill(rt.db.pool, o.subscription!, o.since!) }));
      else {
        console.log(JSON.stringify({
          redriven: await redrive(rt.db.pool, { ids: ids.length ? ids : undefined, subscription: o.subscription, topic: o.topic, statuses: statuses as ('dead' | 'pending' | 'cancelled')[], since: o.since, until: o.until }),
        }));
      }
    } finally {
      await rt.close();
    }
  });

// Benchmarks, and the peer libraries they race against, ship only in a clone of the repository: the
// published package leaves them out, and a missing one says so instead of printing a stack.
async function importBench<T>(load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new SeigoError('bench_not_installed', 'benchmarks are not part of the installed package: run them from a clone of the '
      + `repository (npm install there, then npx seigo bench …); ${(e as Error).message.split('\n')[0]}`, 404);
  }
}

const bench = program.command('bench').description('Benchmarks that print JSON and compare with a baseline measured in the same run');
bench.command('intake')
  .description('Signed webhooks at a fixed concurrency with 10% duplicates, against pgbench single-row inserts into a table of the same shape')
  .addOption(new Option('--concurrency <n>', 'concurrent clients').default(16).argParser(Number))
  .addOption(new Option('--duration <s>', 'seconds of load for each side').default(10).argParser(Number))
  .option('--json', 'print only the JSON result')
  .action(async (o: { concurrency: number; duration: number; json?: boolean }) => {
    const { benchIntake } = await importBench(() => import('../bench/intake.ts'));
    const r = await benchIntake(o);
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });
bench.command('delivery')
  .description('100,000 messages to an in-process consumer that writes one row, against graphile-worker and pg-boss on the same server')
  .addOption(new Option('--count <n>', 'messages').default(100_000).argParser(Number))
  .addOption(new Option('--rate <n>', 'messages per second for the latency run').default(500).argParser(Number))
  .addOption(new Option('--latency-seconds <s>', 'length of the latency run').default(10).argParser(Number))
  .option('--json', 'print only the JSON result')
  .action(async (o: { count: number; rate: number; latencySeconds: number; json?: boolean }) => {
    const { benchDelivery } = await importBench(() => import('../bench/delivery.ts'));
    const r = await benchDelivery(o);
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });

const sim = program.command('sim').description('Play the outside world against a running seigo: provider simulators and test notifications');
runtimeOptions(sim.command('providers'))
  .description('Run the Stripe and KOMOJU simulators until stopped, sending their webhooks to a seigo (npm start runs them itself)')
  .option('--seigo <url>', 'where seigo listens', 'http://127.0.0.1:8787')
  .action(async (o: { seigo: string }) => {
    const config = loadConfig();
    config.providers = {};
    const log = createLogger(config.log.level);
    const sims = await startLocalSimulators(config, o.seigo.replace(/\/$/, ''), log);
    console.log(JSON.stringify({
      stripe: { api_base: sims.stripe?.url, webhook_secret: config.providers.stripe?.kind === 'stripe' ? config.providers.stripe.webhookSecrets[0] : undefined },
      komoju: { api_base: sims.komoju?.url, webhook_secret: config.providers.komoju?.kind === 'komoju' ? config.providers.komoju.webhookSecrets[0] : undefined },
    }));
    onShutdown(log, () => sims.stop());
  });
sim.command('billing')
  .description('Run the legacy billing-system simulator (member ids only: start, renew, cancel, status) until stopped, with fault injection')
  .addOption(new Option('--port <n>', 'port on 127.0.0.1 (0: any free one)').default(0).argParser(Number))
  .option('--api-key <key>', 'the bearer key it accepts', 'bk_test_seigo_simulator')
  .addOption(new Option('--latency-ms <ms>', 'each request waits a random 0…ms first').default(0).argParser(Number))
  .addOption(new Option('--error500 <rate>', 'share of requests answered 500 without being processed').default(0).argParser(Number))
  .addOption(new Option('--timeout-after-success <rate>', 'share of POSTs processed but never answered').default(0).argParser(Number))
  .addOption(new Option('--seed <n>', 'seed of the fault schedule').default(1).argParser(Number))
  .action(async (o: { port: number; apiKey: string; latencyMs: number; error500: number; timeoutAfterSuccess: number; seed: number }) => {
    const { BillingSimulator } = await import('../providers/billing/index.ts');
    const log = createLogger('info');
    const billing = new BillingSimulator({ apiKey: o.apiKey, seed: o.seed });
    billing.setFaults({ latencyMs: o.latencyMs, error500: o.error500, timeoutAfterSuccess: o.timeoutAfterSuccess });
    const { url } = await billing.start(o.port);
    console.log(JSON.stringify({ billing: { api_base: url, api_key: o.apiKey } }));
    onShutdown(log, () => billing.stop());
  });
runtimeOptions(sim.command('webhook'), { withPort: true })
  .description('Send one Standard Webhooks notification, signed with a configured provider\'s secret, to a running seigo')
  .option('--provider <name>', 'a provider of kind standard-webhooks from the configuration', 'demo')
  .option('--type <type>', 'event type', 'payment.succeeded')
  .option('--data <json>', 'event data (JSON object)', '{"id":"pay_demo_1","object":"payment","amount":1000,"currency":"jpy"}')
  .option('--id <id>', 'webhook-id (the provider\'s event id); repeat one to see dedupe')
  .option('--url <url>', 'seigo\'s base URL (default http://SEIGO_HOST:SEIGO_PORT)')
  .action(async (o: { provider: string; type: string; data: string; id?: string; url?: string }) => {
    const { sendStandardWebhook } = await import('../sim/webhook.ts');
    const config = loadConfig();
    applyLocalDefaults(config, createLogger('silent'));
    const r = await sendStandardWebhook(config, o);
    console.log(JSON.stringify(r));
    if (r.status >= 300) process.exitCode = 1;
  });

/** A number option within [min, max] (integers only when `int`), or a usage error naming the option. */
const numberIn = (name: string, min: number, max: number, int = true) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`${name} must be ${int ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return n;
};

sim.command('deposits')
  .description('End-to-end proof: drive N deposits of every method against the simulators with faults, wait until quiet, and check that nothing was lost or credited twice (exit 1 if an invariant broke)')
  .addOption(new Option('--count <n>', 'deposits to drive (default 100; 10000 with --storm)').argParser(numberIn('--count', 1, 100_000)))
  .addOption(new Option('--faults <rate>', 'provider fault rate, 0 to 1').default(0.2).argParser(numberIn('--faults', 0, 1, false)))
  .addOption(new Option('--seed <n>', 'seed for what is driven and the faults (random if not given)').argParser(numberIn('--seed', 0, 2 ** 31 - 1)))
  .option('--storm', 'send every provider notification (webhooks, bank files) 1 to 6 times, concurrently and out of order')
  .addOption(workloadOption())
  .addOption(throttleOption())
  .option('--json', 'print only the JSON result')
  .action(async (o: { count?: number; faults: number; seed?: number; storm?: boolean; minPerMinute?: number; throttleMs?: number; json?: boolean }) => {
    const { runDepositsProof } = await import('../sim/proof.ts');
    const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
    const r = await runDepositsProof({
      seed, count: o.count ?? (o.storm ? 10_000 : 100), faultRate: o.faults, storm: o.storm, minPerMinute: o.minPerMinute, throttleMs: o.throttleMs,
      databaseUrl: process.env.DATABASE_URL, progress: simProgress(o.json),
    });
    reportProof(r, o.json);
  });
sim.command('masterdata')
  .description("Partner master data proof: partners change prices, texts and capacity over simulated days, some pulls fail, operators approve or reject at random; exit 1 unless nothing was overwritten silently or applied without approval")
  .addOption(new Option('--partners <n>', 'partners').default(5).argParser(numberIn('--partners', 1, 100)))
  .addOption(new Option('--products <n>', 'products per partner').default(2000).argParser(numberIn('--products', 1, 1_000_000)))
  .addOption(new Option('--days <n>', 'simulated days').default(30).argParser(numberIn('--days', 0, 365)))
  .addOption(new Option('--seed <n>', 'seed (random if not given)').argParser(numberIn('--seed', 0, 2 ** 31 - 1)))
  .addOption(new Option('--inject <faults>', 'comma-separated faults seigo must catch: unapproved-price, overwrite'))
  .option('--json', 'print only the JSON result')
  .action(async (o: { partners: number; products: number; days: number; seed?: number; inject?: string; json?: boolean }) => {
    const { runMasterdataSim } = await import('../sim/masterdata.ts');
    const { openRuntime } = await import('./bootstrap.ts');
    const rt = await openRuntime({ role: 'cli', logLevel: 'warn', migrate: true });
    try {
      const inject = (o.inject?.split(',').map((s) => s.trim()).filter(Boolean) ?? []) as ('unapproved-price' | 'overwrite')[];
      const r = await runMasterdataSim({
        pool: rt.db.pool, partners: o.partners, products: o.products, days: o.days, seed: o.seed ?? Math.floor(Math.random() * 2 ** 31),
        inject, progress: simProgress(o.json),
      });
      console.log(JSON.stringify(r, null, o.json ? 0 : 2));
      if (r.overwritten_silently !== 0 || r.price_applied_without_approval !== 0 || r.export_mismatches !== 0) process.exitCode = 1;
    } finally {
      await rt.close();
    }
  });
sim.command('chaos')
  .description('Chaos harness: two api and two worker processes on a real PostgreSQL, deposits with provider faults while processes are SIGKILLed and restarted, then quiet and check every invariant (exit 1 if one broke)')
  .addOption(new Option('--duration <s>', 'seconds of chaos').default(60).argParser(numberIn('--duration', 1, 7 * 86_400)))
  .addOption(new Option('--faults <rate>', 'provider fault rate, 0 to 1').default(0.2).argParser(numberIn('--faults', 0, 1, false)))
  .addOption(new Option('--kill-after-call <p>', 'probability that a process SIGKILLs itself right after a provider call, before recording it').default(0.05).argParser(numberIn('--kill-after-call', 0, 1, false)))
  .addOption(new Option('--seed <n>', 'seed for what is driven, the faults and the kills (random if not given)').argParser(numberIn('--seed', 0, 2 ** 31 - 1)))
  .addOption(workloadOption())
  .addOption(throttleOption())
  .option('--json', 'print only the JSON result')
  .action(async (o: { duration: number; faults: number; killAfterCall: number; seed?: number; minPerMinute?: number; throttleMs?: number; json?: boolean }) => {
    const { runChaos } = await import('../sim/proof.ts');
    const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
    const r = await runChaos({
      seed, durationS: o.duration, faultRate: o.faults, afterCallKill: o.killAfterCall, minPerMinute: o.minPerMinute, throttleMs: o.throttleMs,
      databaseUrl: process.env.DATABASE_URL, progress: simProgress(o.json),
    });
    reportProof(r, o.json);
  });

sim.command('cards')
  .description('Card events to points and NATS end to end: N purchases from the card network simulator with duplicates, reordering and unknown types; the points consumer killed and failing, NATS restarted; exit 1 unless points, ledger and stream all agree with the events')
  .addOption(new Option('--count <n>', 'purchases to drive').default(200).argParser(numberIn('--count', 1, 100_000)))
  .addOption(new Option('--faults <rate>', 'share of events duplicated and reordered (unknown types at a quarter of it); above 0 also the outages').default(0.2).argParser(numberIn('--faults', 0, 1, false)))
  .addOption(new Option('--seed <n>', 'seed for the purchases and the faults (random if not given)').argParser(numberIn('--seed', 0, 2 ** 31 - 1)))
  .addOption(new Option('--rate <n>', 'events per second the network sends').default(100).argParser(numberIn('--rate', 1, 100_000)))
  .option('--json', 'print only the JSON result')
  .action(async (o: { count: number; faults: number; seed?: number; rate: number; json?: boolean }) => {
    const { runCardsSim } = await import('../sim/cards.ts');
    const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
    const r = await runCardsSim({ seed, count: o.count, faultRate: o.faults, perSecond: o.rate, databaseUrl: process.env.DATABASE_URL, progress: simProgress(o.json) });
    reportProof(r, o.json);
  });

function workloadOption(): Option {
  return new Option('--min-per-minute <n>', 'least deposits completed per minute of driving, per method, for the run to pass (default 6)')
    .argParser(numberIn('--min-per-minute', 0, 1_000_000, false));
}

function throttleOption(): Option {
  return new Option('--throttle-ms <ms>', 'fault injection for the harness itself: each driver lane waits this long before each deposit')
    .argParser(numberIn('--throttle-ms', 0, 3_600_000));
}

function simProgress(json: boolean | undefined): (msg: string) => void {
  return (msg) => { if (!json) console.error(`seigo sim: ${msg}`); };
}

/** Prints the figures; a broken invariant sets exit code 1 and names the seed that repeats the run. */
function reportProof(r: { ok: boolean; seed: number; violations: string[] }, json: boolean | undefined): void {
  console.log(JSON.stringify(r, null, json ? 0 : 2));
  if (!r.ok) {
    console.error(`seigo sim: invariants broken (seed ${r.seed}; repeat with --seed ${r.seed}): ${r.violations.join('; ')}`);
    process.exitCode = 1;
  }
}

bench.command('fanout')
  .description('100,000 messages to a NATS JetStream subscription target against the official client publishing them straight to the same stream (64 in flight); then card event → points latency at a steady rate (needs nats-server)')
  .addOption(new Option('--count <n>', 'messages').default(100_000).argParser(numberIn('--count', 1, 10_000_000)))
  .addOption(new Option('--in-flight <n>', 'the direct publisher\'s acks in flight').default(64).argParser(numberIn('--in-flight', 1, 10_000)))
  .addOption(new Option('--batch <n>', 'deliveries a worker loop claims at once').default(500).argParser(numberIn('--batch', 1, 10_000)))
  .addOption(new Option('--rate <n>', 'card events per second for the latency run').default(500).argParser(numberIn('--rate', 1, 100_000)))
  .addOption(new Option('--latency-seconds <s>', 'length of the latency run').default(10).argParser(numberIn('--latency-seconds', 1, 3_600)))
  .option('--json', 'print only the JSON result')
  .action(async (o: { count: number; inFlight: number; batch: number; rate: number; latencySeconds: number; json?: boolean }) => {
    const { benchFanout } = await import('../bench/fanout.ts');
    const r = await benchFanout({ count: o.count, inFlight: o.inFlight, batchSize: o.batch, rate: o.rate, latencySeconds: o.latencySeconds });
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });

bench.command('ledger')
  .description('Single-posting transactions with the balance-limit check over many wallets with Zipf-skewed hot accounts, against pgbench single-row inserts')
  .addOption(new Option('--accounts <n>', 'wallets').default(100_000).argParser(Number))
  .addOption(new Option('--concurrency <n>', 'concurrent clients, for seigo and for pgbench alike').default(64).argParser(Number))
  .addOption(new Option('--duration <s>', 'seconds of load for each side').default(10).argParser(Number))
  .option('--json', 'print only the JSON result')
  .action(async (o: { accounts: number; concurrency: number; duration: number; json?: boolean }) => {
    const { benchLedger } = await importBench(() => import('../bench/ledger.ts'));
    const r = await benchLedger({ accounts: o.accounts, concurrency: o.concurrency, seconds: o.duration });
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });

bench.command('redeem')
  .description('Online ticket redemptions through the partner API (QR verify + single-use update + answer) against pgbench single-row conditional UPDATEs')
  .addOption(new Option('--tickets <n>', 'tickets issued before the run (each redeemed at most once)').default(50_000).argParser(Number))
  .addOption(new Option('--concurrency <n>', 'HTTP connections, and pgbench clients').default(32).argParser(Number))
  .addOption(new Option('--duration <s>', 'seconds of load for each side').default(10).argParser(Number))
  .option('--json', 'print only the JSON result')
  .action(async (o: { tickets: number; concurrency: number; duration: number; json?: boolean }) => {
    const { benchRedeem } = await importBench(() => import('../bench/redeem.ts'));
    const r = await benchRedeem({ tickets: o.tickets, concurrency: o.concurrency, seconds: o.duration });
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });

runtimeOptions(program.command('reconcile'))
  .description('Reconcile now: a provider\'s history over a window, or a Zengin / CSV file, against our records; repairs what it can and prints the counts')
  .option('--provider <name>', 'reconcile this provider\'s history (needs --from and --to)')
  .option('--from <time>', 'window start (ISO 8601)', date)
  .option('--to <time>', 'window end, exclusive (ISO 8601)', date)
  .option('--file <path>', 'reconcile this file (needs --format)')
  .addOption(new Option('--format <format>', 'the file\'s format').choices(['zengin', 'csv']))
  .option('--mapping <path>', 'for --format csv: a JSON file naming the columns and status values')
  .addOption(new Option('--encoding <encoding>', 'for --format zengin: the file\'s encoding').choices(['shift_jis', 'utf8']))
  .option('--deliveries', 'reconcile HTTP deliveries to internal services over --from/--to')
  .option('--no-repair', 'only find and record the breaks')
  .option('--json', 'print the run as JSON')
  .action(async (o: import('./reconcile.ts').ReconcileCliOptions, cmd: Command) => {
    const { reconcileCommand } = await import('./reconcile.ts');
    await reconcileCommand(o, (m) => cmd.error(m));
  });
bench.command('reconcile')
  .description('Reconcile N internal against N external rows (1% breaks of each class), against a bare COPY of the same file plus one hash join')
  .addOption(new Option('--rows <n>', 'rows on each side').default(1_000_000).argParser(Number))
  .option('--json', 'print only the JSON result')
  .action(async (o: { rows: number; json?: boolean }) => {
    const { benchReconcile } = await importBench(() => import('../bench/reconcile.ts'));
    const r = await benchReconcile({ rows: o.rows });
    console.log(JSON.stringify(r, null, o.json ? 0 : 2));
  });

runtimeOptions(program.command('db'))
  .description('The embedded PostgreSQL: `seigo db stop` stops a server left running under the data dir (never one a running seigo uses)')
  .argument('<action>', 'stop')
  .action(async (action: string, _o: unknown, cmd: Command) => {
    if (action !== 'stop') cmd.error('the only action is: stop');
    const config = loadConfig();
    const engine = liveRuntime(config.dataDir);
    const owner = engine ?? (await liveEmbeddedOwner(config.dataDir));
    if (owner) {
      throw new SeigoError('database_in_use', `a running seigo (pid ${owner.pid}${engine ? `, port ${engine.port}` : ''}) uses the `
        + `PostgreSQL under ${config.dataDir}; stop that process instead (Ctrl-C where it runs, or kill -TERM ${owner.pid}): `
        + 'it stops its PostgreSQL as it exits', 409);
    }
    console.log(JSON.stringify({ stopped: await stopEmbeddedPostgres(config.dataDir) }));
  });

simPayCommand(sim);
subscriptionsCommand(program);
casesCommand(program);
sagasCommand(program);
partnersCommand(program);
masterdataCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  printProblem(problemOf(e));
  process.exit(1);
}
