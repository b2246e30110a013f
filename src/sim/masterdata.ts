// `seigo sim masterdata`: partners change prices, texts and capacity over simulated days against
// the partner-master simulator on loopback, some pulls fail, operators approve or reject at
// random; then the database is checked: no waiting change overwritten silently, no sensitive
// write without an approval or rule in the same transaction. Faults can be injected to show
// each check fires.
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import { mulberry32 } from '../kernel/prng.ts';
import { createPartner } from '../partners/index.ts';
import {
  changeDay, decideChange, initialCatalog, pullMaster, setRule, setSource, startMasterSimulator, type MasterFault,
} from '../masterdata/index.ts';

export type MasterInjection = 'unapproved-price' | 'overwrite';
export interface MasterSimOptions {
  pool: pg.Pool; partners: number; products: number; days: number; seed: number; inject?: MasterInjection[]; progress?: (m: string) => void;
}
export interface MasterSimResult {
  pulls: number; changes: number; applied_auto: number; applied_by_rule: number; approved: number; rejected: number; waiting: number;
  overwritten_silently: number; price_applied_without_approval: number; export_mismatches: number | null;
  failed_pulls: number; seed: number; timing: { first_pull_ms: number; day_pull_ms_avg: number; products_per_partner: number };
}

const OPERATORS = ['alice', 'bob', 'carol'];
const FAULTS: MasterFault[] = ['outage', 'malformed', 'duplicate', 'impossible_price'];

/** A sensitive write with no approved or rule-applied change for it in the same transaction. */
const UNAUTHORIZED_WRITES = `
SELECT count(*)::int AS n FROM masterdata_audit a
WHERE a.partner_id = ANY($1) AND NOT EXISTS (
  SELECT 1 FROM masterdata_changes c WHERE c.partner_id = a.partner_id AND c.product_code = a.product_code AND c.plan_code = a.plan_code
    AND (c.field = a.field OR c.field = '*') AND c.applied_txid = a.txid AND c.status IN ('approved', 'applied_by_rule'))`;
const CATALOG_DRIFT = `
SELECT count(*)::int AS n FROM masterdata_items i JOIN partner_products pp ON pp.id = i.product_id
WHERE i.partner_id = ANY($1) AND pp.price <> i.price`;
const WAITING = `SELECT id, after FROM masterdata_changes WHERE partner_id = ANY($1) AND status = 'waiting'`;
const SEEN = `SELECT id, status, after, superseded_by, reason, decided_by FROM masterdata_changes WHERE id = ANY($1)`;
const TOTALS = `SELECT status, count(*)::int AS n FROM masterdata_changes WHERE partner_id = ANY($1) GROUP BY status`;

/** Waiting changes seen before a pull must still wait unchanged, or be decided or superseded with a reason. */
async function silentlyOverwritten(pool: pg.Pool, before: Map<string, string>): Promise<number> {
  if (before.size === 0) return 0;
  const r = await pool.query<{ id: string; status: string; after: unknown; superseded_by: string | null; reason: string | null; decided_by: string | null }>(
    SEEN, [[...before.keys()]]);
  let bad = before.size - r.rows.length;
  for (const row of r.rows) {
    // What a change asks for never changes, in any state.
    if (JSON.stringify(row.after) !== before.get(row.id)) bad++;
    else if (row.status === 'superseded' && (row.reason === null || row.decided_by === null)) bad++;
    else if (row.status !== 'waiting' && row.decided_by === null) bad++;
  }
  return bad;
}

async function waitingNow(pool: pg.Pool, ids: string[]): Promise<Map<string, string>> {
  const r = await pool.query<{ id: string; after: unknown }>(WAITING, [ids]);
  return new Map(r.rows.map((x) => [x.id, JSON.stringify(x.after)]));
}

/** Operators decide the waiting changes: most approved, some rejected, some left waiting; never by their maker. */
async function operatorsDecide(pool: pg.Pool, partnerIds: string[], rnd: () => number, all = false): Promise<void> {
  const r = await pool.query<{ id: string; made_by: string }>(`SELECT id, made_by FROM masterdata_changes WHERE partner_id = ANY($1) AND status = 'waiting'`, [partnerIds]);
  await withTx(pool, async (tx) => {
    for (const c of r.rows) {
      const x = rnd();
      if (!all && x > 0.7) continue;
      const actor = OPERATORS.filter((o) => o !== c.made_by)[Math.floor(rnd() * 2)]!;
      const d = await decideChange(tx, c.id, all || x < 0.55 ? 'approved' : 'rejected', actor, all ? 'initial load' : 'checked');
      if (!d.ok) throw new Error(`decide ${c.id}: ${d.error.code}`);
    }
  });
}

