// `seigo bench ledger`: single-posting transactions (a wallet credited from a provider's clearing
// account, with the balance-limit check under the wallet's row lock) over many wallets whose
// traffic is Zipf-skewed, so hot wallets meet their limit and contend for their rows. Compared
// with pgbench single-row INSERTs at the same client count on the same server in the same run.
// Each deposit is one DepositCreditor.credit() call, which settles after its own ledger transaction
// has committed; concurrent calls share a statement and a commit (group commit), and two batches in
// flight never hold the same wallet. The same load is then run with wallets picked uniformly, to
// show what the hot wallets cost. 64 clients by default on both sides: deposits reach a ledger from
// many API and worker connections at once, group commit is how seigo serves them, and pgbench's
// single-row INSERTs run at the same client count (on a 2-core machine pgbench gives about the same
// TPS at 16 and 64 clients).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createDb, type Db } from '../kernel/db.ts';
import { DEFAULT_BALANCE_LIMIT, DepositCreditor, ensureAccount } from '../ledger/index.ts';
import { benchDatabase, findPgbench, percentile, round } from './setup.ts';

const execFileP = promisify(execFile);
const ZIPF_S = 1.0;

/** Samples ranks 0..n-1 with P(k) ∝ 1/(k+1)^s, by binary search over the cumulative weights. */
function zipfSampler(n: number, s: number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) cdf[k] = total += 1 / (k + 1) ** s;
  return () => {
    const u = Math.random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
}

