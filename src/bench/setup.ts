// Benchmark ground: a PostgreSQL (DATABASE_URL, or an embedded server in a temp dir) and a fresh
// migrated database for this run, dropped afterwards. Figures only mean something against a
// baseline measured on the same server in the same run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../kernel/embedded-postgres.ts';
import { migrate } from '../kernel/migrate.ts';

export interface BenchDatabase {
  url: string;
  serverVersion: string;
  embedded: boolean;
  close(): Promise<void>;
}

export async function benchDatabase(): Promise<BenchDatabase> {
  let dir: string | undefined;
  let stopServer: (() => Promise<void>) | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dir = await mkdtemp(join(tmpdir(), 'seigo-bench-'));
    await chmod(dir, 0o755);
    const e = await startEmbeddedPostgres({ dataDir: dir, port: 56000 + (process.pid % 3000) });
    adminUrl = e.url;
    stopServer = () => e.stop();
  }
  // Interrupted (Ctrl-C, or a time limit's SIGTERM), a benchmark still stops the server it started
  // and removes its directory, instead of leaving an orphaned PostgreSQL behind.
  const onSignal = (signal: NodeJS.Signals) => {
    void (async () => {
      await stopServer?.().catch(() => undefined);
      if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const name = `seigo_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const version = (await admin.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migrate(pool);
  await pool.end();
  return {
    url,
    serverVersion: version,
    embedded: !process.env.DATABASE_URL,
    async close() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
      await stopServer?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** pgbench from PATH or Debian's PostgreSQL packages. */
export function findPgbench(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' }).trim();
  } catch {
    for (const v of existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort().reverse() : []) {
      const p = `/usr/lib/postgresql/${v}/bin/pgbench`;
      if (existsSync(p)) return p;
    }
  }
  throw new Error('pgbench not found: install it (Debian: apt-get install postgresql-client) to measure the baseline');
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A free TCP port on loopback, for an API process the benchmark starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export async function waitReady(url: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('seigo api did not become ready');
}
