// Staging a pulled master: every source's rows go as text into a temporary table with COPY, are
// checked in SQL (the reason per row: malformed, duplicate, impossible price), and only a clean
// feed is cast into the typed table the diff reads. A feed with one bad row is refused whole.
import { Readable } from 'node:stream';
import type { ClientBase } from 'pg';
import { copyIn, copyText } from '../reconcile/index.ts';
import { MAX_PRICE, STAGE_COLUMNS, type StagedRow } from './fields.ts';

export const STAGE_TABLE = 'md_stage';
export const TYPED_TABLE = 'md_new';

const CREATE_STAGE = `CREATE TEMP TABLE ${STAGE_TABLE} (line integer NOT NULL, ${STAGE_COLUMNS.map((c) => `${c} text`).join(', ')}) ON COMMIT DROP`;
const COPY_STAGE = `COPY ${STAGE_TABLE} (line, ${STAGE_COLUMNS.join(', ')}) FROM STDIN`;

const INT = `'^[0-9]{1,15}$'`;
const EMPTY = (c: string) => `coalesce(${c}, '') = ''`;
const TS_OK = (c: string) => `(${EMPTY(c)} OR seigo_input_is_valid(${c}, 'timestamptz'))`;
/** The first broken price entry of a `prices` array, as a reason (NULL when all are sound). */
const PRICES_BAD = `(SELECT format('prices[%s]: %s', x.i - 1, x.reason) FROM (
    SELECT e.i, CASE
      WHEN jsonb_typeof(e.v) <> 'object' THEN 'not an object'
      WHEN coalesce(e.v->>'age_group', '') = '' THEN 'age_group is empty'
      WHEN coalesce(e.v->>'amount', '') !~ ${INT} THEN format('impossible price %s', coalesce(e.v->>'amount', 'null'))
      WHEN (e.v->>'amount')::numeric > ${MAX_PRICE} THEN format('impossible price %s: above %s', e.v->>'amount', ${MAX_PRICE})
      WHEN e.v->>'from' IS NOT NULL AND NOT seigo_input_is_valid(e.v->>'from', 'date') THEN format('from %s is not a date', e.v->>'from')
    END AS reason
    FROM jsonb_array_elements(s.prices::jsonb) WITH ORDINALITY AS e(v, i)) x
  WHERE x.reason IS NOT NULL ORDER BY x.i LIMIT 1)`;

/** Per bad row, every reason: { line, reasons }; the first `$1` rows by line. */
export const ROW_ERRORS = `
WITH dup AS (
  SELECT line, min(line) OVER (PARTITION BY product_code, plan_code) AS first
  FROM ${STAGE_TABLE} WHERE coalesce(product_code, '') <> '' AND coalesce(plan_code, '') <> ''
), checked AS (
  SELECT s.line, array_remove(ARRAY[
    s.malformed,
    CASE WHEN ${EMPTY('s.product_code')} THEN 'product_code is empty' WHEN length(s.product_code) > 100 THEN 'product_code is longer than 100' END,
    CASE WHEN ${EMPTY('s.plan_code')} THEN 'plan_code is empty' WHEN length(s.plan_code) > 100 THEN 'plan_code is longer than 100' END,
    CASE WHEN d.first <> s.line THEN format('duplicate of line %s (product %s, plan %s)', d.first, s.product_code, s.plan_code) END,
    CASE WHEN coalesce(s.facility, '') !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$' THEN format('facility %s is not a facility code', coalesce(s.facility, 'null')) END,
    CASE WHEN ${EMPTY('s.name')} THEN 'name is empty' WHEN length(s.name) > 200 THEN 'name is longer than 200' END,
    CASE WHEN NOT ${EMPTY('s.images')} AND (NOT seigo_input_is_valid(s.images, 'jsonb') OR jsonb_typeof(s.images::jsonb) <> 'array')
      THEN 'images is not a list' END,
    CASE WHEN coalesce(s.price, '') !~ '^-?[0-9]+$' THEN format('price %s is not an amount in minor units', coalesce(s.price, 'null'))
      WHEN s.price LIKE '-%' THEN format('impossible price %s: negative', s.price)
      WHEN length(s.price) > 15 OR s.price::numeric > ${MAX_PRICE} THEN format('impossible price %s: above %s', s.price, ${MAX_PRICE}) END,
    CASE WHEN NOT ${EMPTY('s.prices')} AND (NOT seigo_input_is_valid(s.prices, 'jsonb') OR jsonb_typeof(s.prices::jsonb) <> 'array')
      THEN 'prices is not a list' WHEN NOT ${EMPTY('s.prices')} THEN ${PRICES_BAD} END,
    CASE WHEN NOT ${TS_OK('s.sale_from')} THEN format('sale_from %s is not a time', s.sale_from) END,
    CASE WHEN NOT ${TS_OK('s.sale_until')} THEN format('sale_until %s is not a time', s.sale_until)
      WHEN NOT ${EMPTY('s.sale_from')} AND NOT ${EMPTY('s.sale_until')} AND ${TS_OK('s.sale_from')}
        AND s.sale_until::timestamptz <= s.sale_from::timestamptz THEN 'the sale period ends before it starts' END,
    CASE WHEN NOT ${EMPTY('s.capacity')} AND s.capacity !~ '^[0-9]{1,9}$' THEN format('capacity %s is not a count', s.capacity) END,
    CASE WHEN coalesce(s.tax_rate, '') !~ '^[0-9]{1,3}(\\.[0-9]{1,2})?$' THEN format('tax_rate %s is not a percentage', coalesce(s.tax_rate, 'null'))
      WHEN s.tax_rate::numeric > 100 THEN format('impossible tax_rate %s', s.tax_rate) END
  ], NULL) AS reasons
  FROM ${STAGE_TABLE} s LEFT JOIN dup d ON d.line = s.line
)
SELECT line, reasons, count(*) OVER ()::int AS total FROM checked WHERE cardinality(reasons) > 0 ORDER BY line LIMIT $1`;

