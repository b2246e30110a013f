// Process bootstrap shared by the CLI commands: load config, open the database (DATABASE_URL, or
// the embedded server under the data dir), migrate when asked, and shut down in order on signals.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from '../kernel/config.ts';
import { createDb, type Db } from '../kernel/db.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { createLogger, type Logger } from '../kernel/logger.ts';
import { migrate } from '../kernel/migrate.ts';

export interface Runtime {
  config: Config;
  log: Logger;
  db: Db;
  embedded: EmbeddedPostgres | undefined;
  close(): Promise<void>;
}

export async function openRuntime(opts: { migrate?: boolean; role: string; poolMax?: number; logLevel?: string }): Promise<Runtime> {
  const config = loadConfig();
  const log = createLogger(opts.logLevel ?? config.log.level).child({ role: opts.role });
  let embedded: EmbeddedPostgres | undefined;
  let url = config.databaseUrl;
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
  }
  return {
    config, log, db, embedded,
    async close() {
      await db.close();
      await embedded?.stop();
    },
  };
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

/** Runs `stop` once on SIGTERM or SIGINT; a second signal exits at once. */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal: sig }, 'stopping: no new work, finishing what is in flight');
    stop().then(() => process.exit(0), (e: Error) => {
      log.error({ err: e.message }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
