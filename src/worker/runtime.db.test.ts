import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { eventually } from '../../test/helpers/engine.ts';
import { WorkerRuntime } from './runtime.ts';

let t: TestDatabase;
beforeAll(async () => { t = await createTestDatabase(); });
afterAll(async () => { await t.drop(); });

describe('worker runtime', () => {
  it('runs each due periodic job once across many workers, and records the run', async () => {
    let runs = 0;
    const dbs = Array.from({ length: 4 }, () => createDb(t.url, { max: 3 }));
    const workers = dbs.map((db) => new WorkerRuntime({
      pool: db.pool, databaseUrl: t.url, log: silentLogger, role: 'test', pollIntervalMs: 100, loops: [],
      periodic: [{ name: 'test.tick', intervalMs: 3_600_000, run: async () => { runs++; await new Promise((r) => setTimeout(r, 200)); } }],
    }));
    await Promise.all(workers.map((w) => w.start()));
    await eventually(async () => {
      const r = await t.db.pool.query(`SELECT runs FROM periodic_jobs WHERE name = 'test.tick'`);
      return Number(r.rows[0]?.runs) === 1;
    });
    // Every worker has had several scheduler ticks by now; the job is due again only in an hour.
    await new Promise((r) => setTimeout(r, 2_500));
    await Promise.all(workers.map((w) => w.shutdown()));
    await Promise.all(dbs.map((db) => db.close()));
    expect(runs).toBe(1);
    const row = await t.db.pool.query(`SELECT runs, last_error, locked_until, next_run_at > now() + interval '50 minutes' AS later FROM periodic_jobs WHERE name = 'test.tick'`);
    expect(row.rows[0]).toEqual({ runs: '1', last_error: null, locked_until: null, later: true });
  });

  it('keeps a long-running periodic job claimed past its lease, so it never runs twice at once', async () => {
    let running = 0;
    let overlapped = false;
    let runs = 0;
    const pool = t.db.pool;
    // The job runs until its first claim has lapsed a second ago and the claim was extended past it:
    // a condition on the database, not a race between a fixed job length and a short lease. Three
    // other workers poll every 100 ms meanwhile; any lapse would let one of them run it again.
    const outlivedFirstClaim = async () => {
      const { rows: [first] } = await pool.query<{ locked_until: Date }>(`SELECT locked_until FROM periodic_jobs WHERE name = 'test.long'`);
      await eventually(async () => (await pool.query<{ outlived: boolean }>(
        `SELECT now() > $1::timestamptz + interval '1 second' AND locked_until > $1 AS outlived FROM periodic_jobs WHERE name = 'test.long'`,
        [first!.locked_until])).rows[0]?.outlived, 60_000, 100);
    };
    const dbs = Array.from({ length: 3 }, () => createDb(t.url, { max: 3 }));
    const workers = dbs.map((db) => new WorkerRuntime({
      pool: db.pool, databaseUrl: t.url, log: silentLogger, role: 'test', pollIntervalMs: 100, loops: [], periodicLeaseMs: 3_000,
      periodic: [{
        name: 'test.long', intervalMs: 3_600_000,
        run: async () => { runs++; if (++running > 1) overlapped = true; await outlivedFirstClaim(); running--; },
      }],
    }));
    await Promise.all(workers.map((w) => w.start()));
    await eventually(async () => {
      const r = await pool.query(`SELECT runs FROM periodic_jobs WHERE name = 'test.long'`);
      return Number(r.rows[0]?.runs) === 1;
    }, 90_000);
    await Promise.all(workers.map((w) => w.shutdown()));
    await Promise.all(dbs.map((db) => db.close()));
    expect(overlapped).toBe(false);
    expect(runs).toBe(1);
  });

  it('takes over a periodic job whose worker died mid-run once its short lease lapses', async () => {
    // The claim a SIGKILLed worker leaves behind: due, locked by a process that will never extend it.
    await t.db.pool.query(
      `INSERT INTO periodic_jobs (name, interval_ms, next_run_at, locked_until, locked_by) VALUES ('test.orphaned', 3600000, now(), now() + interval '1 second', 'dead-worker')`);
    let runs = 0;
    const w = new WorkerRuntime({
      pool: t.db.pool, databaseUrl: t.url, log: silentLogger, role: 'test', pollIntervalMs: 100, loops: [],
      periodic: [{ name: 'test.orphaned', intervalMs: 3_600_000, run: async () => { runs++; } }],
    });
    await w.start();
    await eventually(async () => runs === 1);
    await w.shutdown();
    const row = await t.db.pool.query(`SELECT runs, locked_by FROM periodic_jobs WHERE name = 'test.orphaned'`);
    expect(row.rows[0]).toEqual({ runs: '1', locked_by: null });
  });

  it('registers live processes and removes them on a graceful stop', async () => {
    const w = new WorkerRuntime({ pool: t.db.pool, databaseUrl: t.url, log: silentLogger, role: 'worker', pollIntervalMs: 100, loops: [], periodic: [] });
    await w.start();
    const live = await t.db.pool.query('SELECT role FROM processes WHERE id = $1', [w.id]);
    expect(live.rows).toEqual([{ role: 'worker' }]);
    await w.shutdown();
    const gone = await t.db.pool.query('SELECT 1 FROM processes WHERE id = $1', [w.id]);
    expect(gone.rows).toHaveLength(0);
  });

  it('wakes a loop on NOTIFY well before its poll interval', async () => {
    let calls = 0;
    let resolveWoken!: () => void;
    const woken = new Promise<void>((r) => { resolveWoken = r; });
    const w = new WorkerRuntime({
      pool: t.db.pool, databaseUrl: t.url, log: silentLogger, role: 'worker', pollIntervalMs: 3_600_000, periodic: [],
      loops: [{ name: 'probe', channel: 'inbox', runOnce: async () => { calls++; if (calls === 2) resolveWoken(); return 0; } }],
    });
    await w.start();
    await eventually(async () => calls >= 1);
    await t.db.pool.query(`SELECT pg_notify('seigo_work', 'inbox')`);
    // With an hour-long poll interval, only the notification can make the loop run a second time.
    await woken;
    await w.shutdown();
    expect(calls).toBeGreaterThanOrEqual(2);
  });
});
