// The world an end-to-end run plays in: a PostgreSQL (DATABASE_URL's, or an embedded one in a
// temporary directory), seigo as separate `api` and `worker` processes behind a load balancer, the
// Stripe and KOMOJU simulators sending their webhooks to that balancer, a bank handing over Zengin
// files, and the wallet backend's endpoint receiving seigo's user notices. `stop()` ends all of it.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DEPOSITS_CALLBACK_SUBSCRIPTION, type ConfigInput } from '../kernel/config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { migrate } from '../kernel/migrate.ts';
import { KomojuSimulator, type KomojuFaults } from '../providers/komoju/simulator.ts';
import { StripeSimulator, type StripeFaults } from '../providers/stripe/simulator.ts';
import { Balancer } from './balancer.ts';
import { BankSimulator } from './bank.ts';
import { CallbackReceiver } from './callback-receiver.ts';
import { SeigoCluster } from './cluster.ts';

/** The wallet backend's notices arrive through `deposits.callback`, which is this subscription. */
export const NOTICE_SUBSCRIPTION = DEPOSITS_CALLBACK_SUBSCRIPTION;

export interface WorldOptions {
  seed: number;
  apis: number;
  workers: number;
  /** DATABASE_URL to use; otherwise an embedded PostgreSQL in the temporary directory. */
  databaseUrl?: string | undefined;
  /** SEIGO_FAULT_POINTS for the seigo processes. */
  faultPoints?: string | undefined;
  restartDelayMs?: (() => number) | undefined;
  /** The wallet limit without a per-user override. */
  defaultLimit: number;
  progress: (msg: string) => void;
}

export interface World {
  seed: number;
  /** The balancer: where clients and providers reach seigo. */
  url: string;
  apiKey: string;
  adminToken: string;
  defaultLimit: number;
  /** The harness's own connection, for setting up users and for the checks. */
  pool: pg.Pool;
  stripe: StripeSimulator;
  komoju: KomojuSimulator;
  bank: BankSimulator;
  receiver: CallbackReceiver;
  balancer: Balancer;
  cluster: SeigoCluster;
  logDir: string;
  /** The deposit ids seigo's API gave the wallet backend (one per request that got an answer). */
  walletDeposits: Set<string>;
  /** Idempotency-Keys of deposit requests the wallet backend gave up on (no answer in time). */
  walletGaveUp: Set<string>;
  /** A scratch directory that lives as long as the run. */
  workDir: string;
  /** Provider faults on or off (`rate` 0), with the same profile for every run; `storm`: every webhook 1…copies times, spread over spreadMs. */
  setProviderFaults(rate: number, storm?: { copies: number; spreadMs: number }): void;
  /** Stops every process and server; keeps the logs (and says where) when `keepLogs`. */
  stop(keepLogs: boolean): Promise<void>;
}

/**
 * What "faults at rate r" means for each simulator: r of API calls go wrong (half answered 500
 * before anything happens, half done and then never answered), r of webhooks are duplicated and r
 * held back (reordered), r/2 are dropped, and the wallet backend fails r of notices (a third of
 * those after processing them: a lost acknowledgement).
 */
export function faultProfile(rate: number): { stripe: Partial<StripeFaults>; komoju: KomojuFaults; receiver: { errorBefore: number; errorAfter: number } } {
  return {
    stripe: {
      latencyMs: rate > 0 ? 5 : 0, error500: rate / 2, timeoutAfterSuccess: rate / 2, hangMs: 5_000,
      duplicateWebhook: rate, dropWebhook: rate / 2, reorderWebhooks: rate, reorderDelayMs: 300,
    },
    komoju: { latencyMs: rate > 0 ? 20 : 0, error500: rate / 2, timeoutAfterSuccess: rate / 2, duplicateWebhook: rate, dropWebhook: rate / 2, reorderWebhooks: rate },
    receiver: { errorBefore: (rate * 2) / 3, errorAfter: rate / 3 },
  };
}

