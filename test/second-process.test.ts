// A second seigo process meets a running `seigo start`: commands run beside it use its database and
// simulated providers, a second start leaves before touching anything, a command that reads never creates a
// cluster, `seigo db stop` refuses while the engine uses the database, and an engine whose database is gone exits.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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
  const d = await mkdtemp(join(tmpdir(), 'seigo-second-'));
  await chmod(d, 0o755); // PostgreSQL's unprivileged user (when tests run as root) must reach it
  dirs.push(d);
  return d;
}

interface Ran { code: number; stdout: string; stderr: string }

function seigo(cwd: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, SEIGO_LOG_LEVEL: 'warn', ...env }, timeout: 90_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

const problemIn = (stderr: string) => JSON.parse(stderr.trim().split('\n').at(-1)!) as { code: string; detail: string; status: number };

describe('a second process meets a running engine', () => {
  let dir: string;
  let port: number;
  let engine: ChildProcess;
  let engineErr = '';
  let exited: Promise<number | null>;

  beforeAll(async () => {
    dir = await tempDir();
    port = await freePort();
    engine = spawn(process.execPath, [BIN, 'start'], { cwd: dir, env: { ...process.env, SEIGO_PORT: String(port), SEIGO_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    // Its log lines (stdout) and anything it prints on stderr.
    for (const s of [engine.stdout, engine.stderr]) s?.on('data', (d: Buffer) => { engineErr += d.toString(); });
    exited = new Promise((resolve) => engine.once('exit', (code) => resolve(code)));
    for (let i = 0; ; i++) {
      if (engine.exitCode !== null) throw new Error(`seigo exited: ${engineErr}`);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
      const runtime = await readFile(join(dir, '.seigo', 'runtime.json'), 'utf8').catch(() => '');
      if (ready && runtime.includes('databaseUrl')) break;
      if (i > 1200) throw new Error(`seigo did not become ready: ${engineErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    if (engine.exitCode === null) {
      engine.kill('SIGTERM');
      await exited;
    }
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a second start says seigo already runs here and leaves the first alone', async () => {
    const r = await seigo(dir, ['start'], { SEIGO_PORT: String(await freePort()) });
    expect(r.code).toBe(1);
    expect(problemIn(r.stderr).detail).toContain(`seigo already runs here (pid ${engine.pid}, port ${port})`);
    expect(JSON.parse(await readFile(join(dir, '.seigo', 'runtime.json'), 'utf8'))).toMatchObject({ pid: engine.pid });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });

  it('the README reconcile example runs against the engine\'s simulated KOMOJU', async () => {
    const r = await seigo(dir, ['reconcile', '--provider', 'komoju', '--from', '2026-11-22T00:00:00Z', '--to', '2026-11-23T00:00:00Z', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ scope: 'provider:komoju', status: 'succeeded' });
  });

  it('a reading command elsewhere creates no cluster and says where it looked', async () => {
    const elsewhere = await tempDir();
    const r = await seigo(elsewhere, ['cases', 'list']);
    expect(r.code).toBe(1);
    const p = problemIn(r.stderr);
    expect(p.code).toBe('no_database');
    expect(p.detail).toContain(join(elsewhere, '.seigo'));
    expect(p.detail).toContain('SEIGO_DATA_DIR');
    expect(await readdir(elsewhere)).toEqual([]);
  });

  it('the small things: empty lists say so, an unknown subscription is named, usage errors show the command\'s help', async () => {
    expect((await seigo(dir, ['cases', 'list'])).stdout).toContain('no cases with status open or investigating');
    const nope = await seigo(dir, ['redrive', '--subscription', 'nope']);
    expect(nope.code).toBe(1);
    expect(problemIn(nope.stderr)).toMatchObject({ code: 'subscription_not_found', detail: expect.stringContaining('"nope" does not exist') as unknown });
    const usage = await seigo(dir, ['redrive']);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toContain('Usage: seigo redrive');
    expect(usage.stderr).toContain('--subscription <name>');
    const help = await seigo(dir, ['start', '--help']);
    for (const o of ['--port <n>', '--config <path>', '--data-dir <dir>']) expect(help.stdout).toContain(o);
  });

  it('db stop refuses while the engine uses the database; an engine whose database goes away exits', async () => {
    const r = await seigo(dir, ['db', 'stop']);
    expect(r.code).toBe(1);
    expect(problemIn(r.stderr)).toMatchObject({ code: 'database_in_use', status: 409 });
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    // Pull the database out from under it, as a `pg_ctl stop` by hand would.
    const postmaster = Number((await readFile(join(dir, '.seigo', 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
    process.kill(postmaster, 'SIGINT');
    expect(await exited).toBe(1);
    expect(engineErr).toContain('the embedded PostgreSQL stopped under this process');
    await expect(readFile(join(dir, '.seigo', 'runtime.json'))).rejects.toThrow();
  });
});
