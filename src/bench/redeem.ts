// `seigo bench redeem`: online redemptions through the partner API over real HTTP on loopback (key
// check, rate-limit count, QR signature check, the single-use UPDATE, the redemption and event rows,
// the JSON answer), each ticket once, at 32 connections; against pgbench running the single-row
// `UPDATE … WHERE id = … AND redeemed_at IS NULL` on a copy of the tickets table, same clients,
// same server, same run. ratio = seigo ÷ pgbench.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Pool as HttpPool } from 'undici';
import { createServer } from '../api/server.ts';
import { createEngine } from '../engine/index.ts';
import { parseConfig } from '../kernel/config.ts';
import { createDb } from '../kernel/db.ts';
import { silentLogger } from '../kernel/logger.ts';
import { createGate, createKey, createPartner, createProduct, withPartner } from '../partners/index.ts';
import { facilityToday, issueTickets } from '../tickets/index.ts';
import { benchDatabase, findPgbench, percentile, round } from './setup.ts';

const execFileP = promisify(execFile);

export async function benchRedeem(o: { tickets?: number; seconds?: number; concurrency?: number } = {}): Promise<Record<string, unknown>> {
  const ticketCount = o.tickets ?? 50_000;
  const seconds = o.seconds ?? 10;
  const concurrency = o.concurrency ?? 32;
  const bdb = await benchDatabase();
  const db = createDb(bdb.url, { max: 8, applicationName: 'seigo-bench-redeem' });
  const config = parseConfig({ partners: { pool: { max: concurrency, acquireTimeoutMs: 60_000 } }, simulators: { enabled: false }, reconcile: { schedule: false } });
  const engine = createEngine({ config, db, log: silentLogger });
  const app = await createServer(engine);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';
  const http = new HttpPool(url, { connections: concurrency, pipelining: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'seigo-bench-redeem-'));
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

    let next = 0;
    let redeemed = 0;
    let refused = 0;
    let errors = 0;
    const latencies: number[] = [];
    const headers = { authorization: `Bearer ${key.value.key}`, 'content-type': 'application/json' };
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    const client = async () => {
      while (performance.now() < end && next < qrs.length) {
        const qr = qrs[next++]!;
        const s = performance.now();
        try {
          const res = await http.request({ method: 'POST', path: '/partner/v1/redemptions', headers, body: JSON.stringify({ gate_id: gate.id, qr }) });
          await res.body.text();
          if (res.statusCode === 201) redeemed++; else refused++;
          latencies.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, client));
    const elapsed = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const tps = redeemed / elapsed;
    const double = (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT ticket_id FROM ticket_redemptions WHERE outcome = 'accepted' GROUP BY ticket_id HAVING count(*) > 1) x`)).rows[0]!.n;

    // Baseline: the same table shape, filled with as many rows, each transaction one conditional UPDATE.
    await db.pool.query(`CREATE TABLE pgbench_tickets (LIKE tickets INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
    await db.pool.query(`
      INSERT INTO pgbench_tickets (id, partner_id, product_id, facility, issue_id, valid_from, valid_until, price, currency, qr)
      SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, t.partner_id, t.product_id, t.facility, t.issue_id,
             t.valid_from, t.valid_until, t.price, t.currency, t.qr
      FROM generate_series(1, $1) AS n, LATERAL (SELECT * FROM tickets LIMIT 1) t`, [ticketCount]);
    await db.pool.query('VACUUM ANALYZE pgbench_tickets');
    const baseline = await runPgbench(bdb.url, dir, concurrency, seconds, ticketCount, gate.id);
    return {
      benchmark: 'redeem',
      server: { version: bdb.serverVersion, embedded: bdb.embedded },
      tickets: ticketCount, concurrency, duration_s: seconds,
      seigo: {
        what: 'POST /partner/v1/redemptions over HTTP on loopback: key check, rate-limit count, Ed25519 QR verify, single-use UPDATE, redemption + event rows, JSON answer; each ticket once',
        redeemed, refused, errors, elapsed_s: round(elapsed), tps: round(tps, 1),
        latency_ms: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)) },
        tickets_exhausted: next >= qrs.length,
      },
      baseline: { tool: 'pgbench', what: 'UPDATE pgbench_tickets SET status, redeemed_* WHERE id = :random AND redeemed_at IS NULL (a copy of the tickets table)', clients: concurrency, tps: baseline.tps },
      ratio: round(tps / baseline.tps, 3),
      double_redeemed: double,
    };
  } finally {
    await http.close();
    await app.close();
    await engine.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    await bdb.close();
  }
}

async function runPgbench(url: string, dir: string, clients: number, seconds: number, rows: number, gate: string): Promise<{ tps: number }> {
  const script = join(dir, 'redeem.sql');
  writeFileSync(script, `\\set i random(1, ${rows})
UPDATE pgbench_tickets SET status = 'redeemed', redemption_id = gen_random_uuid(), redeemed_gate = '${gate}', redeemed_gate_time = now(), redeemed_at = now()
  WHERE id = ('00000000-0000-7000-8000-' || lpad(to_hex(:i), 12, '0'))::uuid AND redeemed_at IS NULL;
`);
  const { stdout } = await execFileP(findPgbench(), ['-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-f', script, url], { maxBuffer: 1 << 24 });
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`could not read pgbench output:\n${stdout}`);
  return { tps: round(Number(m[1]), 1) };
}