export async function runMasterdataSim(o: MasterSimOptions): Promise<MasterSimResult> {
  const rnd = mulberry32(o.seed);
  const sim = await startMasterSimulator();
  const log = o.progress ?? (() => undefined);
  try {
    const run = o.seed.toString(36);
    const partners: { id: string; name: string }[] = [];
    for (let i = 0; i < o.partners; i++) {
      const name = `sim-${run}-${i}`;
      const p = await createPartner(o.pool, name);
      if (!p.ok) throw new Error(`partner ${name} exists`);
      partners.push({ id: p.value.id, name });
      sim.partners.set(name, { name, items: initialCatalog(name, o.products, o.seed + i), faults: [] });
      await setSource(o.pool, p.value.id, { kind: 'http', url: sim.feedUrl(name), trusted: i === 0 });
      await setRule(o.pool, p.value.id, 'price_within', { pct: 5 }, true, 'sim');
      if (i % 2 === 0) await setRule(o.pool, p.value.id, 'capacity_change', { max_pct: 10 }, true, 'sim');
      if (i === 0) await setRule(o.pool, p.value.id, 'trusted_text', {}, true, 'sim');
    }
    const ids = partners.map((p) => p.id);
    let pulls = 0;
    let failed = 0;
    let overwritten = 0;
    let overwriteInjected = false;
    // Day 0: the first pull, imported by an operator, approved by the others; our price range ±30 %.
    const t0 = performance.now();
    for (const p of partners) { await pullMaster({ pool: o.pool }, { partnerId: p.id, trigger: 'manual', actor: 'alice' }); pulls++; }
    const firstPullMs = (performance.now() - t0) / partners.length;
    await operatorsDecide(o.pool, ids, rnd, true);
    await o.pool.query(`UPDATE masterdata_items SET min_price = price * 7 / 10, max_price = price * 13 / 10 WHERE partner_id = ANY($1)`, [ids]);
    log(`day 0: ${partners.length} partners × ${o.products} products imported (${Math.round(firstPullMs)} ms per pull)`);
    let dayMs = 0;
    let dayPulls = 0;
    for (let day = 1; day <= o.days; day++) {
      for (const p of partners) {
        const sp = sim.partners.get(p.name)!;
        changeDay(sp.items, rnd);
        if (rnd() < 0.1) sp.faults = [FAULTS[Math.floor(rnd() * FAULTS.length)]!];
        const before = await waitingNow(o.pool, [p.id]);
        if (o.inject?.includes('overwrite') && !overwriteInjected && before.size > 0) {
          // A buggy pull that rewrites a waiting change in place instead of superseding it.
          await o.pool.query(`UPDATE masterdata_changes SET after = '0' WHERE id = $1`, [[...before.keys()][0]]);
          overwriteInjected = true;
        }
        const t = performance.now();
        const s = await pullMaster({ pool: o.pool }, { partnerId: p.id, trigger: rnd() < 0.2 ? 'manual' : 'schedule', actor: rnd() < 0.2 ? OPERATORS[0]! : 'schedule' });
        dayMs += performance.now() - t;
        dayPulls++;
        pulls++;
        if (s.status === 'failed') failed++;
        overwritten += await silentlyOverwritten(o.pool, before);
      }
      await operatorsDecide(o.pool, ids, rnd);
      if (o.inject?.includes('unapproved-price') && day === 1) {
        await o.pool.query(`UPDATE masterdata_items SET price = price + 10 WHERE partner_id = $1 AND product_code = $2`, [ids[0], `${partners[0]!.name}-p0`]);
      }
      if (day % 5 === 0) log(`day ${day}: ${pulls} pulls (${failed} failed)`);
    }
    const totals = Object.fromEntries((await o.pool.query<{ status: string; n: number }>(TOTALS, [ids])).rows.map((r) => [r.status, r.n]));
    const unauthorized = (await o.pool.query<{ n: number }>(UNAUTHORIZED_WRITES, [ids])).rows[0]!.n;
    const drift = (await o.pool.query<{ n: number }>(CATALOG_DRIFT, [ids])).rows[0]!.n;
    const changes = Object.values(totals).reduce((a, n) => a + n, 0);
    return {
      pulls, changes, applied_auto: totals.applied ?? 0, applied_by_rule: totals.applied_by_rule ?? 0, approved: totals.approved ?? 0,
      rejected: totals.rejected ?? 0, waiting: totals.waiting ?? 0, overwritten_silently: overwritten,
      price_applied_without_approval: unauthorized + drift, export_mismatches: null, failed_pulls: failed, seed: o.seed,
      timing: { first_pull_ms: Math.round(firstPullMs), day_pull_ms_avg: Math.round(dayMs / Math.max(1, dayPulls)), products_per_partner: o.products },
    };
  } finally {
    await sim.close();
  }
}