/** The clean feed, typed and normalized as our copy holds it (prices sorted, amounts as strings). */
export const CREATE_TYPED = `
CREATE TEMP TABLE ${TYPED_TABLE} ON COMMIT DROP AS
SELECT s.product_code, s.plan_code, s.facility, s.name, coalesce(s.description, '') AS description,
  coalesce(nullif(s.images, '')::jsonb, '[]') AS images, coalesce(s.hours, '') AS hours, s.price::bigint AS price,
  (SELECT coalesce(jsonb_agg(jsonb_build_object('from', e->>'from', 'age_group', e->>'age_group', 'amount', ((e->>'amount')::bigint)::text)
     ORDER BY e->>'from' NULLS FIRST, e->>'age_group'), '[]') FROM jsonb_array_elements(coalesce(nullif(s.prices, ''), '[]')::jsonb) e) AS prices,
  nullif(s.sale_from, '')::timestamptz AS sale_from, nullif(s.sale_until, '')::timestamptz AS sale_until,
  nullif(s.capacity, '')::integer AS capacity, coalesce(s.cancellation_policy, '') AS cancellation_policy,
  round(s.tax_rate::numeric * 100)::integer AS tax_rate_bp
FROM ${STAGE_TABLE} s`;

export interface RowError { row: number; reasons: string[] }

export async function createStage(tx: ClientBase): Promise<void> {
  await tx.query(CREATE_STAGE);
}

function copyLine(n: number, r: StagedRow): string {
  return `${n}\t${STAGE_COLUMNS.map((c) => copyText(r[c] ?? null)).join('\t')}\n`;
}

/** COPY the rows (numbered from 1) into the staging table; returns how many. */
export async function stageRows(tx: ClientBase, rows: AsyncIterable<StagedRow> | Iterable<StagedRow>): Promise<number> {
  await createStage(tx);
  let n = 0;
  async function* chunks(): AsyncGenerator<string> {
    let buf = '';
    for await (const r of rows) {
      buf += copyLine(++n, r);
      if (buf.length > 64 * 1024) { yield buf; buf = ''; }
    }
    if (buf) yield buf;
  }
  await copyIn(tx, COPY_STAGE, Readable.from(chunks()));
  return n;
}

/** The staged rows' errors (at most `limit`) and how many rows are bad in all. */
export async function checkStaged(tx: ClientBase, limit = 1000): Promise<{ errors: RowError[]; bad: number }> {
  const r = await tx.query<{ line: number; reasons: string[]; total: number }>(ROW_ERRORS, [limit]);
  return { errors: r.rows.map((x) => ({ row: x.line, reasons: x.reasons })), bad: r.rows[0]?.total ?? 0 };
}

export async function typeStaged(tx: ClientBase): Promise<void> {
  await tx.query(CREATE_TYPED);
  await tx.query(`CREATE UNIQUE INDEX ON ${TYPED_TABLE} (product_code, plan_code)`);
  await tx.query(`ANALYZE ${TYPED_TABLE}`);
}
