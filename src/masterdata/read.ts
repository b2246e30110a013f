// Reading pulls and change sets (grouped by product), waiting changes with their age, and the
// dry run: what each rule would have applied over the past change sets.
import type { Queryable } from '../kernel/db.ts';
import { CHANGE_COLUMNS, toChange, type Change, type ChangeStatus } from './apply.ts';
import { ruleFor, type Rule } from './rules.ts';

export interface Pull {
  id: string; partnerId: string; trigger: string; actor: string; status: string; error: string | null; rowErrors: unknown;
  rows: number | null; counts: unknown; startedAt: Date; finishedAt: Date | null;
}
interface PullRow {
  id: string; partner_id: string; trigger: string; actor: string; status: string; error: string | null; row_errors: unknown;
  rows: number | null; counts: unknown; started_at: Date; finished_at: Date | null;
}
const toPull = (r: PullRow): Pull => ({
  id: r.id, partnerId: r.partner_id, trigger: r.trigger, actor: r.actor, status: r.status, error: r.error, rowErrors: r.row_errors,
  rows: r.rows, counts: r.counts, startedAt: r.started_at, finishedAt: r.finished_at,
});
const PULL_COLUMNS = 'id, partner_id, trigger, actor, status, error, row_errors, rows, counts, started_at, finished_at';
const LIST_PULLS = `SELECT ${PULL_COLUMNS} FROM masterdata_pulls WHERE partner_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2`;
const GET_PULL = `SELECT ${PULL_COLUMNS} FROM masterdata_pulls WHERE id = $1`;
const PULL_CHANGES = `SELECT ${CHANGE_COLUMNS} FROM masterdata_changes WHERE pull_id = $1 ORDER BY product_code, plan_code, field LIMIT $2`;
const LIST_CHANGES = `SELECT ${CHANGE_COLUMNS} FROM masterdata_changes WHERE partner_id = $1 AND ($2::text IS NULL OR status = $2)
  ORDER BY created_at, product_code, plan_code, field LIMIT $3`;
const DRY_RUN_CHANGES = `
SELECT c.kind, c.field, c.before, c.after, c.status, i.min_price::text AS min_price, i.max_price::text AS max_price
FROM masterdata_changes c LEFT JOIN masterdata_items i USING (partner_id, product_code, plan_code)
WHERE c.partner_id = $1 AND c.sensitive AND c.created_at >= $2`;

export async function listPulls(q: Queryable, partnerId: string, limit = 50): Promise<Pull[]> {
  return (await q.query<PullRow>(LIST_PULLS, [partnerId, limit])).rows.map(toPull);
}

export async function getPull(q: Queryable, id: string): Promise<Pull | null> {
  const r = await q.query<PullRow>(GET_PULL, [id]);
  return r.rows[0] ? toPull(r.rows[0]) : null;
}

export interface ProductChanges { productCode: string; changes: Change[] }

/** The pull's change set, grouped by product (plans and fields in order). */
export async function changeSet(q: Queryable, pullId: string, limit = 10_000): Promise<ProductChanges[]> {
  const rows = (await q.query(PULL_CHANGES, [pullId, limit])).rows.map(toChange);
  const out: ProductChanges[] = [];
  for (const c of rows) {
    const last = out.at(-1);
    if (last?.productCode === c.productCode) last.changes.push(c);
    else out.push({ productCode: c.productCode, changes: [c] });
  }
  return out;
}

export async function listChanges(q: Queryable, partnerId: string, status: ChangeStatus | null, limit = 500): Promise<Change[]> {
  return (await q.query(LIST_CHANGES, [partnerId, status, limit])).rows.map(toChange);
}

export interface DryRun { since: Date; sensitiveChanges: number; byRule: Record<string, number>; coveredByAny: number }

/** Over the sensitive changes since `since`, how many each rule (alone) would have applied, and all of them together. */
export async function dryRun(q: Queryable, partnerId: string, rules: readonly Rule[], trusted: boolean, since: Date): Promise<DryRun> {
  const r = await q.query<{ kind: string; field: string; before: unknown; after: unknown; min_price: string | null; max_price: string | null }>(
    DRY_RUN_CHANGES, [partnerId, since]);
  const byRule: Record<string, number> = Object.fromEntries(rules.map((x) => [x.kind, 0]));
  let any = 0;
  for (const row of r.rows) {
    const input = {
      kind: row.kind, field: row.field, before: row.before, after: row.after, trusted,
      minPrice: row.min_price === null ? null : BigInt(row.min_price), maxPrice: row.max_price === null ? null : BigInt(row.max_price),
    };
    let covered = false;
    for (const rule of rules) {
      if (ruleFor(input, [{ ...rule, enabled: true }])) { byRule[rule.kind] = (byRule[rule.kind] ?? 0) + 1; covered = true; }
    }
    if (covered) any++;
  }
  return { since, sensitiveChanges: r.rows.length, byRule, coveredByAny: any };
}

export const pullJson = (p: Pull) => ({
  id: p.id, partner_id: p.partnerId, trigger: p.trigger, actor: p.actor, status: p.status, error: p.error, row_errors: p.rowErrors,
  rows: p.rows, counts: p.counts, started_at: p.startedAt, finished_at: p.finishedAt,
});
export const changeJson = (c: Change) => ({
  id: c.id, pull_id: c.pullId, product_code: c.productCode, plan_code: c.planCode, kind: c.kind, field: c.field, sensitive: c.sensitive,
  before: c.before, after: c.after, status: c.status, rule: c.rule, made_by: c.madeBy, decided_by: c.decidedBy, decided_at: c.decidedAt,
  reason: c.reason, superseded_by: c.supersededBy, created_at: c.createdAt,
});
