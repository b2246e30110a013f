// Process bootstrap shared by the CLI commands: load config, open the database (DATABASE_URL, or
// the embedded server under the data dir), migrate when asked, and shut down in order on signals.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { loadConfig, type Config } from '../kernel/config.ts';
import { createDb, type Db } from '../kernel/db.ts';
import { embeddedClusterExists, startEmbeddedPostgres, type EmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { SeigoError } from '../kernel/errors.ts';
import { createLogger, type Logger } from '../kernel/logger.ts';
import { migrate } from '../kernel/migrate.ts';
import { liveRuntime, type RuntimeInfo } from './runtime-file.ts';

export interface Runtime {
  config: Config;
  log: Logger;
  db: Db;
  embedded: EmbeddedPostgres | undefined;
  close(): Promise<void>;
}

/**
 * Opens the database. Role `cli` (commands run beside an engine) never creates one: it uses the running
 * engine's database and simulated providers (its runtime file), or else an existing cluster under the data dir.
 */
export async function openRuntime(
  opts: { migrate?: boolean; role: string; poolMax?: number; logLevel?: string; config?: Config },
): Promise<Runtime> {
  const config = opts.config ?? loadConfig();
  const log = createLogger(opts.logLevel ?? config.log.level).child({ role: opts.role });
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
  const running = !url && opts.role === 'cli' ? liveRuntime(config.dataDir) : undefined;
  if (running?.databaseUrl) {
    url = running.databaseUrl;
    adoptRunningProviders(config, running);
  } else if (!url && opts.role === 'cli' && !(await embeddedClusterExists(config.dataDir))) {
    throw new SeigoError('no_database', `no seigo database here: ${config.dataDir} holds no PostgreSQL cluster and no seigo runs `
      + 'there. Run this command in the directory where you ran `npm start`, or point at the data directory with '
      + 'SEIGO_DATA_DIR=<dir> (or --data-dir <dir>), or at a server with DATABASE_URL.', 404);
  }
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: config.dataDir,
      log: { info: (m) => log.info(m), warn: (m) => log.warn(m) },
    });
    url = embedded.url;
    log.info({ dataDir: config.dataDir, port: embedded.port }, 'embedded PostgreSQL ready');
  }
  const db = createDb(url, { max: opts.poolMax ?? 10, applicationName: `seigo-${opts.role}`, log });
  if (opts.migrate) {
    const { applied } = await migrate(db.pool);
    if (applied.length) log.info({ applied }, 'migrations applied');
  } else if (opts.role === 'cli') {
    await requireSchema(db, config, async () => { await db.close(); await embedded?.stop(); });
  }
  return {
    config, log, db, embedded,
    async close() {
      await db.close();
      await embedded?.stop();
    },
  };
}

/** The providers the running engine's simulators play, for a command run beside it (the configuration's own win). */
function adoptRunningProviders(config: Config, running: RuntimeInfo): void {
  for (const [name, provider] of Object.entries(running.providers)) {
    if (config.providers[name]) continue;
    config.providers[name] = provider;
    // The simulators live on loopback, which outbound calls otherwise refuse.
    if (!config.outbound.allow.includes('127.0.0.1')) config.outbound.allow.push('127.0.0.1');
  }
}

const HAS_SCHEMA = `SELECT to_regclass('seigo_migrations') IS NOT NULL AS ok`;

/** A database that was never migrated is refused with a sentence, not a `relation … does not exist` later. */
async function requireSchema(db: Db, config: Config, close: () => Promise<void>): Promise<void> {
  const r = await db.pool.query<{ ok: boolean }>(HAS_SCHEMA);
  if (r.rows[0]?.ok) return;
  await close();
  const where = config.databaseUrl ? 'the database DATABASE_URL names' : `the database under ${config.dataDir}`;
  throw new SeigoError('not_migrated', `${where} has no seigo schema yet: run \`seigo migrate\` (or \`npm start\`) first`, 409);
}

/**
 * First run without configuration: seigo makes a local operator token, a local API key and a
 * `demo` provider secret under the data dir, so the admin API, /v1 and the webhook route work at once. Only in the
 * embedded mode, and never when the configuration declares its own.
 */
export function applyLocalDefaults(config: Config, log: Logger): void {
  if (config.databaseUrl) return;
  mkdirSync(config.dataDir, { recursive: true });
  const readOrMake = (file: string, make: () => string) => {
    const p = join(config.dataDir, file);
    if (!existsSync(p)) writeFileSync(p, make(), { mode: 0o600 });
    return readFileSync(p, 'utf8').trim();
  };
  if (config.adminTokens.length === 0) {
    const token = readOrMake('admin-token', () => `seigo_${randomBytes(24).toString('hex')}`);
    config.adminTokens.push({ name: 'local', token, role: 'operator' });
    log.info({ file: join(config.dataDir, 'admin-token') }, 'no admin tokens configured: a local operator token is in this file');
  }
  if (config.apiClients.length === 0) {
    const key = readOrMake('api-key', () => `sk_local_${randomBytes(24).toString('hex')}`);
    config.apiClients.push({ name: 'local', key });
    log.info({ file: join(config.dataDir, 'api-key') }, 'no API clients configured: a local API key for /v1 is in this file');
  }
  if (Object.keys(config.providers).length === 0) {
    const secret = readOrMake('demo-provider-secret', () => `whsec_${randomBytes(32).toString('base64')}`);
    config.providers.demo = { kind: 'standard-webhooks', secrets: [secret], toleranceSeconds: 300 };
    log.info({ file: join(config.dataDir, 'demo-provider-secret') }, 'no providers configured: POST /webhooks/demo accepts Standard Webhooks signed with the secret in this file');
  }
}

/**
 * Runs `stop` once on SIGTERM or SIGINT (a second signal exits at once). Returns a function that runs it
 * for another reason and exits with the given code; `stop` then has 15 s before the process exits anyway
 * (a signal's drain takes the time it needs: the supervisor that sent it decides when to stop waiting).
 */
export function onShutdown(log: Logger, stop: () => Promise<void>): (code: number) => void {
  let stopping = false;
  const shutdown = (code: number) => {
    if (stopping) return;
    stopping = true;
    if (code !== 0) {
      setTimeout(() => {
        log.warn('shutdown took longer than 15 s: exiting now');
        process.exit(code);
      }, 15_000).unref();
    }
    stop().then(() => process.exit(code), (e: Error) => {
      log.error({ err: e.message }, 'shutdown failed');
      process.exit(1);
    });
  };
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal: sig }, 'stopping: no new work, finishing what is in flight');
    shutdown(0);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return shutdown;
}

/** Whether `port` on `host` can be listened on now (port 0 always can). */
export function portIsFree(host: string, port: number): Promise<boolean> {
  if (port === 0) return Promise.resolve(true);
  return new Promise((resolve) => {
    const server = createNetServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
