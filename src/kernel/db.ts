// Database access: one pg Pool per process. SQL stays SQL: named statements that PostgreSQL
// parses once per connection (see docs/design.md for why there is no query builder).
import pg from 'pg';
import type { Logger } from './logger.ts';
import { transactionEnded } from './wake.ts';

export type Queryable = pg.Pool | pg.PoolClient;
export type Tx = pg.PoolClient;

export interface Db {
  pool: pg.Pool;
  url: string;
  close(): Promise<void>;
}

export interface DbOptions {
  max?: number;
  applicationName?: string;
  log?: Logger;
  /** Session settings applied to every new connection, e.g. idle_in_transaction_session_timeout. */
  sessionSettings?: Record<string, string | number>;
}

export function createDb(url: string, opts: DbOptions = {}): Db {
  // Session settings travel in the startup packet (`-c name=value`), so they are in force before
  // the first query and cost no round trip.
  const options = Object.entries(opts.sessionSettings ?? {})
    .map(([k, v]) => `-c ${k}=${String(v).replace(/[\s\\]/g, (c) => `\\${c}`)}`)
    .join(' ');
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'seigo',
    // A worker whose peer vanished must not hold row locks forever.
    keepAlive: true,
    ...(options ? { options } : {}),
  });
  pool.on('error', (e) => opts.log?.warn({ err: e.message }, 'idle database connection failed'));
  return {
    pool,
    url,
    async close() {
      await pool.end().catch(() => undefined);
    },
  };
}

/** Runs `fn` in a transaction on one connection; commits on success, rolls back on any throw. */
export async function withTx<T>(pool: pg.Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    transactionEnded(pool, client, true);
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    transactionEnded(pool, client, false);
    throw e;
  } finally {
    client.release();
  }
}