export async function benchLedger(o: { accounts?: number; seconds?: number; concurrency?: number } = {}): Promise<Record<string, unknown>> {
  const accounts = o.accounts ?? 100_000;
  const seconds = o.seconds ?? 10;
  const concurrency = o.concurrency ?? 64;
  const bdb = await benchDatabase();
  const db = createDb(bdb.url, { max: concurrency, applicationName: 'seigo-bench-ledger' });
  const dir = mkdtempSync(join(tmpdir(), 'seigo-bench-ledger-'));
  try {
    // Users in bulk, as creditDeposit would create their accounts (wallet, escrow, suspense; one
    // balance row each).
    await db.pool.query(`
      WITH a AS (
        INSERT INTO ledger_accounts (id, kind, owner, currency, shards)
        SELECT gen_random_uuid(), k, 'bench-' || i, 'JPY', 1 FROM generate_series(1, $1) AS i, unnest(ARRAY['wallet', 'escrow', 'suspense']) AS k
        RETURNING id)
      INSERT INTO ledger_balances (account_id, shard, currency) SELECT id, 0, 'JPY' FROM a`, [accounts]);
    const clearing = await ensureAccount(db.pool, { kind: 'clearing', owner: 'bench', shards: Math.max(16, concurrency * 2) });
    // A random order of wallets: the hot ones are scattered over the table and its indexes.
    const owners = (await db.pool.query<{ owner: string }>(`SELECT owner FROM ledger_accounts WHERE kind = 'wallet' ORDER BY random()`)).rows.map((r) => r.owner);
    // A ledger with history: one earlier deposit of ¥1,000 per wallet, so that the planner's
    // statistics (and the plans each connection caches from them) are those of a ledger in use,
    // not of empty tables (whose cached plans scan ledger_entries sequentially until autovacuum
    // next analyzes it).
    await db.pool.query(`
      WITH w AS (SELECT id, row_number() OVER () AS n FROM ledger_accounts WHERE kind = 'wallet'),
      t AS (
        INSERT INTO ledger_transactions (id, idempotency_key, kind, metadata)
        SELECT gen_random_uuid(), 'history-' || w.n, 'deposit', jsonb_build_object('wallet', w.id) FROM w RETURNING id, metadata
      ), e AS (
        INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
        SELECT t.id, x.account_id, 'JPY', x.amount FROM t,
          LATERAL (VALUES ((t.metadata->>'wallet')::uuid, 1000::bigint), ($1::uuid, -1000::bigint)) AS x(account_id, amount)
      ), c AS (
        UPDATE ledger_balances SET posted = posted - 1000 * (SELECT count(*) FROM w) WHERE account_id = $1 AND shard = 0
      )
      UPDATE ledger_balances b SET posted = b.posted + 1000 FROM w WHERE b.account_id = w.id`, [clearing.id]);
    await db.pool.query('VACUUM ANALYZE');

    const zipf = await runDeposits(db, clearing.id, owners, zipfSampler(owners.length, ZIPF_S), 'zipf', concurrency, seconds);
    // The same load with every wallet equally likely: no hot rows (and hardly a wallet at its limit).
    const uniform = await runDeposits(db, clearing.id, owners, () => Math.floor(Math.random() * owners.length), 'uniform', concurrency, seconds);

    const check = (await db.pool.query<{ breaches: number; unbalanced: number; drift: number }>(`
      SELECT
        (SELECT count(*)::int FROM ledger_accounts a JOIN ledger_account_balances b ON b.account_id = a.id
           LEFT JOIN ledger_limits l ON l.owner = a.owner AND l.currency = a.currency
          WHERE a.kind = 'wallet' AND b.posted + b.pending_in > coalesce(l."limit", $1::bigint)) AS breaches,
        (SELECT count(*)::int FROM (SELECT 1 FROM ledger_entries GROUP BY currency HAVING sum(amount) <> 0) x) AS unbalanced,
        (SELECT count(*)::int FROM ledger_account_balances b
           LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) e ON e.account_id = b.account_id
          WHERE b.posted <> coalesce(e.s, 0)) AS drift`, [DEFAULT_BALANCE_LIMIT.toString()])).rows[0]!;
    const full = (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id WHERE a.kind = 'wallet' AND b.posted + 10000 > $1::bigint`, [DEFAULT_BALANCE_LIMIT.toString()])).rows[0]!.n;

    // Baseline: one single-row INSERT per transaction, same clients, same server.
    await db.pool.query('CREATE TABLE pgbench_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account int NOT NULL, amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
    const baseline = await runPgbench(bdb.url, dir, concurrency, seconds, accounts);
    const tps = zipf.tps;
    return {
      benchmark: 'ledger',
      server: { version: bdb.serverVersion, embedded: bdb.embedded },
      accounts, concurrency, duration_s: seconds, zipf_s: ZIPF_S, limit: DEFAULT_BALANCE_LIMIT.toString(),
      seigo: {
        what: 'DepositCreditor.credit per deposit, refusable: one ledger transaction per deposit, decided under the wallet row lock with the limit check; concurrent deposits share one statement and commit (group commit, seigo_ledger_credit_deposits); Zipf-skewed wallets',
        ...zipf.figures,
        wallets_at_limit: full,
      },
      seigo_uniform: { what: 'the same, wallets picked uniformly', ...uniform.figures },
      baseline: { tool: 'pgbench', what: 'single-row INSERT per transaction into a 4-column table', clients: concurrency, tps: baseline.tps },
      ratio: round(tps / baseline.tps, 3),
      ratio_uniform: round(uniform.tps / baseline.tps, 3),
      breaches: check.breaches,
      unbalanced_currencies: check.unbalanced,
      balance_rows_not_equal_to_entries: check.drift,
    };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
    await bdb.close();
  }
}

/** `concurrency` clients crediting deposits to owners[pick()] for `seconds`, each one creditDeposit call. */
async function runDeposits(
  db: Db, sourceAccountId: string, owners: readonly string[], pick: () => number, label: string, concurrency: number, seconds: number,
): Promise<{ tps: number; figures: Record<string, unknown> }> {
  let posted = 0;
  let refused = 0;
  let errors = 0;
  let seq = 0;
  let hottest = 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let batches = 0;
  const creditor = new DepositCreditor(db.pool, { onBatch: () => { batches++; } });
  async function client(): Promise<void> {
    while (performance.now() < end) {
      const i = seq++;
      const k = pick();
      if (k === 0) hottest++;
      const amount = BigInt(1_000 + Math.floor(Math.random() * 9_000));
      const s = performance.now();
      try {
        const r = await creditor.credit({ owner: owners[k]!, amount, sourceAccountId, idempotencyKey: `bench-${label}-${i}`, mode: 'refusable' });
        if (r.ok) posted++; else refused++;
        latencies.push(performance.now() - s);
      } catch {
        errors++;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const tps = posted / elapsed;
  return {
    tps,
    figures: {
      posted, refused_over_limit: refused, errors, elapsed_s: round(elapsed),
      tps: round(tps, 1), attempts_per_s: round((posted + refused) / elapsed, 1),
      latency_ms: { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)) },
      hottest_wallet_share: round(hottest / Math.max(seq, 1), 4),
      mean_batch: round((posted + refused) / Math.max(batches, 1), 1),
    },
  };
}

async function runPgbench(url: string, dir: string, clients: number, seconds: number, accounts: number): Promise<{ tps: number }> {
  const script = join(dir, 'insert.sql');
  writeFileSync(script, `\\set a random(1, ${accounts})
\\set m random(1000, 9999)
INSERT INTO pgbench_ledger (account, amount) VALUES (:a, :m);
`);
  const { stdout } = await execFileP(findPgbench(), ['-n', '-c', String(clients), '-j', '2', '-T', String(seconds), '-f', script, url], { maxBuffer: 1 << 24 });
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`could not read pgbench output:\n${stdout}`);
  return { tps: round(Number(m[1]), 1) };
}
