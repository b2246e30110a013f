// Starts one PostgreSQL for the db test project (embedded, or DATABASE_URL's server), migrates a
// template database, and hands its coordinates to the test files, which each clone their own.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/kernel/embedded-postgres.ts';
import { listMigrations, migrate } from '../src/kernel/migrate.ts';
import { createHash } from 'node:crypto';

declare module 'vitest' {
  export interface ProvidedContext {
    pg: { adminUrl: string; template: string };
  }
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export default async function setup(project: TestProject) {
  let embedded: EmbeddedPostgres | undefined;
  let dir: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dir = await mkdtemp(join(tmpdir(), 'seigo-test-'));
    // mkdtemp makes it 0700; PostgreSQL's unprivileged user (when we run as root) must reach it.
    await chmod(dir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: dir, port: 55000 + (process.pid % 4000) });
    adminUrl = embedded.url;
  }
  const hash = createHash('sha256').update(listMigrations().map((m) => m.checksum).join()).digest('hex').slice(0, 10);
  const template = `seigo_template_${hash}_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${template}`);
  await admin.query(`CREATE DATABASE ${template}`);
  const pool = new pg.Pool({ connectionString: withDatabase(adminUrl, template), max: 1 });
  await migrate(pool);
  await pool.end();
  project.provide('pg', { adminUrl, template });

  return async () => {
    // Drop what the test files left behind (they drop their own; a crashed file may not have).
    const left = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname = $2`, [`seigo_t_%_${process.pid}`, template]);
    for (const { datname } of left.rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    if (embedded) await embedded.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  };
}
