// `seigo bench redeem`: online redemptions through the partner API as production runs it: a
// separate `seigo api` process (default partner pool), real HTTP on loopback from this process,
// each request the whole path (key check, rate-limit count, the QR checked against the token seigo
// issued, the single-use UPDATE, the redemption and event rows, the JSON answer), each ticket once,
// at 32 connections.
// Against pgbench's single-row `UPDATE … WHERE id = … AND redeemed_at IS NULL` on a copy of the
// tickets table, same clients, same server, same run. Both sides count only successful
// redemptions (201s; rows pgbench actually updated). ratio = seigo ÷ pgbench.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type pg from 'pg';
import { Pool as HttpPool } from 'undici';
import { createEngine } from '../engine/index.ts';
import { parseConfig } from '../kernel/config.ts';
import { createDb } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { createGate, createKey, createPartner, createProduct, withPartner } from '../partners/index.ts';
import { facilityToday, issueTickets } from '../tickets/index.ts';
import { benchDatabase, findPgbench, freePort, percentile, round, waitReady } from './setup.ts';

const execFileP = promisify(execFile);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'seigo.js');
// Unmeasured load first on each side (JIT, WAL segments, the API's key cache and statements).
const WARMUP_SECONDS = 2;

interface Load { redeemed: number; refused: number; errors: number; elapsed: number; latencies: number[] }

