// Transfer-notice files are imported one at a time. A file's transaction books many transfers,
// each locking a wallet's balance row until commit, in the file's order; two files at once lock
// the same wallets in different orders and deadlock, and in a duplicate storm (the bank sending a
// file up to six times while the next one is already on its way) every aborted import was sent
// again and collided again, until a file went unanswered for minutes. So: one import at a time
// across processes (a transaction-scoped advisory lock), queued in memory within a process (a
// waiting copy holds no pooled connection), and a copy of a file already taken in is answered
// from one query without waiting at all.
import type pg from 'pg';
import { withTx, type Tx } from '../kernel/db.ts';

/** Serializes file imports across every seigo process on the database, until the transaction ends. */
export const FILE_IMPORT_LOCK = `SELECT pg_advisory_xact_lock(hashtextextended('bank_transfer:file_import', 0))`;
/** Which of a file's records (transfers and 取消 alike) are already booked. */
export const KNOWN_RECORDS = 'SELECT external_id FROM bank_transfers WHERE external_id = ANY($1::text[])';

/** The external ids among `ids` that are already booked. */
export async function knownRecords(q: pg.Pool | Tx, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const r = await q.query<{ external_id: string }>({ name: 'bank_transfer_known_records', text: KNOWN_RECORDS, values: [ids] });
  return new Set(r.rows.map((x) => x.external_id));
}

const queues = new WeakMap<pg.Pool, Promise<unknown>>();

/** Runs `fn` after every import this process queued on `pool` before it has ended (succeeded or not). */
export function queued<T>(pool: pg.Pool, fn: () => Promise<T>): Promise<T> {
  const before = queues.get(pool) ?? Promise.resolve();
  const run = before.then(fn, fn);
  queues.set(pool, run.catch(() => undefined));
  return run;
}

/** PostgreSQL's SQLSTATEs for a transaction it aborted so that another could go on: safe to run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const ATTEMPTS = 5;

/**
 * `withTx` that runs the transaction again when PostgreSQL aborted it as a deadlock victim or a
 * serialization failure (the import still meets other work on the same wallets: a worker crediting
 * a card deposit, an expiring reservation). Anything else is thrown at once.
 */
export async function withTxRetried<T>(pool: pg.Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await withTx(pool, fn);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (attempt >= ATTEMPTS || typeof code !== 'string' || !RETRYABLE.has(code)) throw e;
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 50 * attempt)));
    }
  }
}
