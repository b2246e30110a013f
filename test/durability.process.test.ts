// "Acknowledged" means durable, under the harshest stop this machine can make: while webhooks are
// still in flight, kill -9 seigo and every PostgreSQL process (postmaster and backends, so no clean
// shutdown and no checkpoint), start again, and compare the rows with the answers: every 200 has
// its row, and every row belongs to a 200 or to a request that was in flight (never answered).
// Both modes: embedded (`seigo start`), and server (`seigo api` on DATABASE_URL).
// Not covered here: an operating-system crash or power loss (a lost page cache); that rests on
// PostgreSQL's fsync, which seigo never turns off.
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/kernel/embedded-postgres.ts';
import { freePort, migrateWith, startSeigo, stopGently, waitReady, type SeigoProcess } from './helpers/process.ts';
import { sendWebhook } from './helpers/webhooks.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
/** Kill once this many webhooks have been acknowledged; senders keep going until then. */
const ACKED_BEFORE_KILL = 150;
const SENDERS = 8;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'seigo-durability-'));
  await chmod(d, 0o755);
  dirs.push(d);
  return d;
}

async function postmasterPid(pgData: string): Promise<number> {
  return Number((await readFile(join(pgData, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

/** The postmaster and all its children (backends, walwriter, checkpointer …), from /proc. */
function postgresPids(postmaster: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === postmaster) children.push(Number(entry));
    } catch { /* gone */ }
  }
  return [postmaster, ...children];
}

function sigkill(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
}

interface Outcome {
  acked: Set<string>;
  /** Sent and never answered: in flight at the kill (or sent in the instant after it). */
  unanswered: Set<string>;
  /** Answered with something other than 200. */
  refused: Set<string>;
  /** Requests the client had sent and not yet seen answered at the moment of the kill. */
  inFlightAtKill: number;
}

/**
 * Sends signed webhooks from SENDERS concurrent clients until ACKED_BEFORE_KILL are acknowledged;
 * in the same tick as that acknowledgement, while the other senders' requests are in flight,
 * runs `kill` (synchronous), then lets every outstanding request end in an answer or an error.
 */
async function sendUntilKilled(base: string, kill: () => void): Promise<Outcome> {
  const o: Outcome = { acked: new Set(), unanswered: new Set(), refused: new Set(), inFlightAtKill: 0 };
  const inFlight = new Set<string>();
  let next = 0;
  let killed = false;
  await Promise.all(Array.from({ length: SENDERS }, async () => {
    while (!killed) {
      const id = `evt_durable_${next++}`;
      inFlight.add(id);
      try {
        const r = await sendWebhook(base, { provider: 'acme', id, secret: SECRET, data: { id: `pay_${id}` } });
        if (r.status === 200 && !killed) o.acked.add(id);
        else if (r.status === 200) throw new Error(`answered 200 after the kill: ${id}`);
        else o.refused.add(id);
      } catch (e) {
        if (!killed) throw e;
        o.unanswered.add(id);
      } finally {
        inFlight.delete(id);
      }
      if (!killed && o.acked.size >= ACKED_BEFORE_KILL) {
        o.inFlightAtKill = inFlight.size;
        killed = true;
        kill();
      }
    }
  }));
  return o;
}

/** Every 200 has its row; every row is a 200's or an unanswered request's. */
async function checkRows(url: string, o: Outcome): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const r = await c.query<{ event_id: string }>(`SELECT event_id FROM inbox WHERE provider = 'acme'`);
  await c.end();
  const stored = new Set(r.rows.map((x) => x.event_id));
  expect(o.inFlightAtKill).toBeGreaterThan(0);
  expect(o.acked.size).toBe(ACKED_BEFORE_KILL);
  expect(o.refused.size).toBe(0);
  expect([...o.acked].filter((id) => !stored.has(id))).toEqual([]);
  expect([...stored].filter((id) => !o.acked.has(id) && !o.unanswered.has(id))).toEqual([]);
}

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function writeConfig(dir: string): Promise<string> {
  const config = join(dir, 'seigo.config.json');
  await writeFile(config, JSON.stringify({ providers: { acme: { kind: 'standard-webhooks', secrets: [SECRET] } }, simulators: { enabled: false } }));
  return config;
}

describe('kill -9 of seigo and PostgreSQL with webhooks in flight loses no acknowledged one and invents none', () => {
  it('embedded mode: seigo start and every PostgreSQL process SIGKILLed', async () => {
    const dataDir = await tempDir();
    const env = { SEIGO_DATA_DIR: dataDir, SEIGO_CONFIG: await writeConfig(dataDir) };
    const port = await freePort();
    const first = startSeigo('start', env, port);
    await waitReady(first);
    const state = JSON.parse(await readFile(join(dataDir, 'embedded.json'), 'utf8')) as { pgData?: string };
    const pgPid = await postmasterPid(state.pgData ?? join(dataDir, 'pg'));

    const outcome = await sendUntilKilled(first.base, () => {
      sigkill(first.child.pid!);
      for (const pid of postgresPids(pgPid)) sigkill(pid);
    });

    const second: SeigoProcess = startSeigo('start', env, port);
    try {
      await waitReady(second);
      const pgState = JSON.parse(await readFile(join(dataDir, 'embedded.json'), 'utf8')) as { port: number };
      await checkRows(`postgres://seigo@127.0.0.1:${pgState.port}/seigo`, outcome);
    } finally {
      await stopGently(second.child);
    }
  }, 300_000);

  it('server mode (DATABASE_URL): seigo api and every PostgreSQL process SIGKILLed', async () => {
    const pgDir = await tempDir();
    const server = await startEmbeddedPostgres({ dataDir: pgDir, port: await freePort() });
    const config = await writeConfig(pgDir);
    expect(await migrateWith({ DATABASE_URL: server.url, SEIGO_CONFIG: config })).toBe(0);
    const api = startSeigo('api', { DATABASE_URL: server.url, SEIGO_CONFIG: config }, await freePort());
    await waitReady(api);
    const pgPid = await postmasterPid(server.pgData);

    const outcome = await sendUntilKilled(api.base, () => {
      sigkill(api.child.pid!);
      for (const pid of postgresPids(pgPid)) sigkill(pid);
    });

    const again = await startEmbeddedPostgres({ dataDir: pgDir, port: server.port });
    try {
      await checkRows(again.url, outcome);
    } finally {
      await again.stop();
    }
  }, 300_000);
});