export async function startWorld(o: WorldOptions): Promise<World> {
  const tmp = await mkdtemp(join(tmpdir(), 'seigo-sim-'));
  // mkdtemp makes it 0700; PostgreSQL's unprivileged user (when we run as root) must reach it.
  await chmod(tmp, 0o755);
  const logDir = join(tmp, 'logs');
  await mkdir(logDir);
  const stops: (() => Promise<unknown>)[] = [];
  // Ctrl-C (or a SIGTERM) stops every process and server this run started before exiting.
  const interrupted = (sig: NodeJS.Signals) => {
    o.progress(`${sig}: stopping everything`);
    void stopAll(true).finally(() => process.exit(130));
  };
  // A bug in the harness itself must not leave processes or a PostgreSQL behind either.
  const crashed = (e: unknown) => {
    console.error('seigo sim: the harness failed:', e);
    void stopAll(true).finally(() => process.exit(1));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  process.once('uncaughtException', crashed);
  process.once('unhandledRejection', crashed);
  const stopAll = async (keepLogs: boolean) => {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    process.removeListener('uncaughtException', crashed);
    process.removeListener('unhandledRejection', crashed);
    for (const s of stops.reverse()) await s().catch(() => undefined);
    stops.length = 0;
    if (keepLogs) {
      await rm(join(tmp, 'pg'), { recursive: true, force: true }).catch(() => undefined);
      o.progress(`logs kept in ${logDir}`);
    } else {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  };
  try {
    let url = o.databaseUrl;
    if (!url) {
      o.progress('starting an embedded PostgreSQL');
      // Registered before it is up: a Ctrl-C during the start waits for it and then stops it.
      const starting: Promise<EmbeddedPostgres> = startEmbeddedPostgres({ dataDir: join(tmp, 'pg'), port: 56000 + (process.pid % 3000) });
      stops.push(async () => (await starting.catch(() => undefined))?.stop());
      url = (await starting).url;
    }
    const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'seigo-sim' });
    stops.push(() => pool.end());
    await migrate(pool);

    const apiKey = `sk_sim_${randomBytes(16).toString('hex')}`;
    const adminToken = `sim_${randomBytes(16).toString('hex')}`;
    const stripeSecret = `whsec_${randomBytes(24).toString('hex')}`;
    const komojuSecret = randomBytes(24).toString('hex');
    const noticeSecret = `whsec_${randomBytes(24).toString('base64')}`;

    let cluster: SeigoCluster | undefined;
    const balancer = new Balancer(() => cluster?.apiPorts() ?? []);
    const { url: lb } = await balancer.start();
    stops.push(() => balancer.stop());
    const stripe = new StripeSimulator({
      seed: o.seed, secretKey: 'sk_test_seigo_sim', webhookSecret: stripeSecret, webhookUrl: `${lb}/webhooks/stripe`,
      webhookMaxAttempts: 10, webhookRetryDelayMs: 100,
    });
    const { url: stripeUrl } = await stripe.start();
    stops.push(() => stripe.stop());
    const komoju = new KomojuSimulator({
      seed: o.seed, secretKey: 'sk_test_seigo_sim', webhookSecret: komojuSecret, webhookUrl: `${lb}/webhooks/komoju`,
      webhookAttempts: 10, webhookRetryDelayMs: 50, settlePayoutsAfterMs: 500,
    });
    const { url: komojuUrl } = await komoju.start();
    stops.push(() => komoju.stop());
    const receiver = new CallbackReceiver({ secret: noticeSecret, seed: o.seed });
    const { url: receiverUrl } = await receiver.start();
    stops.push(() => receiver.stop());

    // Short timeouts and schedules, so that a run settles in seconds rather than hours; the
    // mechanisms are the production ones.
    const endpoint = { timeoutMs: 2_000, maxAttempts: 1, concurrency: 16, breaker: { consecutiveFailures: 10, halfOpenAfterMs: 2_000 } };
    const config: ConfigInput = {
      log: { level: 'warn' },
      providers: {
        stripe: { kind: 'stripe', secretKey: 'sk_test_seigo_sim', webhookSecrets: [stripeSecret], apiBase: stripeUrl, searchLagSeconds: 0 },
        komoju: { kind: 'komoju', secretKey: 'sk_test_seigo_sim', webhookSecrets: [komojuSecret], apiBase: komojuUrl },
      },
      adminTokens: [{ name: 'sim', token: adminToken, role: 'operator' }],
      apiClients: [{ name: 'wallet', key: apiKey }],
      outbound: { allow: ['127.0.0.1'] },
      endpoints: { stripe: endpoint, komoju: endpoint },
      worker: { pollIntervalMs: 200, leaseMs: 10_000, batchSize: 100, concurrency: 8 },
      intake: { retrySchedule: [200, 500, 1_000, 2_000, 5_000, 10_000] },
      deposits: {
        defaultLimit: o.defaultLimit,
        // Announced bank transfers expire in seconds, so that paying late and never paying happen within a run.
        bankTransferExpiryMs: 5_000,
        // A payout whose settled notice KOMOJU dropped is asked about within seconds, not minutes.
        refundSettlePollMs: 1_000,
        callback: { url: receiverUrl, secret: noticeSecret, timeoutMs: 2_000, retrySchedule: [100, 200, 500, 1_000, 2_000, 3_000, 5_000, 5_000, 10_000, 10_000] },
      },
      operations: {
        inquirySchedule: [500, 1_000, 2_000, 3_000, 5_000, 5_000, 10_000, 10_000, 10_000, 10_000],
        janitorIntervalMs: 500, stalePendingMs: 2_000,
      },
    };
    const configPath = join(tmp, 'seigo.config.json');
    await writeFile(configPath, JSON.stringify(config, null, 2));

    cluster = new SeigoCluster({
      apis: o.apis, workers: o.workers, logDir, seed: o.seed, faultPoints: o.faultPoints, restartDelayMs: o.restartDelayMs,
      env: { ...process.env, DATABASE_URL: url, SEIGO_CONFIG: configPath, SEIGO_DATA_DIR: join(tmp, 'data'), SEIGO_LOG_LEVEL: 'warn' },
    });
    const c = cluster;
    stops.push(() => c.stop());
    o.progress(`starting ${o.apis} api and ${o.workers} worker processes`);
    await cluster.start();

    const profile = (rate: number, storm?: { copies: number; spreadMs: number }) => {
      const f = faultProfile(rate);
      const s = { stormCopies: storm?.copies ?? 0, stormSpreadMs: storm?.spreadMs ?? 0 };
      stripe.setFaults({ ...f.stripe, ...s });
      komoju.setFaults({ ...f.komoju, ...s });
      receiver.setFaults(f.receiver);
    };
    return {
      seed: o.seed, url: lb, apiKey, adminToken, defaultLimit: o.defaultLimit, pool, stripe, komoju, bank: new BankSimulator(), receiver,
      balancer, cluster, logDir, walletDeposits: new Set(), walletGaveUp: new Set(), workDir: tmp, setProviderFaults: profile, stop: stopAll,
    };
  } catch (e) {
    await stopAll(true);
    throw e;
  }
}
