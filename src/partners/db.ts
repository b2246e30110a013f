// Partner traffic's own bounded pool, connected as the engine's user but switched to the role
// `seigo_partner` at connect (0050_partners.sql): only the partner tables' grants, row-level security
// by partner id, and a flood of partner requests waits for these connections, never the engine's.
import pg from 'pg';
import type { Tx } from '../kernel/db.ts';
import { SeigoError } from '../kernel/errors.ts';
import { isUuid } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';

export const PARTNER_ROLE = 'seigo_partner';

export interface PartnerDb {
  pool: pg.Pool;
  close(): Promise<void>;
}

export interface PartnerDbOptions {
  max: number;
  /** How long a request waits for a partner connection before it is answered 503. */
  acquireTimeoutMs: number;
  log?: Logger;
}

export function createPartnerDb(url: string, opts: PartnerDbOptions): PartnerDb {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max,
    application_name: 'seigo-partner',
    keepAlive: true,
    connectionTimeoutMillis: opts.acquireTimeoutMs,
    // In the startup packet: every statement on these connections runs as the partner role.
    options: `-c role=${PARTNER_ROLE}`,
  });
  pool.on('error', (e) => opts.log?.warn({ err: e.message }, 'idle partner database connection failed'));
  return { pool, async close() { await pool.end().catch(() => undefined); } };
}

/** The partner pool is exhausted for longer than it may wait: the caller retries later. */
export class PartnerBusyError extends SeigoError {
  constructor() {
    super('partner_capacity', 'the partner API is at capacity; retry later', 503, true);
  }
}

async function connect(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (e) {
    if (/timeout/i.test((e as Error).message)) throw new PartnerBusyError();
    throw e;
  }
}

/**
 * Runs `fn` in a transaction acting for `partnerId`: row-level security shows and accepts only that
 * partner's rows. The id is a validated UUID, so it is written into the statement that begins the
 * transaction (one round trip for BEGIN and the setting; SET takes no parameters).
 */
export async function withPartner<T>(pool: pg.Pool, partnerId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (!isUuid(partnerId)) throw new Error(`not a partner id: ${partnerId}`);
  const client = await connect(pool);
  try {
    await client.query(`BEGIN; SET LOCAL seigo.partner_id = '${partnerId}'`);
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}
