// The diff of a clean staged feed against our copy, in SQL: plans added, plans removed, and per
// changed plan one row per field with before and after. A change still waiting from an earlier
// pull is never overwritten: kept when this pull says the same, superseded (with a pointer to
// what replaced it, and why) when it says otherwise or no longer asks for it.
import type { ClientBase } from 'pg';
import { FIELDS, PLAIN_FIELDS, SENSITIVE_FIELDS, WHOLE } from './fields.ts';
import { TYPED_TABLE } from './stage.ts';

const DIFF_TABLE = 'md_diff';
const fieldList = FIELDS.map((f) => `('${f}')`).join(', ');
const sensitiveList = SENSITIVE_FIELDS.map((f) => `'${f}'`).join(', ');

/** Our copy's row as the feed's (for before/after of a whole plan). */
const ITEM_JSON = (a: string) => `jsonb_build_object(${FIELDS.map((f) => `'${f}', ${a}.${f}`).join(', ')})`;

export const BUILD_DIFF = `
CREATE TEMP TABLE ${DIFF_TABLE} ON COMMIT DROP AS
SELECT *, false AS repeat FROM (
WITH ours AS (SELECT * FROM masterdata_items WHERE partner_id = $1 AND removed_at IS NULL),
changed AS (
  SELECT n.product_code, n.plan_code, ${ITEM_JSON('o')} AS oj, ${ITEM_JSON('n')} AS nj
  FROM ${TYPED_TABLE} n JOIN ours o USING (product_code, plan_code)
  WHERE (${FIELDS.map((f) => `o.${f}`).join(', ')}) IS DISTINCT FROM (${FIELDS.map((f) => `n.${f}`).join(', ')})
)
SELECT gen_random_uuid() AS id, n.product_code, n.plan_code, 'added'::text AS kind, '${WHOLE}'::text AS field, true AS sensitive,
  NULL::jsonb AS before, ${ITEM_JSON('n')} AS after
FROM ${TYPED_TABLE} n WHERE NOT EXISTS (SELECT 1 FROM ours o WHERE o.product_code = n.product_code AND o.plan_code = n.plan_code)
UNION ALL
SELECT gen_random_uuid(), o.product_code, o.plan_code, 'removed', '${WHOLE}', true, ${ITEM_JSON('o')}, NULL
FROM ours o WHERE NOT EXISTS (SELECT 1 FROM ${TYPED_TABLE} n WHERE n.product_code = o.product_code AND n.plan_code = o.plan_code)
UNION ALL
SELECT gen_random_uuid(), c.product_code, c.plan_code, 'changed', f.field, f.field IN (${sensitiveList}), c.oj -> f.field, c.nj -> f.field
FROM changed c CROSS JOIN (VALUES ${fieldList}) f(field)
WHERE c.oj -> f.field IS DISTINCT FROM c.nj -> f.field) diff`;

/** What a waiting change already says word for word: kept waiting, not asked again. */
export const MARK_REPEATED = `
UPDATE ${DIFF_TABLE} d SET repeat = true FROM masterdata_changes w
WHERE w.partner_id = $1 AND w.status = 'waiting' AND w.product_code = d.product_code AND w.plan_code = d.plan_code
  AND w.field = d.field AND w.after IS NOT DISTINCT FROM d.after`;

/** Other waiting changes: superseded, pointing at their replacement if this pull has one, and saying why. */
export const SUPERSEDE = `
UPDATE masterdata_changes w SET status = 'superseded', decided_at = now(), decided_by = 'pull:' || $2::text,
  superseded_by = d.id,
  reason = CASE WHEN d.id IS NULL THEN 'the partner no longer asks for it (pull ' || $2::text || ' matches our copy)'
    ELSE 'superseded by change ' || d.id || ' of pull ' || $2::text || ': the partner now sends ' || coalesce(d.after::text, 'a removal') END
FROM masterdata_changes w2 LEFT JOIN ${DIFF_TABLE} d
  ON d.product_code = w2.product_code AND d.plan_code = w2.plan_code AND d.field = w2.field
WHERE w.id = w2.id AND w.partner_id = $1 AND w.status = 'waiting' AND w.pull_id <> $2 AND NOT coalesce(d.repeat, false)`;

export const INSERT_CHANGES = `
INSERT INTO masterdata_changes (id, pull_id, partner_id, product_code, plan_code, kind, field, sensitive, before, after, status, made_by, applied_txid)
SELECT id, $2, $1, product_code, plan_code, kind, field, sensitive, before, after,
  CASE WHEN sensitive THEN 'waiting' ELSE 'applied' END, $3, CASE WHEN sensitive THEN NULL ELSE txid_current() END
FROM ${DIFF_TABLE} WHERE NOT repeat`;

/** Plain fields of the pull's applied changes, onto our copy and the catalog. */
export const APPLY_PLAIN = `
WITH p AS (
  SELECT product_code, plan_code, jsonb_object_agg(field, after) AS patch
  FROM masterdata_changes WHERE pull_id = $2 AND status = 'applied' GROUP BY product_code, plan_code
), upd AS (
  UPDATE masterdata_items i SET ${PLAIN_FIELDS.map((f) => `${f} = CASE WHEN p.patch ? '${f}' THEN r.${f} ELSE i.${f} END`).join(', ')}, updated_at = now()
  FROM p CROSS JOIN LATERAL jsonb_populate_record(NULL::masterdata_items, p.patch) r
  WHERE i.partner_id = $1 AND i.product_code = p.product_code AND i.plan_code = p.plan_code
  RETURNING i.product_id, i.name, i.facility
)
UPDATE partner_products pp SET name = upd.name, facility = upd.facility FROM upd WHERE pp.id = upd.product_id`;

export interface DiffCounts { added: number; removed: number; changed: number; superseded: number; kept_waiting: number }

/** Diffs the typed feed against partner's copy and records the change set of `pullId`, plain fields applied. */
export async function recordDiff(tx: ClientBase, partnerId: string, pullId: string, madeBy: string): Promise<DiffCounts> {
  await tx.query(BUILD_DIFF, [partnerId]);
  const counts = await tx.query<{ kind: string; n: number }>(`SELECT kind, count(DISTINCT (product_code, plan_code))::int AS n FROM ${DIFF_TABLE} GROUP BY kind`);
  const by = Object.fromEntries(counts.rows.map((r) => [r.kind, r.n]));
  const kept = (await tx.query(MARK_REPEATED, [partnerId])).rowCount ?? 0;
  await tx.query(INSERT_CHANGES, [partnerId, pullId, madeBy]);
  const superseded = (await tx.query(SUPERSEDE, [partnerId, pullId])).rowCount ?? 0;
  await tx.query(APPLY_PLAIN, [partnerId, pullId]);
  return { added: by.added ?? 0, removed: by.removed ?? 0, changed: by.changed ?? 0, superseded, kept_waiting: kept };
}

