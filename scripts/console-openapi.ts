// Rewrites console/openapi.json, the engine's OpenAPI document that the console's types are generated
// from (`npm run console:openapi`); with --check, only says whether the file is current. No database
// is touched: the routes are registered and the document read, nothing is queried.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer } from '../src/api/server.ts';
import { createEngine } from '../src/engine/index.ts';
import { parseConfig } from '../src/kernel/config.ts';
import { createDb } from '../src/kernel/db.ts';
import { silentLogger } from '../src/kernel/logger.ts';

export const OPENAPI_FILE = join(import.meta.dirname, '..', 'console', 'openapi.json');

const db = createDb('postgres://unused@127.0.0.1:1/unused', { max: 1 });
const engine = createEngine({ config: parseConfig({}), db, log: silentLogger });
const app = await createServer(engine);
const res = await app.inject({ method: 'GET', url: '/openapi.json' });
const text = `${JSON.stringify(res.json(), null, 2)}\n`;
await app.close();
await engine.close();
await db.close();
if (process.argv.includes('--check')) {
  const current = await readFile(OPENAPI_FILE, 'utf8').catch(() => '');
  if (current !== text) {
    console.error('console/openapi.json is out of date: run npm run console:openapi');
    process.exit(1);
  }
} else {
  await writeFile(OPENAPI_FILE, text);
  console.log(`wrote ${OPENAPI_FILE}`);
}
