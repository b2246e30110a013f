// Waking workers after commit. A transaction that NOTIFYs holds PostgreSQL's notify queue lock
// through its commit, so notifying transactions commit one at a time; instead, the process that
// committed sends one coalesced `pg_notify` afterwards, outside the critical path. Workers also
// poll, so a lost wake-up only delays work by the poll interval.
import type pg from 'pg';

export type WakeChannel = 'inbox' | 'deliveries' | 'operations' | 'sagas';

class Waker {
  private readonly pending = new Set<WakeChannel>();
  private sending = false;

  constructor(private readonly pool: pg.Pool) {}

  wake(channel: WakeChannel): void {
    this.pending.add(channel);
    if (!this.sending) this.send();
  }

  // One notification round trip at a time per process; wake-ups that arrive meanwhile are sent
  // together right after, so a burst of commits costs a few notifications, not one each.
  private send(): void {
    const channels = [...this.pending];
    this.pending.clear();
    this.sending = true;
    this.pool.query({ name: 'seigo_wake', text: `SELECT pg_notify('seigo_work', c) FROM unnest($1::text[]) AS c`, values: [channels] })
      .catch(() => undefined)
      .finally(() => {
        this.sending = false;
        if (this.pending.size > 0) this.send();
      });
  }
}

const wakers = new WeakMap<pg.Pool, Waker>();
const requested = new WeakMap<object, Set<WakeChannel>>();

/** Wakes the workers listening for `channel` (after something was committed). */
export function wake(pool: pg.Pool, channel: WakeChannel): void {
  let w = wakers.get(pool);
  if (!w) {
    w = new Waker(pool);
    wakers.set(pool, w);
  }
  w.wake(channel);
}

/** Inside a transaction: ask for `channel` to be woken once this transaction commits. */
export function wakeAfterCommit(tx: object, channel: WakeChannel): void {
  const set = requested.get(tx) ?? new Set<WakeChannel>();
  set.add(channel);
  requested.set(tx, set);
}

/** Called right after COMMIT (or ROLLBACK, with committed=false) of a transaction on `tx`. */
export function transactionEnded(pool: pg.Pool, tx: object, committed: boolean): void {
  const set = requested.get(tx);
  if (!set) return;
  requested.delete(tx);
  if (committed) for (const c of set) wake(pool, c);
}

/** After a statement that made work: at once on a pool (autocommit), or at commit inside a transaction. */
export function wakeWhenVisible(db: pg.Pool | pg.PoolClient, channel: WakeChannel): void {
  if ('totalCount' in db) wake(db, channel);
  else wakeAfterCommit(db, channel);
}
