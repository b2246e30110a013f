// Each test file gets its own database, cloned from the migrated template: fast and independent.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createDb, type Db, type DbOptions } from '../../src/kernel/db.ts';

export interface TestDatabase { url: string; db: Db; drop(): Promise<void> }

export function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function createTestDatabase(opts: DbOptions = {}): Promise<TestDatabase> {
  const { adminUrl, template } = inject('pg');
  const ppid = template.split('_').pop();
  const name = `seigo_t_${randomBytes(5).toString('hex')}_${ppid}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(adminUrl, name);
  const db = createDb(url, { max: 10, ...opts });
  return {
    url,
    db,
    async drop() {
      await db.close();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await a.end();
    },
  };
}
