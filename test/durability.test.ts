// "Acknowledged" means durable: kill -9 seigo and its PostgreSQL right after the 200s, start
// again, and every acknowledged notification is there. Both modes: embedded, and DATABASE_URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/kernel/embedded-postgres.ts';
import { sendWebhook } from './helpers/webhooks.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BIN = join(import.meta.dirname, '..', 'bin', 'seigo.js');
const dirs: string[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as { port: number };
      s.close(() => resolve(a.port));
    });
  });
}

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'seigo-durability-'));
  await chmod(d, 0o755);
  dirs.push(d);
  return d;
}

function startSeigo(cmd: 'start' | 'api', env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [BIN, cmd], { env: { ...process.env, SEIGO_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
}

async function waitReady(base: string, child: ChildProcess): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`seigo exited (${child.exitCode}): ${stderr}`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`seigo did not become ready: ${stderr}`);
}

async function postmasterPid(pgData: string): Promise<number> {
  return Number((await readFile(join(pgData, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

function killNow(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

async function sendMany(base: string, provider: string, n: number): Promise<string[]> {
  const acked: string[] = [];
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = w; i < n; i += 8) {
      const r = await sendWebhook(base, { provider, id: `evt_durable_${i}`, secret: SECRET, data: { id: `pay_${i}` } });
      if (r.status === 200) acked.push(String(r.json.id));
    }
  }));
  return acked;
}

async function countStored(url: string, ids: string[]): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const r = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM inbox WHERE id = ANY($1::uuid[])', [ids]);
  await c.end();
  return r.rows[0]!.n;
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('kill -9 right after the acknowledgement loses nothing', () => {
  it('embedded mode: seigo start and its PostgreSQL both SIGKILLed', async () => {
    const dataDir = await tempDir();
    const config = join(dataDir, 'seigo.config.json');
    await writeFile(config, JSON.stringify({ providers: { acme: { kind: 'standard-webhooks', secrets: [SECRET] } } }));
    const port = await freePort();
    const env = { SEIGO_DATA_DIR: dataDir, SEIGO_PORT: String(port), SEIGO_CONFIG: config };
    const base = `http://127.0.0.1:${port}`;
    const first = startSeigo('start', env);
    await waitReady(base, first);
    const state = JSON.parse(await readFile(join(dataDir, 'embedded.json'), 'utf8')) as { pgData?: string };
    const pgData = state.pgData ?? join(dataDir, 'pg');
    const pgPid = await postmasterPid(pgData);

    const acked = await sendMany(base, 'acme', 200);
    killNow(first.pid!);
    killNow(pgPid);
    expect(acked).toHaveLength(200);

    const second = startSeigo('start', env);
    try {
      await waitReady(base, second);
      const url = JSON.parse(await readFile(join(dataDir, 'embedded.json'), 'utf8')) as { port: number };
      expect(await countStored(`postgres://seigo@127.0.0.1:${url.port}/seigo`, acked)).toBe(200);
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  }, 180_000);

  it('server mode (DATABASE_URL): seigo api and the PostgreSQL server both SIGKILLed', async () => {
    const pgDir = await tempDir();
    const server = await startEmbeddedPostgres({ dataDir: pgDir, port: await freePort() });
    const config = join(pgDir, 'seigo.config.json');
    await writeFile(config, JSON.stringify({ providers: { acme: { kind: 'standard-webhooks', secrets: [SECRET] } } }));
    const migrate = spawn(process.execPath, [BIN, 'migrate'], { env: { ...process.env, DATABASE_URL: server.url, SEIGO_CONFIG: config }, stdio: 'ignore' });
    expect(await new Promise((r) => migrate.once('exit', r))).toBe(0);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const api = startSeigo('api', { DATABASE_URL: server.url, SEIGO_PORT: String(port), SEIGO_CONFIG: config });
    await waitReady(base, api);
    const pgPid = await postmasterPid(server.pgData);

    const acked = await sendMany(base, 'acme', 200);
    killNow(api.pid!);
    killNow(pgPid);
    expect(acked).toHaveLength(200);

    const again = await startEmbeddedPostgres({ dataDir: pgDir, port: server.port });
    try {
      expect(await countStored(again.url, acked)).toBe(200);
    } finally {
      await again.stop();
    }
  }, 180_000);
});
