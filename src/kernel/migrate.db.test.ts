// The migration runner and the checked-in schema: docs/schema.sql is what the migrations make, a
// changed migration is refused, concurrent migrators apply each migration once, and every migration
// applies on top of the one before while the database holds data.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { databaseUrl, createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { listMigrations, migrate, MIGRATIONS_DIR } from './migrate.ts';
import { dumpSchema } from './schema-dump.ts';

const SCHEMA_FILE = join(import.meta.dirname, '..', '..', 'docs', 'schema.sql');

/** An empty database of its own (not the migrated template), dropped at the end. */
async function emptyDatabase(): Promise<{ pool: pg.Pool; url: string; drop(): Promise<void> }> {
  const { adminUrl } = inject('pg');
  const name = `seigo_m_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = databaseUrl(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  return {
    pool, url,
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await a.end();
    },
  };
}

/** A directory holding copies of the first `count` migrations. */
async function migrationsDir(count: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'seigo-migrations-'));
  for (const m of listMigrations().slice(0, count)) await copyFile(join(MIGRATIONS_DIR, m.name), join(dir, m.name));
  return dir;
}

describe('the schema', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase(); });
  afterAll(async () => { await t.drop(); });

  it('is what docs/schema.sql says (run `npm run schema:dump` after adding a migration)', async () => {
    const dumped = await dumpSchema(t.db.pool);
    const file = await readFile(SCHEMA_FILE, 'utf8');
    expect(dumped === file, 'docs/schema.sql is out of date: run `npm run schema:dump`').toBe(true);
  });
});

describe('migrations', () => {
  it('refuses a migration changed after it was applied, and applies nothing more', async () => {
    const db = await emptyDatabase();
    const dir = await migrationsDir(3);
    try {
      await migrate(db.pool, dir);
      const first = listMigrations(dir)[0]!;
      await writeFile(join(dir, first.name), `${first.sql}\n-- edited after it was applied\n`);
      await copyFile(join(MIGRATIONS_DIR, listMigrations()[3]!.name), join(dir, listMigrations()[3]!.name));
      await expect(migrate(db.pool, dir)).rejects.toMatchObject({ code: 'migration_changed' });
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM seigo_migrations');
      expect(rows[0]!.n).toBe(3);
    } finally {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('applies each migration once when several processes migrate at once', async () => {
    const db = await emptyDatabase();
    const others = [new pg.Pool({ connectionString: db.url, max: 1 }), new pg.Pool({ connectionString: db.url, max: 1 })];
    try {
      const results = await Promise.all([db.pool, ...others].map((p) => migrate(p)));
      const applied = results.flatMap((r) => r.applied);
      expect(applied.sort()).toEqual(listMigrations().map((m) => m.name).sort());
      const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM seigo_migrations');
      expect(rows[0]!.n).toBe(listMigrations().length);
    } finally {
      await Promise.all(others.map((p) => p.end()));
      await db.drop();
    }
  });

  it('applies every migration on top of the one before while the tables hold data, which survives', async () => {
    const db = await emptyDatabase();
    const all = listMigrations();
    // Rows written as soon as their table exists, in that version's shape; later migrations must keep them.
    const seeds = new Map<string, string>([
      ['0002_inbox.sql', `INSERT INTO inbox (id, provider, event_id, body) VALUES ('0190b6a0-0000-7000-8000-000000000001', 'acme', 'evt_1', '\\x7b7d')`],
      ['0003_outbox.sql', `INSERT INTO outbox_messages (id, topic, payload) VALUES ('0190b6a0-0000-7000-8000-000000000002', 'payment.succeeded', '{"amount": 1}')`],
      ['0007_ledger_post_function.sql', `
        INSERT INTO ledger_accounts (id, kind, owner) VALUES
          ('0190b6a0-0000-7000-8000-0000000000a1', 'clearing', 'acme'), ('0190b6a0-0000-7000-8000-0000000000a2', 'wallet', 'u1');
        INSERT INTO ledger_balances (account_id, shard, currency) SELECT id, 0, 'JPY' FROM ledger_accounts;
        SELECT * FROM seigo_ledger_post('0190b6a0-0000-7000-8000-0000000000b1', 'seed-1', 'posting', 'seed', '{}', NULL,
          ARRAY['0190b6a0-0000-7000-8000-0000000000a1', '0190b6a0-0000-7000-8000-0000000000a2']::uuid[], ARRAY[-500, 500]::bigint[], 1000000, true)`],
    ]);
    try {
      for (let i = 1; i <= all.length; i++) {
        const dir = await migrationsDir(i);
        try {
          const { applied } = await migrate(db.pool, dir);
          expect(applied).toEqual([all[i - 1]!.name]);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
        const seed = seeds.get(all[i - 1]!.name);
        if (seed) await db.pool.query(seed);
      }
      const counts = await db.pool.query<{ inbox: number; outbox: number; entries: number }>(`
        SELECT (SELECT count(*)::int FROM inbox) AS inbox, (SELECT count(*)::int FROM outbox_messages) AS outbox,
               (SELECT count(*)::int FROM ledger_entries) AS entries`);
      expect(counts.rows[0]).toEqual({ inbox: 1, outbox: 1, entries: 2 });
      const balance = await db.pool.query<{ posted: string }>(
        `SELECT posted::text FROM ledger_account_balances WHERE account_id = '0190b6a0-0000-7000-8000-0000000000a2'`);
      expect(balance.rows[0]?.posted).toBe('500');
      expect(await dumpSchema(db.pool)).toBe(await readFile(SCHEMA_FILE, 'utf8'));
    } finally {
      await db.drop();
    }
  });
});
