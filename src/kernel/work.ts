// Shared shape of claimed work: process a claimed batch in one transaction, and when any item
// fails, roll back and process each item on its own so one bad item cannot hold the others back.
import type pg from 'pg';
import type { Tx } from './db.ts';
import { transactionEnded } from './wake.ts';

/** A failure that retrying cannot fix (unparseable payload, unknown provider): stop at once. */
export class PermanentFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentFailure';
  }
}

export interface BatchSteps<T> {
  /** Claims up to `limit` items with FOR UPDATE SKIP LOCKED inside `tx`. */
  claim(tx: Tx, limit: number): Promise<T[]>;
  /** Re-claims one item by id inside `tx` (null when another worker took it or it is done). */
  claimOne(tx: Tx, item: T): Promise<T | null>;
  /** Applies the items and marks them done, inside `tx`. */
  apply(tx: Tx, items: T[]): Promise<void>;
  /** Records a failed attempt of one item, outside the failed transaction. */
  fail(pool: pg.Pool, item: T, error: Error): Promise<void>;
}

/** Returns the number of items claimed (0 means the queue was empty). */
export async function runClaimedBatch<T>(pool: pg.Pool, limit: number, steps: BatchSteps<T>): Promise<number> {
  const client = await pool.connect();
  let items: T[] = [];
  try {
    await client.query('BEGIN');
    items = await steps.claim(client, limit);
    if (items.length === 0) {
      await client.query('COMMIT');
      return 0;
    }
    await steps.apply(client, items);
    await client.query('COMMIT');
    transactionEnded(pool, client, true);
    return items.length;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    transactionEnded(pool, client, false);
    if (items.length === 0) throw e;
    // A batch of one has already had its attempt: record the failure rather than run it again.
    if (items.length === 1) {
      await steps.fail(pool, items[0]!, e instanceof Error ? e : new Error(String(e)));
      return 1;
    }
  } finally {
    client.release();
  }
  // Slow path: one transaction per item, so the good ones commit and the bad one records its cause.
  for (const item of items) {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const again = await steps.claimOne(c, item);
      if (again) await steps.apply(c, [again]);
      await c.query('COMMIT');
      transactionEnded(pool, c, true);
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      transactionEnded(pool, c, false);
      await steps.fail(pool, item, e instanceof Error ? e : new Error(String(e)));
    } finally {
      c.release();
    }
  }
  return items.length;
}

/** Short, single-line cause for a status column; never includes a stack. */
export function causeOf(e: Error): string {
  return `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}`.replace(/\s+/g, ' ').slice(0, 1000);
}
