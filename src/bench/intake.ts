// `seigo bench intake`: signed Standard Webhooks at a fixed concurrency with 10% duplicates against
// a running seigo API process, compared with pgbench single-row inserts into a table of the same
// shape on the same server in the same run.
import { spawn, execFile } from 'node:child_process';
import { existsSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { Pool as UndiciPool } from 'undici';
import { signedHeaders } from '../providers/standard-webhooks/signature.ts';
import { benchDatabase, findPgbench, freePort, percentile, round, waitReady } from './setup.ts';

const execFileP = promisify(execFile);
const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'seigo.js');

function sampleBody(i: number): string {
  return JSON.stringify({ type: 'payment.succeeded', timestamp: new Date().toISOString(), data: { id: `pay_${i}`, object: 'payment', amount: 1000 + (i % 9000), currency: 'jpy', customer: `cus_${i % 5000}` } });
}

export async function benchIntake(o: { concurrency: number; duration: number }): Promise<Record<string, unknown>> {
  const bdb = await benchDatabase();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'seigo-bench-intake-'));
  const configPath = join(dir, 'seigo.config.json');
  writeFileSync(configPath, JSON.stringify({ providers: { bench: { kind: 'standard-webhooks', secrets: [SECRET] } }, log: { level: 'warn' }, simulators: { enabled: false } }));
  const api = spawn(process.execPath, [BIN, 'api'], {
    env: { ...process.env, DATABASE_URL: bdb.url, SEIGO_PORT: String(port), SEIGO_CONFIG: configPath },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(base);
    const seigo = await loadSeigo(base, o.concurrency, o.duration, dir);
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
      // What the ratio could at best be on this machine: the no-database ceiling against pgbench.
      ceiling_ratio: round(seigo.no_database_ceiling.requests_per_s / baseline.tps, 3),
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

interface Presigned { id: string; timestamp: string; signature: string; body: string }

/**
 * Signs every request before the timed window, so the figure measures seigo, not the signer.
 * Every tenth request repeats an event sent five requests earlier: a provider's retry.
 */
function presign(n: number, secret = SECRET): Presigned[] {
  const runId = Date.now().toString(36);
  const out: Presigned[] = [];
  for (let i = 0; i < n; i++) {
    const id = i % 10 === 9 && i > 10 ? `evt_${runId}_${i - 5}` : `evt_${runId}_${i}`;
    const body = sampleBody(i);
    const h = signedHeaders(secret, id, body);
    out.push({ id, timestamp: h['webhook-timestamp']!, signature: h['webhook-signature']!, body });
  }
  return out;
}

// Requests per second the presigned set is sized for; past it the set repeats (as duplicates).
const MAX_RATE = 12_000;

// Unmeasured load first: a new cluster creates and zero-fills WAL segments as WAL grows, which
// later runs (pgbench's included) recycle; without a warm-up the side measured first pays for it.
const WARMUP_SECONDS = 3;

async function loadSeigo(base: string, concurrency: number, seconds: number, dir: string) {
  const wrk = findOnPath('wrk');
  const run = (secs: number, reqs: Presigned[]) => (wrk ? loadWithWrk(wrk, base, concurrency, secs, reqs, dir) : loadWithNode(base, concurrency, secs, reqs));
  await run(WARMUP_SECONDS, presign(MAX_RATE * WARMUP_SECONDS));
  const before = await webhookCounts(base);
  const r = await run(seconds, presign(MAX_RATE * seconds));
  const after = await webhookCounts(base);
  const duplicates = after.duplicate - before.duplicate;
  // The most this API process could accept here with a database that cost nothing: the same
  // requests signed with another secret go through HTTP, parsing and the signature check, and are
  // answered 401 without touching the database.
  const ceilingSeconds = Math.min(seconds, 5);
  const ceiling = await run(ceilingSeconds, presign(MAX_RATE * ceilingSeconds, 'whsec_' + Buffer.from('not the configured secret').toString('base64')));
  return {
    load_generator: wrk ? 'wrk (requests signed beforehand)' : 'node undici (requests signed beforehand)',
    warmup_s: WARMUP_SECONDS, ...r, accepted: after.accepted - before.accepted + duplicates, duplicates,
    no_database_ceiling: {
      what: 'the same load signed with a wrong secret: HTTP, parsing and signature check, answered 401 without the database',
      requests_per_s: ceiling.requests_per_s, duration_s: ceilingSeconds,
    },
  };
}

function findOnPath(cmd: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = join(d, cmd);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

/** Accepted and duplicate counts as seigo itself reports them. */
async function webhookCounts(base: string): Promise<{ accepted: number; duplicate: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const count = (outcome: string) => Number(new RegExp(`seigo_webhooks_received_total\\{provider="bench",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { accepted: count('accepted'), duplicate: count('duplicate') };
}

async function loadWithNode(base: string, concurrency: number, seconds: number, reqs: Presigned[]) {
  const client = new UndiciPool(base, { connections: concurrency, pipelining: 1 });
  const latencies: number[] = [];
  let ok = 0;
  let answered = 0;
  let errors = 0;
  let seq = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  async function worker(): Promise<void> {
    while (performance.now() < end) {
      const r = reqs[seq++ % reqs.length]!;
      const s = performance.now();
      try {
        const res = await client.request({
          path: '/webhooks/bench', method: 'POST', body: r.body,
          headers: { 'content-type': 'application/json', 'webhook-id': r.id, 'webhook-timestamp': r.timestamp, 'webhook-signature': r.signature },
        });
        await res.body.dump();
        answered++;
        if (res.statusCode === 200) {
          ok++;
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
    errors, elapsed_s: round(elapsed), accepted_per_s: round(ok / elapsed, 1), requests_per_s: round(answered / elapsed, 1),
    ack_latency_ms: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)) },
  };
}

// wrk replays the presigned requests from a file; formatting happens per request in LuaJIT.
const WRK_SCRIPT = `
local lines = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
end
request = function()
  i = i + 1
  if i > #lines then i = 1 end
  local id, ts, sig, body = lines[i]:match("([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)")
  return wrk.format("POST", "/webhooks/bench", { ["Host"] = "127.0.0.1", ["content-type"] = "application/json",
    ["webhook-id"] = id, ["webhook-timestamp"] = ts, ["webhook-signature"] = sig }, body)
end
`;

async function loadWithWrk(wrk: string, base: string, concurrency: number, seconds: number, reqs: Presigned[], dir: string) {
  const file = join(dir, 'requests.tsv');
  writeFileSync(file, reqs.map((r) => `${r.id}\t${r.timestamp}\t${r.signature}\t${r.body}`).join('\n') + '\n');
  const script = join(dir, 'replay.lua');
  writeFileSync(script, WRK_SCRIPT);
  const { stdout } = await execFileP(wrk, ['-t1', `-c${concurrency}`, `-d${seconds}s`, '--latency', '-s', script, base, '--', file], { maxBuffer: 1 << 24 });
  const ms = (label: string) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
    if (!m) return Number.NaN;
    const v = Number(m[1]);
    return round(m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v);
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  return {
    errors: non2xx + (errs ? Number(errs[1]) + Number(errs[2]) + Number(errs[3]) + Number(errs[4]) : 0),
    elapsed_s: seconds, accepted_per_s: round(rps, 1), requests_per_s: round(rps, 1),
    ack_latency_ms: { p50: ms('50'), p99: ms('99') },
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