/** Redeems the QR codes in `qrs` from `next` on, one each, at `concurrency` connections for `seconds`. */
async function load(http: HttpPool, headers: Record<string, string>, gateId: string, qrs: string[], from: number, concurrency: number, seconds: number) {
  let next = from;
  const out: Load = { redeemed: 0, refused: 0, errors: 0, elapsed: 0, latencies: [] };
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const client = async () => {
    while (performance.now() < end && next < qrs.length) {
      const qr = qrs[next++]!;
      const s = performance.now();
      try {
        const res = await http.request({ method: 'POST', path: '/partner/v1/redemptions', headers, body: JSON.stringify({ gate_id: gateId, qr }) });
        await res.body.text();
        if (res.statusCode === 201) out.redeemed++; else out.refused++;
        out.latencies.push(performance.now() - s);
      } catch {
        out.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  out.elapsed = (performance.now() - t0) / 1000;
  out.latencies.sort((a, b) => a - b);
  return { ...out, next };
}

export async function benchRedeem(o: { tickets?: number; seconds?: number; concurrency?: number } = {}): Promise<Record<string, unknown>> {
  const ticketCount = o.tickets ?? 50_000;
  const seconds = o.seconds ?? 10;
  const concurrency = o.concurrency ?? 32;
  const bdb = await benchDatabase();
  const db = createDb(bdb.url, { max: 4, applicationName: 'seigo-bench-redeem' });
  const engine = createEngine({ config: parseConfig({ simulators: { enabled: false }, reconcile: { schedule: false } }), db, log: silentLogger });
  const dir = mkdtempSync(join(tmpdir(), 'seigo-bench-redeem-'));
  const configPath = join(dir, 'seigo.config.json');
  writeFileSync(configPath, JSON.stringify({ log: { level: 'warn' }, simulators: { enabled: false }, reconcile: { schedule: false } }));
  const port = await freePort();
  // SEIGO_BENCH_PROFILE_DIR: the API process writes a CPU profile there (node --cpu-prof) when it exits.
  const profile = process.env.SEIGO_BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.SEIGO_BENCH_PROFILE_DIR] : [];
  const api = spawn(process.execPath, [...profile, BIN, 'api'], {
    env: { ...process.env, DATABASE_URL: bdb.url, SEIGO_PORT: String(port), SEIGO_CONFIG: configPath },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const http = new HttpPool(url, { connections: concurrency, pipelining: 1 });
  try {
    const partner = await createPartner(db.pool, 'bench');
    if (!partner.ok) throw new Error('could not create the bench partner');
    const pid = partner.value.id;
    const key = await createKey(db.pool, { partner: pid, scopes: ['tickets:redeem'], rateLimit: { requests: 1_000_000, windowSeconds: 86_400 } });
    if (!key.ok) throw new Error('could not create the bench key');
    const product = await createProduct(db.pool, { partnerId: pid, facility: 'bench-park', name: 'day pass', price: 3000n });
    const gate = await createGate(db.pool, { partnerId: pid, facility: 'bench-park', name: 'gate' });
    const qrs: string[] = [];
    for (let left = ticketCount; left > 0; left -= 1000) {
      const now = new Date();
      const r = await withPartner(engine.partnerDb.pool, pid, (tx) => issueTickets(tx, engine.ticketKeys, { partnerId: pid, product, date: facilityToday(now), quantity: Math.min(1000, left), now }));
      if (!r.ok) throw new Error(`could not issue: ${r.error.code}`);
      qrs.push(...r.value.tickets.map((t) => t.qr));
    }
    await db.pool.query('VACUUM ANALYZE');
    await waitReady(url);

    const headers = { authorization: `Bearer ${key.value.key}`, 'content-type': 'application/json' };
    const warm = await load(http, headers, gate.id, qrs, 0, concurrency, WARMUP_SECONDS);
    const run = await load(http, headers, gate.id, qrs, warm.next, concurrency, seconds);
    const tps = run.redeemed / run.elapsed;
    const double = (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT ticket_id FROM ticket_redemptions WHERE outcome = 'accepted' GROUP BY ticket_id HAVING count(*) > 1) x`)).rows[0]!.n;
    const baseline = await pgbenchRedeem(db.pool, bdb.url, dir, concurrency, seconds, ticketCount, gate.id);
    return {
      benchmark: 'redeem',
      server: { version: bdb.serverVersion, embedded: bdb.embedded },
      tickets: ticketCount, concurrency, duration_s: seconds, warmup_s: WARMUP_SECONDS,
      seigo: {
        what: 'POST /partner/v1/redemptions to a separate `seigo api` process over HTTP on loopback: key check (cached), rate-limit count, QR = the issued token (by digest), single-use UPDATE, redemption + event rows, JSON answer, batched across concurrent requests; each ticket once; only 201s count',
        redeemed: run.redeemed, refused: run.refused, errors: run.errors, elapsed_s: round(run.elapsed), tps: round(tps, 1),
        latency_ms: { p50: round(percentile(run.latencies, 50)), p99: round(percentile(run.latencies, 99)) },
        tickets_exhausted: run.next >= qrs.length,
      },
      baseline: {
        tool: 'pgbench',
        what: 'UPDATE pgbench_tickets SET status, redeemed_* WHERE id = :next AND redeemed_at IS NULL (a copy of the tickets table; each client walks its own rows); only updated rows count',
        clients: concurrency, ...baseline,
      },
      ratio: round(tps / baseline.tps, 3),
      double_redeemed: double,
    };
  } finally {
    await http.close();
    api.kill('SIGTERM');
    await new Promise((r) => api.once('exit', r));
    await engine.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    await bdb.close();
  }
}

/**
 * The baseline on a copy of the tickets table: each pgbench client walks its own stretch of rows, so
 * every transaction finds an unused ticket; the figure is rows actually updated per second.
 */
async function pgbenchRedeem(q: pg.Pool, url: string, dir: string, clients: number, seconds: number, tickets: number, gate: string) {
  const stride = Math.ceil(tickets / clients);
  await q.query(`CREATE TABLE pgbench_tickets (LIKE tickets INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
  await q.query(`
    INSERT INTO pgbench_tickets (id, partner_id, product_id, facility, issue_id, valid_from, valid_until, price, currency, qr)
    SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, t.partner_id, t.product_id, t.facility, t.issue_id,
           t.valid_from, t.valid_until, t.price, t.currency, t.qr
    FROM generate_series(1, $1::int) AS n, LATERAL (SELECT * FROM tickets LIMIT 1) t`, [stride * clients]);
  await q.query('VACUUM ANALYZE pgbench_tickets');
  const script = join(dir, 'redeem.sql');
  writeFileSync(script, `\\set n :n + 1
\\set i :client_id * ${stride} + :n
UPDATE pgbench_tickets SET status = 'redeemed', redemption_id = gen_random_uuid(), redeemed_gate = '${gate}', redeemed_gate_time = now(), redeemed_at = now()
  WHERE id = ('00000000-0000-7000-8000-' || lpad(to_hex(:i), 12, '0'))::uuid AND redeemed_at IS NULL;
`);
  const pgbench = (secs: number) => execFileP(findPgbench(), ['-n', '-c', String(clients), '-j', '2', '-T', String(secs), '-D', 'n=0', '-f', script, url], { maxBuffer: 1 << 24 });
  await pgbench(WARMUP_SECONDS);
  const before = (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM pgbench_tickets WHERE redeemed_at IS NOT NULL')).rows[0]!.n;
  // The warm-up used the first rows of each stretch; the measured run goes on from a fresh n.
  await q.query('UPDATE pgbench_tickets SET status = \'issued\', redemption_id = NULL, redeemed_gate = NULL, redeemed_gate_time = NULL, redeemed_at = NULL WHERE redeemed_at IS NOT NULL');
  await q.query('VACUUM ANALYZE pgbench_tickets');
  const { stdout } = await pgbench(seconds);
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  const processed = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!m || !processed) throw new Error(`could not read pgbench output:\n${stdout}`);
  const updated = (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM pgbench_tickets WHERE redeemed_at IS NOT NULL')).rows[0]!.n;
  const transactions = Number(processed[1]);
  return { tps: round(Number(m[1]) * (updated / transactions), 1), transactions, updated, warmup_updated: before };
}
