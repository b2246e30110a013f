// `seigo bench intake`: signed Standard Webhooks at a fixed concurrency with 10% duplicates against
// a running seigo API process, compared with pgbench single-row inserts into a table of the same
// shape on the same server in the same run.
import { spawn, execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createServer as createNetServer } from 'node:net';
import pg from 'pg';
import { Pool as UndiciPool } from 'undici';
import { signedHeaders } from '../providers/standard-webhooks/signature.ts';
import { benchDatabase, findPgbench, percentile, round } from './setup.ts';

const execFileP = promisify(execFile);
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'seigo.js');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function waitReady(url: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('seigo api did not become ready');
}

function sampleBody(i: number): string {
  return JSON.stringify({ type: 'payment.succeeded', timestamp: new Date().toISOString(), data: { id: `pay_${i}`, object: 'payment', amount: 1000 + (i % 9000), currency: 'jpy', customer: `cus_${i % 5000}` } });
}

export async function benchIntake(o: { concurrency: number; duration: number }): Promise<Record<string, unknown>> {
  const bdb = await benchDatabase();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'seigo-bench-intake-'));
  const configPath = join(dir, 'seigo.config.json');
  writeFileSync(configPath, JSON.stringify({ providers: { bench: { kind: 'standard-webhooks', secrets: [SECRET] } }, log: { level: 'warn' } }));
  const api = spawn(process.execPath, [BIN, 'api'], {
    env: { ...process.env, DATABASE_URL: bdb.url, SEIGO_PORT: String(port), SEIGO_CONFIG: configPath },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(base);
    const seigo = await loadSeigo(base, o.concurrency, o.duration);
    const pool = new pg.Pool({ connectionString: bdb.url, max: 1 });
    const rows = (await pool.query<{ n: string }>('SELECT count(*) AS n FROM inbox')).rows[0]!.n;
    // The baseline: the same table shape (columns, unique key, indexes), one INSERT per transaction.
    await pool.query('CREATE TABLE pgbench_inbox (LIKE inbox INCLUDING ALL)');
    await pool.end();
    const baseline = await runPgbench(bdb.url, dir, o.concurrency, o.duration);
    const result = {
      benchmark: 'intake',
      server: { version: bdb.serverVersion, embedded: bdb.embedded },
      concurrency: o.concurrency,
      duration_s: o.duration,
      seigo: { ...seigo, rows_stored: Number(rows) },
      baseline: { tool: 'pgbench', what: 'single-row INSERT … ON CONFLICT DO NOTHING per transaction into a table LIKE inbox INCLUDING ALL', clients: o.concurrency, tps: baseline.tps },
      ratio: round(seigo.accepted_per_s / baseline.tps, 3),
      target: '>= 1.5',
    };
    return result;
  } finally {
    api.kill('SIGTERM');
    await new Promise((r) => api.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
    await bdb.close();
  }
}

async function loadSeigo(base: string, concurrency: number, seconds: number) {
  const client = new UndiciPool(base, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  let accepted = 0;
  let duplicates = 0;
  let errors = 0;
  let seq = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const runId = Date.now().toString(36);
  async function worker(): Promise<void> {
    while (performance.now() < end) {
      const i = seq++;
      // Every tenth request repeats an event already sent: a provider's retry.
      const id = i % 10 === 9 && i > 10 ? `evt_${runId}_${i - 5}` : `evt_${runId}_${i}`;
      const body = sampleBody(i);
      const headers = { 'content-type': 'application/json', ...signedHeaders(SECRET, id, body) };
      const s = performance.now();
      try {
        const res = await client.request({ path: '/webhooks/bench', method: 'POST', body, headers });
        const json = await res.body.json() as { duplicate?: boolean };
        if (res.statusCode === 200) {
          accepted++;
          if (json.duplicate) duplicates++;
          latencies.push(performance.now() - s);
        } else errors++;
      } catch {
        errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  await client.close();
  latencies.sort((a, b) => a - b);
  return {
    accepted, duplicates, errors, elapsed_s: round(elapsed),
    accepted_per_s: round(accepted / elapsed, 1),
    ack_latency_ms: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)) },
  };
}

async function runPgbench(url: string, dir: string, clients: number, seconds: number): Promise<{ tps: number }> {
  const script = join(dir, 'insert.sql');
  const body = Buffer.from(sampleBody(1)).toString('hex');
  writeFileSync(script, `\\set n random(1, 1000000000)
INSERT INTO pgbench_inbox (id, provider, event_id, source, headers, body) VALUES (gen_random_uuid(), 'bench', 'evt_' || :n || '_' || :client_id || '_' || random(), 'webhook', '{"webhook-id":"x","content-type":"application/json"}'::jsonb, '\\x${body}'::bytea) ON CONFLICT (provider, event_id) DO NOTHING;
`);
  const { stdout } = await execFileP(findPgbench(), ['-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-f', script, url], { maxBuffer: 1 << 24 });
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`could not read pgbench output:\n${stdout}`);
  return { tps: round(Number(m[1]), 1) };
}
