// The worker runtime: loops that claim work, woken by LISTEN/NOTIFY with a polling fallback;
// periodic jobs claimed as rows so each run happens once across any number of workers; and a
// graceful stop (no new claims, in-flight work finishes, then exit).
import { hostname } from 'node:os';
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../kernel/logger.ts';
import { causeOf } from '../kernel/work.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type { WakeChannel as Channel } from '../kernel/wake.ts';

/** How long a claimed periodic job stays claimed without its worker extending the claim (default). */
export const PERIODIC_LEASE_MS = 30_000;

export interface WorkLoop {
  name: string;
  /** NOTIFY payload that wakes this loop; null for poll-only loops. */
  channel: Channel | null;
  /** How many copies of this loop run side by side. */
  concurrency?: number;
  /** Claims and processes one batch; returns how many items it took (0 = nothing to do). */
  runOnce(): Promise<number>;
}

export interface PeriodicJob {
  name: string;
  intervalMs: number;
  run(): Promise<void>;
}

export interface WorkerOptions {
  pool: pg.Pool;
  databaseUrl: string;
  log: Logger;
  role: string;
  pollIntervalMs: number;
  loops: WorkLoop[];
  periodic: PeriodicJob[];
  /** The claim on a running periodic job; extended every third of it while the job runs. Default PERIODIC_LEASE_MS. */
  periodicLeaseMs?: number | undefined;
}

class Wakeup {
  private pending = false;
  private waiter: (() => void) | null = null;
  signal(): void {
    this.pending = true;
    this.waiter?.();
  }
  async wait(ms: number, stopped: AbortSignal): Promise<void> {
    if (this.pending || stopped.aborted) { this.pending = false; return; }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      const onAbort = () => done();
      stopped.addEventListener('abort', onAbort, { once: true });
      this.waiter = done;
      function done() {
        clearTimeout(t);
        stopped.removeEventListener('abort', onAbort);
        resolve();
      }
    });
    this.waiter = null;
    this.pending = false;
  }
}

export class WorkerRuntime {
  readonly id = `${hostname()}:${process.pid}:${uuidv7().slice(-8)}`;
  private readonly stop = new AbortController();
  private readonly wakeups = new Map<Channel, Wakeup[]>();
  private readonly running: Promise<void>[] = [];
  private listener: pg.Client | null = null;

  constructor(private readonly opts: WorkerOptions) {}

  async start(): Promise<void> {
    const { pool, log } = this.opts;
    await pool.query(
      `INSERT INTO processes (id, role, hostname, pid) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, [this.id, this.opts.role, hostname(), process.pid]);
    for (const job of this.opts.periodic) {
      await pool.query(
        `INSERT INTO periodic_jobs (name, interval_ms) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET interval_ms = EXCLUDED.interval_ms`,
        [job.name, job.intervalMs]);
    }
    await this.listen();
    for (const loop of this.opts.loops) {
      for (let i = 0; i < (loop.concurrency ?? 1); i++) {
        const wake = new Wakeup();
        if (loop.channel) this.wakeups.set(loop.channel, [...(this.wakeups.get(loop.channel) ?? []), wake]);
        this.running.push(this.runLoop(loop, wake));
      }
    }
    this.running.push(this.runPeriodic());
    log.info({ worker: this.id, loops: this.opts.loops.map((l) => l.name), periodic: this.opts.periodic.map((j) => j.name) }, 'worker started');
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.databaseUrl, application_name: 'seigo-listen', keepAlive: true });
    client.on('notification', (n) => {
      for (const w of this.wakeups.get(n.payload as Channel) ?? []) w.signal();
    });
    // If the listening connection drops, polling carries on; try to listen again a little later.
    client.on('error', (e) => {
      this.opts.log.warn({ err: e.message }, 'LISTEN connection lost; polling until it is back');
      this.listener = null;
      if (!this.stop.signal.aborted) setTimeout(() => { this.listen().catch(() => undefined); }, 2_000).unref();
    });
    await client.connect();
    await client.query('LISTEN seigo_work');
    this.listener = client;
  }

  private async runLoop(loop: WorkLoop, wake: Wakeup): Promise<void> {
    let errors = 0;
    while (!this.stop.signal.aborted) {
      let n = 0;
      try {
        n = await loop.runOnce();
        errors = 0;
      } catch (e) {
        errors++;
        this.opts.log.error({ loop: loop.name, err: causeOf(e as Error) }, 'work loop failed; backing off');
        await sleep(Math.min(30_000, 250 * 2 ** Math.min(errors, 7)), undefined, { signal: this.stop.signal }).catch(() => undefined);
        continue;
      }
      if (n === 0) await wake.wait(this.opts.pollIntervalMs, this.stop.signal);
    }
  }

  private async runPeriodic(): Promise<void> {
    const { pool, log } = this.opts;
    const jobs = new Map(this.opts.periodic.map((j) => [j.name, j]));
    const leaseMs = this.opts.periodicLeaseMs ?? PERIODIC_LEASE_MS;
    let tick = 0;
    while (!this.stop.signal.aborted) {
      try {
        if (tick++ % 10 === 0) {
          await pool.query('UPDATE processes SET heartbeat_at = now() WHERE id = $1', [this.id]);
          await pool.query(`DELETE FROM processes WHERE heartbeat_at < now() - interval '5 minutes'`);
        }
        for (;;) {
          const r = await pool.query<{ name: string }>(
            `UPDATE periodic_jobs SET locked_until = now() + $3::bigint * interval '1 millisecond', locked_by = $1
             WHERE name = (SELECT name FROM periodic_jobs WHERE name = ANY($2::text[]) AND next_run_at <= now()
                             AND (locked_until IS NULL OR locked_until < now())
                           ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING name`, [this.id, [...jobs.keys()], leaseMs]);
          const name = r.rows[0]?.name;
          if (!name) break;
          // A short lease, extended while the job runs: if this process dies mid-run, another worker
          // takes the job over within one lease instead of the job stopping for a long one.
          const extend = setInterval(() => {
            pool.query(`UPDATE periodic_jobs SET locked_until = now() + $3::bigint * interval '1 millisecond' WHERE name = $1 AND locked_by = $2`,
              [name, this.id, leaseMs]).catch((e: Error) => log.warn({ job: name, err: causeOf(e) }, 'could not extend a periodic job lease'));
          }, leaseMs / 3);
          let error: string | null = null;
          try {
            await jobs.get(name)!.run();
          } catch (e) {
            error = causeOf(e as Error);
            log.error({ job: name, err: error }, 'periodic job failed');
          } finally {
            clearInterval(extend);
          }
          await pool.query(
            `UPDATE periodic_jobs SET next_run_at = now() + interval_ms * interval '1 millisecond', locked_until = NULL, locked_by = NULL,
               runs = runs + 1, last_run_at = now(), last_error = $2 WHERE name = $1`, [name, error]);
        }
      } catch (e) {
        log.error({ err: causeOf(e as Error) }, 'scheduler failed');
      }
      await sleep(1_000, undefined, { signal: this.stop.signal }).catch(() => undefined);
    }
  }

  /** Stops claiming, lets in-flight batches finish, and releases the listener. */
  async shutdown(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled(this.running);
    await this.listener?.end().catch(() => undefined);
    await this.opts.pool.query('DELETE FROM processes WHERE id = $1', [this.id]).catch(() => undefined);
    this.opts.log.info({ worker: this.id }, 'worker stopped');
  }
}
