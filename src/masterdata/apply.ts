// Deciding a change: a rule applies it at once, a person approves or rejects it (never the one
// who imported it: maker-checker). Applying is one transaction with its effect on sales: the
// catalog price tickets are issued at follows our copy, while tickets already issued keep theirs.
import type { Queryable, Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { FIELDS, WHOLE } from './fields.ts';
import { ruleFor, type Rule } from './rules.ts';

export const CHANGE_STATUSES = ['applied', 'applied_by_rule', 'waiting', 'approved', 'rejected', 'superseded'] as const;
export type ChangeStatus = (typeof CHANGE_STATUSES)[number];
/** The edges a change may take; `applied` and `applied_by_rule` are set at birth (or from waiting, by rule). */
export const CHANGE_TRANSITIONS: Record<ChangeStatus, readonly ChangeStatus[]> = {
  waiting: ['approved', 'rejected', 'superseded', 'applied_by_rule'],
  applied: [], applied_by_rule: [], approved: [], rejected: [], superseded: [],
};
export const canTransition = (from: ChangeStatus, to: ChangeStatus): boolean => CHANGE_TRANSITIONS[from].includes(to);

export interface Change {
  id: string; pullId: string; partnerId: string; productCode: string; planCode: string; kind: 'added' | 'removed' | 'changed';
  field: string; sensitive: boolean; before: unknown; after: unknown; status: ChangeStatus; rule: string | null; madeBy: string;
  decidedBy: string | null; decidedAt: Date | null; reason: string | null; supersededBy: string | null; createdAt: Date;
}
interface ChangeRow {
  id: string; pull_id: string; partner_id: string; product_code: string; plan_code: string; kind: Change['kind']; field: string; sensitive: boolean;
  before: unknown; after: unknown; status: ChangeStatus; rule: string | null; made_by: string; decided_by: string | null; decided_at: Date | null;
  reason: string | null; superseded_by: string | null; created_at: Date;
}
export const toChange = (r: ChangeRow): Change => ({
  id: r.id, pullId: r.pull_id, partnerId: r.partner_id, productCode: r.product_code, planCode: r.plan_code, kind: r.kind, field: r.field,
  sensitive: r.sensitive, before: r.before, after: r.after, status: r.status, rule: r.rule, madeBy: r.made_by, decidedBy: r.decided_by,
  decidedAt: r.decided_at, reason: r.reason, supersededBy: r.superseded_by, createdAt: r.created_at,
});
export const CHANGE_COLUMNS = `id, pull_id, partner_id, product_code, plan_code, kind, field, sensitive, before, after, status, rule, made_by,
  decided_by, decided_at, reason, superseded_by, created_at`;

const LOCK_CHANGE = `SELECT ${CHANGE_COLUMNS} FROM masterdata_changes WHERE id = $1 FOR UPDATE`;
const DECIDE = `
UPDATE masterdata_changes SET status = $3, decided_by = $4, decided_at = now(), reason = $5, rule = $6,
  applied_txid = CASE WHEN $3 IN ('approved', 'applied_by_rule') THEN txid_current() END
WHERE id = $1 AND status = $2 RETURNING ${CHANGE_COLUMNS}`;

const SET_FIELDS = FIELDS.map((f) => `${f} = CASE WHEN $4::jsonb ? '${f}' THEN r.${f} ELSE i.${f} END`).join(', ');
/** A patch of fields onto our copy, and the catalog row it sells as (price, name, facility). */
const APPLY_PATCH = `
WITH upd AS (
  UPDATE masterdata_items i SET ${SET_FIELDS}, updated_at = now()
  FROM jsonb_populate_record(NULL::masterdata_items, $4::jsonb) r
  WHERE i.partner_id = $1 AND i.product_code = $2 AND i.plan_code = $3
  RETURNING i.product_id, i.price, i.name, i.facility
)
UPDATE partner_products pp SET price = upd.price, name = upd.name, facility = upd.facility FROM upd WHERE pp.id = upd.product_id`;
const EXISTING = `SELECT product_id FROM masterdata_items WHERE partner_id = $1 AND product_code = $2 AND plan_code = $3 FOR UPDATE`;
const INSERT_PRODUCT = `
INSERT INTO partner_products (id, partner_id, facility, name, price)
SELECT $2, $1, r.facility, r.name, r.price FROM jsonb_populate_record(NULL::masterdata_items, $3::jsonb) r`;
const INSERT_ITEM = `
INSERT INTO masterdata_items (partner_id, product_code, plan_code, product_id, ${FIELDS.join(', ')})
SELECT $1, $2, $3, $5, ${FIELDS.map((f) => `r.${f}`).join(', ')} FROM jsonb_populate_record(NULL::masterdata_items, $4::jsonb) r`;
const REVIVE = `UPDATE masterdata_items SET removed_at = NULL WHERE partner_id = $1 AND product_code = $2 AND plan_code = $3`;
const REMOVE = `UPDATE masterdata_items SET removed_at = now(), updated_at = now() WHERE partner_id = $1 AND product_code = $2 AND plan_code = $3`;

/** The change's effect on our copy and the catalog, in the caller's transaction. */
export async function applyChange(tx: Queryable, c: Change): Promise<void> {
  const key = [c.partnerId, c.productCode, c.planCode];
  if (c.kind === 'removed') { await tx.query(REMOVE, key); return; }
  if (c.kind === 'changed') { await tx.query(APPLY_PATCH, [...key, JSON.stringify({ [c.field]: c.after })]); return; }
  const existing = await tx.query<{ product_id: string | null }>(EXISTING, key);
  if (existing.rows[0]) {
    await tx.query(REVIVE, key);
    await tx.query(APPLY_PATCH, [...key, JSON.stringify(c.after)]);
    return;
  }
  const productId = uuidv7();
  await tx.query(INSERT_PRODUCT, [c.partnerId, productId, JSON.stringify(c.after)]);
  await tx.query(INSERT_ITEM, [...key, JSON.stringify(c.after), productId]);
}

export type DecideError =
  | { code: 'change_not_found'; id: string }
  | { code: 'change_not_waiting'; id: string; status: ChangeStatus }
  | { code: 'maker_cannot_approve'; id: string; madeBy: string };

/** Approves (and applies) or rejects one waiting change, as `actor`, who must not be its maker. */
export async function decideChange(tx: Tx, id: string, decision: 'approved' | 'rejected', actor: string, reason: string | null): Promise<Result<Change, DecideError>> {
  const r = await tx.query<ChangeRow>(LOCK_CHANGE, [id]);
  const row = r.rows[0];
  if (!row) return err({ code: 'change_not_found', id });
  if (!canTransition(row.status, decision)) return err({ code: 'change_not_waiting', id, status: row.status });
  if (row.made_by === actor) return err({ code: 'maker_cannot_approve', id, madeBy: row.made_by });
  const u = await tx.query<ChangeRow>(DECIDE, [id, 'waiting', decision, actor, reason, null]);
  const c = toChange(u.rows[0]!);
  if (decision === 'approved') await applyChange(tx, c);
  return ok(c);
}

const RULE_CANDIDATES = `
SELECT ${CHANGE_COLUMNS.split(',').map((s) => `c.${s.trim()}`).join(', ')}, i.min_price::text AS min_price, i.max_price::text AS max_price
FROM masterdata_changes c JOIN masterdata_items i USING (partner_id, product_code, plan_code)
WHERE c.pull_id = $1 AND c.status = 'waiting' AND c.kind = 'changed' AND c.field IN ('price', 'prices', 'capacity', 'cancellation_policy')
ORDER BY c.product_code, c.plan_code, c.field`;

/** The pull's waiting changes a rule covers: applied now, with the rule recorded. Returns how many. */
export async function applyRules(tx: Tx, pullId: string, rules: readonly Rule[], trusted: boolean): Promise<number> {
  if (rules.every((r) => !r.enabled)) return 0;
  const r = await tx.query<ChangeRow & { min_price: string | null; max_price: string | null }>(RULE_CANDIDATES, [pullId]);
  let n = 0;
  for (const row of r.rows) {
    const rule = ruleFor({
      kind: row.kind, field: row.field, before: row.before, after: row.after, trusted,
      minPrice: row.min_price === null ? null : BigInt(row.min_price), maxPrice: row.max_price === null ? null : BigInt(row.max_price),
    }, rules);
    if (!rule) continue;
    const u = await tx.query<ChangeRow>(DECIDE, [row.id, 'waiting', 'applied_by_rule', `rule:${rule.kind}`, `rule ${rule.kind} ${JSON.stringify(rule.params)}`, rule.kind]);
    if (u.rows[0]) { await applyChange(tx, toChange(u.rows[0])); n++; }
  }
  return n;
}

export { WHOLE };
