// Real-process tests of the embedded PostgreSQL supervisor: restarts, kill -9, orphans, taken ports, running as root.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ensureBinariesRunnable, loadBinaries, resolveRunAsUser, startEmbeddedPostgres, stopEmbeddedPostgres,
} from './embedded-postgres.ts';
import type { EmbeddedPostgres, EmbeddedPostgresOptions, RunAs } from './embedded-postgres.ts';

const isRoot = process.getuid?.() === 0;
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/embedded-postgres-child.ts', import.meta.url));
const slow = { timeout: 120_000 };

// Everything a test starts is cleaned up here, even when the test failed half way.
const handles: EmbeddedPostgres[] = [];
const dataDirs: string[] = [];
const children: ChildProcess[] = [];
const removeAfter: string[] = [];

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const handle of handles) await handle.stop().catch(() => {});
  for (const dir of dataDirs) await stopEmbeddedPostgres(dir).catch(() => {});
  for (const dir of removeAfter) await fs.rm(dir, { recursive: true, force: true });
}, 120_000);

function collectingLog() {
  const lines: string[] = [];
  return {
    lines,
    info: (msg: string) => { lines.push(`info: ${msg}`); },
    warn: (msg: string) => { lines.push(`warn: ${msg}`); },
    text: () => lines.join('\n'),
  };
}

async function tempDataDir(name: string): Promise<string> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), `seigo-ep-${name}-`));
  removeAfter.push(base);
  await fs.chmod(base, 0o755); // mkdtemp makes it 700; only the relocation test wants a closed parent
  const dataDir = path.join(base, 'data');
  dataDirs.push(dataDir);
  return dataDir;
}

async function start(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const handle = await startEmbeddedPostgres(opts);
  handles.push(handle);
  return handle;
}

async function sql<T extends object>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

