// Rewrites docs/schema.sql from a freshly migrated database (`npm run schema:dump`); with --check, only
// says whether the file is current. Uses DATABASE_URL's server (it must allow CREATE DATABASE), else an
// embedded PostgreSQL in a temporary directory.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/kernel/embedded-postgres.ts';
import { migrate } from '../src/kernel/migrate.ts';
import { dumpSchema } from '../src/kernel/schema-dump.ts';

export const SCHEMA_FILE = join(import.meta.dirname, '..', 'docs', 'schema.sql');

const check = process.argv.includes('--check');
let embedded: EmbeddedPostgres | undefined;
let dir: string | undefined;
let adminUrl = process.env.DATABASE_URL;
try {
  if (!adminUrl) {
    dir = await mkdtemp(join(tmpdir(), 'seigo-schema-'));
    await chmod(dir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: dir, port: 56000 + (process.pid % 3000) });
    adminUrl = embedded.url;
  }
  const name = `seigo_schema_${process.pid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 1 });
  pool.on('error', () => undefined); // the DROP … WITH (FORCE) below ends its idle connection
  let text: string;
  try {
    await migrate(pool);
    text = await dumpSchema(pool);
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
  if (check) {
    const current = await readFile(SCHEMA_FILE, 'utf8').catch(() => '');
    if (current !== text) {
      console.error('docs/schema.sql is out of date: run `npm run schema:dump`');
      process.exitCode = 1;
    } else console.log('docs/schema.sql is current');
  } else {
    await writeFile(SCHEMA_FILE, text);
    console.log(`wrote ${SCHEMA_FILE} (${text.split('\n').length} lines)`);
  }
} finally {
  if (embedded) await embedded.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}