function postmasterPid(pgData: string): number | undefined {
  const file = path.join(pgData, 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : undefined;
}

/** Alive and not a zombie (PID 1 here may never reap an orphan's corpse). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function processUid(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

function readOwnerFile(dataDir: string): { port?: number; pgData?: string; owner?: { pid: number } } {
  return JSON.parse(readFileSync(path.join(dataDir, 'embedded.json'), 'utf8')) as {
    port?: number; pgData?: string; owner?: { pid: number };
  };
}

interface ChildInfo { url: string; port: number; pgData: string; pid: number }

/** Starts the supervisor in a separate Node process (the fixture) and waits for its ready line. */
function startChild(dataDir: string, port: number, as?: RunAs): Promise<{ child: ChildProcess; info: ChildInfo }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dataDir, String(port)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(as ? { uid: as.uid, gid: as.gid } : {}),
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line) resolve({ child, info: JSON.parse(line) as ChildInfo });
    });
    child.once('exit', (code, signal) => reject(new Error(`fixture exited (${signal ?? code}): ${stderr}`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('embedded PostgreSQL supervisor', () => {
  it('creates the cluster on first start and reuses it on the next', slow, async () => {
    const dataDir = await tempDataDir('fresh');
    const log1 = collectingLog();
    const first = await start({ dataDir, port: 55410, log: log1 });

    expect(first.url).toBe(`postgres://seigo@127.0.0.1:${first.port}/seigo`);
    expect(first.pgData).toBe(path.join(dataDir, 'pg'));
    expect(log1.text()).toContain('creating PostgreSQL cluster');
    const [settings] = await sql<{ db: string; fsync: string; sc: string; listen: string }>(first.url,
      `select current_database() as db, current_setting('fsync') as fsync,
              current_setting('synchronous_commit') as sc, current_setting('listen_addresses') as listen`);
    expect(settings).toEqual({ db: 'seigo', fsync: 'on', sc: 'on', listen: '127.0.0.1' });
    const [before] = await sql<{ id: string }>(first.url, 'select system_identifier::text as id from pg_control_system()');
    await sql(first.url, 'create table kept (v text)');
    await sql(first.url, `insert into kept values ('before restart')`);

    await first.stop();
    expect(postmasterPid(first.pgData)).toBeUndefined();
    expect(readOwnerFile(dataDir).owner).toBeUndefined();

    const log2 = collectingLog();
    const second = await start({ dataDir, port: 55410, log: log2 });
    expect(log2.text()).not.toContain('creating PostgreSQL cluster');
    const [after] = await sql<{ id: string }>(second.url, 'select system_identifier::text as id from pg_control_system()');
    expect(after?.id).toBe(before?.id); // same cluster, not a new initdb
    expect(await sql(second.url, 'select v from kept')).toEqual([{ v: 'before restart' }]);
    await second.stop();
  });

  it('starts again after the postmaster was killed with SIGKILL, keeping committed rows', slow, async () => {
    const dataDir = await tempDataDir('stale');
    const first = await start({ dataDir, port: 55420, log: collectingLog() });
    await sql(first.url, 'create table acked (v text)');
    await sql(first.url, `insert into acked values ('committed before kill -9')`);

    const pid1 = postmasterPid(first.pgData);
    expect(pid1).toBeDefined();
    process.kill(pid1!, 'SIGKILL');
    await until(() => !isAlive(pid1!));
    expect(postmasterPid(first.pgData)).toBe(pid1); // the pid file is left behind

    const log2 = collectingLog();
    const second = await start({ dataDir, port: 55420, log: log2 });
    expect(log2.text()).toContain('stale');
    expect(await sql(second.url, 'select v from acked')).toEqual([{ v: 'committed before kill -9' }]);

    // Same again, but the dead postmaster's pid now belongs to an unrelated live process.
    const pid2 = postmasterPid(second.pgData)!;
    process.kill(pid2, 'SIGKILL');
    await until(() => !isAlive(pid2));
    // It runs as the cluster's owner: PostgreSQL itself disregards a pid it may not signal (EPERM).
    const owner = await fs.stat(second.pgData);
    const impostor = spawn('sleep', ['300'], { stdio: 'ignore', ...(isRoot ? { uid: owner.uid, gid: owner.gid } : {}) });
    children.push(impostor);
    // Both lock files the dead server left (its pid file and its unix socket's) now name the impostor.
    for (const lockFile of [path.join(second.pgData, 'postmaster.pid'), path.join(second.pgData, `.s.PGSQL.${second.port}.lock`)]) {
      const lines = readFileSync(lockFile, 'utf8').split('\n');
      lines[0] = String(impostor.pid);
      await fs.writeFile(lockFile, lines.join('\n'));
    }

    const third = await start({ dataDir, port: 55420, log: collectingLog() });
    expect(third.port).toBe(second.port);
    expect(await sql(third.url, 'select v from acked')).toEqual([{ v: 'committed before kill -9' }]);
    expect(isAlive(impostor.pid!)).toBe(true); // an unrelated process is never signalled
    impostor.kill('SIGKILL');
    await third.stop();
  });

  it('adopts a server orphaned by a SIGKILLed Node parent, then stops it on stop()', slow, async () => {
    const dataDir = await tempDataDir('orphan');
    const { child, info } = await startChild(dataDir, 55430);
    await sql(info.url, 'create table t (v text)');
    await sql(info.url, `insert into t values ('written by the dead parent')`);
    const orphanPid = postmasterPid(info.pgData)!;

    child.kill('SIGKILL');
    await exitOf(child);
    expect(isAlive(orphanPid)).toBe(true); // the orphan outlives its parent

    const log = collectingLog();
    const adopted = await start({ dataDir, port: 55430, log });
    expect(log.text()).toContain('adopting');
    expect(adopted.port).toBe(info.port);
    expect(postmasterPid(adopted.pgData)).toBe(orphanPid); // adopted, not restarted
    expect(await sql(adopted.url, 'select v from t')).toEqual([{ v: 'written by the dead parent' }]);
    expect(readOwnerFile(dataDir).owner?.pid).toBe(process.pid);

    await adopted.stop();
    await until(() => !isAlive(orphanPid));
    expect(postmasterPid(adopted.pgData)).toBeUndefined();
  });

  it('stops an orphan that no longer answers and starts a fresh server on the same data', slow, async () => {
    const dataDir = await tempDataDir('hung');
    const { child, info } = await startChild(dataDir, 55440);
    await sql(info.url, 'create table t (v text)');
    await sql(info.url, `insert into t values ('survives a hung orphan')`);
    const orphanPid = postmasterPid(info.pgData)!;
    child.kill('SIGKILL');
    await exitOf(child);
    process.kill(orphanPid, 'SIGSTOP'); // frozen: accepts TCP connections in the kernel, never answers

    const log = collectingLog();
    const fresh = await start({ dataDir, port: 55440, log });
    expect(log.text()).toContain('does not answer');
    expect(isAlive(orphanPid)).toBe(false);
    expect(postmasterPid(fresh.pgData)).not.toBe(orphanPid);
    expect(await sql(fresh.url, 'select v from t')).toEqual([{ v: 'survives a hung orphan' }]);
    await fresh.stop();
  });

  it('shares a server owned by another live seigo process without stealing it', slow, async () => {
    const dataDir = await tempDataDir('shared');
    const { child, info } = await startChild(dataDir, 55450);
    const ownerPostmaster = postmasterPid(info.pgData);

    const log = collectingLog();
    const guest = await start({ dataDir, port: 55450, log });
    expect(log.text()).toContain('owned by another seigo process');
    expect(guest.url).toBe(info.url);
    expect(postmasterPid(guest.pgData)).toBe(ownerPostmaster);
    await sql(guest.url, 'create table shared (v text)');
    await sql(guest.url, `insert into shared values ('from the guest')`);
    expect(await sql(info.url, 'select v from shared')).toEqual([{ v: 'from the guest' }]);
    expect(readOwnerFile(dataDir).owner?.pid).toBe(info.pid);

    await guest.stop(); // the guest leaves the owner's server running
    expect(await sql(info.url, 'select v from shared')).toEqual([{ v: 'from the guest' }]);

    child.kill('SIGTERM'); // the owner stops it
    expect(await exitOf(child)).toBe(0);
    expect(postmasterPid(info.pgData)).toBeUndefined();
    expect(readOwnerFile(dataDir).owner).toBeUndefined();
  });

  it('picks a free port when the preferred one is taken, logs it and keeps it on the next start', slow, async () => {
    const dataDir = await tempDataDir('port');
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(55460, '127.0.0.1', resolve));
    try {
      const log = collectingLog();
      const first = await start({ dataDir, port: 55460, log });
      expect(first.port).not.toBe(55460);
      expect(log.lines.some((l) => l.startsWith('warn:') && l.includes('55460') && l.includes(String(first.port)))).toBe(true);
      expect(readOwnerFile(dataDir).port).toBe(first.port);
      expect(await sql(first.url, 'select 1 as one')).toEqual([{ one: 1 }]);
      await first.stop();

      const second = await start({ dataDir, port: 55460, log: collectingLog() });
      expect(second.port).toBe(first.port); // remembered, so the URL stays the same
      await second.stop();
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it('puts the unix socket in a short directory when the data path is too long for one', slow, async () => {
    const dataDir = path.join(await tempDataDir('long'), 'a-rather-long-directory-name-'.repeat(3), 'data');
    dataDirs.push(dataDir);
    const server = await start({ dataDir, port: 55500, log: collectingLog() });
    expect(Buffer.byteLength(path.join(server.pgData, `.s.PGSQL.${server.port}`))).toBeGreaterThan(107);
    const [row] = await sql<{ dir: string }>(server.url, `select current_setting('unix_socket_directories') as dir`);
    expect(row?.dir).toMatch(/^\/tmp\/seigo-[0-9a-f]{12}$/);
    removeAfter.push(row!.dir);
    expect(existsSync(path.join(row!.dir, `.s.PGSQL.${server.port}`))).toBe(true);
    await server.stop();
  });

  it('stopEmbeddedPostgres stops a running server from another process (for `seigo db stop`)', slow, async () => {
    const dataDir = await tempDataDir('cli-stop');
    const { child, info } = await startChild(dataDir, 55470);
    const pid = postmasterPid(info.pgData)!;
    expect(await stopEmbeddedPostgres(dataDir)).toBe(true);
    expect(isAlive(pid)).toBe(false);
    expect(await stopEmbeddedPostgres(dataDir)).toBe(false); // nothing left to stop
    child.kill('SIGKILL');
  });

  describe.runIf(isRoot)('running as root', () => {
    it('runs PostgreSQL as an unprivileged user, relocating the cluster when the checkout is closed to it', slow, async () => {
      const closed = await fs.mkdtemp(path.join(os.tmpdir(), 'seigo-ep-closed-'));
      removeAfter.push(closed);
      await fs.chmod(closed, 0o700); // like a checkout under /root
      const dataDir = path.join(closed, 'data');
      dataDirs.push(dataDir);

      const log = collectingLog();
      const first = await start({ dataDir, port: 55480, log });
      removeAfter.push(path.dirname(first.pgData));
      expect(first.pgData).toMatch(/^\/var\/lib\/seigo\/clusters\/[0-9a-f]{16}\/pg$/);
      expect(log.lines.some((l) => l.startsWith('warn:') && l.includes(first.pgData))).toBe(true);
      expect(readOwnerFile(dataDir).pgData).toBe(first.pgData);
      const postmaster = postmasterPid(first.pgData)!;
      expect(processUid(postmaster)).not.toBe(0);
      await sql(first.url, 'create table t (v text)');
      await sql(first.url, `insert into t values ('in the relocated cluster')`);
      await first.stop();

      const second = await start({ dataDir, port: 55480, log: collectingLog() });
      expect(second.pgData).toBe(first.pgData); // found again through embedded.json
      expect(await sql(second.url, 'select v from t')).toEqual([{ v: 'in the relocated cluster' }]);
      await second.stop();
    });

    it('copies the binaries once when the PostgreSQL user cannot execute them, and says what to do when it cannot', slow, async () => {
      const log = collectingLog();
      const runAs = await resolveRunAsUser(log);
      const packaged = await loadBinaries();

      const closed = await fs.mkdtemp(path.join(os.tmpdir(), 'seigo-ep-bins-'));
      removeAfter.push(closed);
      await fs.chmod(closed, 0o700);
      const nativeDir = path.join(closed, 'native');
      await fs.cp(packaged.nativeDir, nativeDir, { recursive: true, verbatimSymlinks: true });
      const version = `test-${randomUUID().slice(0, 8)}`;
      const unreachable = {
        nativeDir, version,
        initdb: path.join(nativeDir, 'bin', 'initdb'),
        pg_ctl: path.join(nativeDir, 'bin', 'pg_ctl'),
        postgres: path.join(nativeDir, 'bin', 'postgres'),
      };

      const open = await fs.mkdtemp(path.join(os.tmpdir(), 'seigo-ep-install-'));
      removeAfter.push(open);
      await fs.chmod(open, 0o755);
      const installRoot = path.join(open, 'lib-seigo');

      const copied = await ensureBinariesRunnable(unreachable, runAs, log, [installRoot]);
      expect(copied.nativeDir).toBe(path.join(installRoot, `pg-${version}`));
      expect(log.text()).toContain('copied them to');
      const output = await new Promise<string>((resolve, reject) => {
        const p = spawn(copied.postgres, ['--version'], { uid: runAs.uid, gid: runAs.gid, cwd: '/' });
        let out = '';
        p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        p.once('error', reject);
        p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      });
      expect(output).toContain('PostgreSQL');

      const again = collectingLog();
      expect((await ensureBinariesRunnable(unreachable, runAs, again, [installRoot])).nativeDir).toBe(copied.nativeDir);
      expect(again.text()).not.toContain('copied'); // the copy is made once

      await expect(ensureBinariesRunnable(unreachable, runAs, log, [path.join(closed, 'also-closed')]))
        .rejects.toThrow(/run seigo as a non-root user/);
    });
  });

  it('runs PostgreSQL as the calling user, with no user switching, when not root', slow, async (ctx) => {
    if (!isRoot) {
      const dataDir = await tempDataDir('nonroot');
      const server = await start({ dataDir, port: 55490, log: collectingLog() });
      expect(processUid(postmasterPid(server.pgData)!)).toBe(process.getuid?.());
      await server.stop();
      return;
    }
    // As root, run the supervisor itself as `nobody`: a switch to another uid would fail with EPERM there.
    const nobody = await lookupNobody();
    if (!nobody || !(await canRead(nobody, fixture))) ctx.skip();
    const base = await fs.mkdtemp(path.join(os.tmpdir(), 'seigo-ep-nonroot-'));
    removeAfter.push(base);
    await fs.chmod(base, 0o755);
    const dataDir = path.join(base, 'data');
    await fs.mkdir(dataDir);
    await fs.chown(dataDir, nobody!.uid, nobody!.gid);
    dataDirs.push(dataDir);

    const { child, info } = await startChild(dataDir, 55490, nobody);
    expect(info.pgData).toBe(path.join(dataDir, 'pg'));
    expect(processUid(postmasterPid(info.pgData)!)).toBe(nobody!.uid);
    expect(await sql(info.url, 'select current_database() as db')).toEqual([{ db: 'seigo' }]);
    child.kill('SIGTERM');
    expect(await exitOf(child)).toBe(0);
  });
});

async function lookupNobody(): Promise<RunAs | undefined> {
  const line = (await fs.readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.startsWith('nobody:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  return uid && gid ? { user: 'nobody', uid: Number(uid), gid: Number(gid) } : undefined;
}

function canRead(as: RunAs, file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('/bin/sh', ['-c', 'test -r "$1"', 'sh', file], { uid: as.uid, gid: as.gid, cwd: '/' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}
