// An uploaded master CSV with its column mapping (a JSON object, like reconciliation's): which
// header holds which field, which hold prices by age group, and which are ignored on purpose. A
// header column the mapping does not name is refused by name, so a renamed column is never
// silently dropped. The file goes to PostgreSQL with COPY and is mapped in SQL.
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { ClientBase } from 'pg';
import { copyIn, splitCsvLine } from '../reconcile/index.ts';
import { MasterdataInputError } from './errors.ts';
import { STAGE_TABLE, createStage } from './stage.ts';

const column = z.string().min(1).max(200);

export const masterCsvMappingSchema = z.object({
  delimiter: z.string().length(1).default(','),
  columns: z.object({
    product_code: column, plan_code: column.optional(), facility: column.optional(), name: column,
    description: column.optional(), images: column.optional(), hours: column.optional(), price: column,
    sale_from: column.optional(), sale_until: column.optional(), capacity: column.optional(),
    cancellation_policy: column.optional(), tax_rate: column.optional(),
  }).strict(),
  /** Age group → the column holding that group's price (minor units). */
  prices: z.record(z.string().min(1).max(50), column).default({}),
  /** Separator of several image URLs in one cell. */
  images_separator: z.string().min(1).max(5).default('|'),
  /** Values for fields the file has no column for. */
  defaults: z.object({ plan_code: z.string().min(1).max(100).optional(), facility: z.string().min(1).max(100).optional(), tax_rate: z.string().regex(/^[0-9]{1,3}(\.[0-9]{1,2})?$/).optional() }).strict().default({}),
  /** Header columns present in the file and deliberately not imported. */
  ignore: z.array(column).default([]),
}).strict();
export type MasterCsvMapping = z.output<typeof masterCsvMappingSchema>;

export function checkMasterCsvMapping(value: unknown): MasterCsvMapping {
  const r = masterCsvMappingSchema.safeParse(value);
  if (!r.success) throw new MasterdataInputError('invalid_mapping', `invalid mapping: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  const m = r.data;
  if (!m.columns.plan_code && !m.defaults.plan_code) throw new MasterdataInputError('invalid_mapping', 'invalid mapping: plan_code needs a column or a default');
  if (!m.columns.facility && !m.defaults.facility) throw new MasterdataInputError('invalid_mapping', 'invalid mapping: facility needs a column or a default');
  if (!m.columns.tax_rate && !m.defaults.tax_rate) throw new MasterdataInputError('invalid_mapping', 'invalid mapping: tax_rate needs a column or a default');
  return m;
}

const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;
const CSV_TABLE = 'md_csv';

/** The header line of the file (without a BOM), split. */
export function csvHeader(csv: string, delimiter: string): string[] {
  const text = csv.replace(/^\uFEFF/, '');
  const end = text.search(/\r?\n/);
  const line = end < 0 ? text : text.slice(0, end);
  if (line.trim() === '') throw new MasterdataInputError('invalid_csv', 'the file is empty: a header line is required');
  return splitCsvLine(line, delimiter).map((h) => h.trim());
}

/** Every header column named by the mapping, and every mapped column in the header; or the error naming the one that is not. */
export function checkHeader(header: string[], m: MasterCsvMapping): void {
  const mapped = new Set<string>([...Object.values(m.columns).filter((c): c is string => c !== undefined), ...Object.values(m.prices), ...m.ignore]);
  const unknown = header.filter((h) => !mapped.has(h));
  if (unknown.length > 0) {
    throw new MasterdataInputError('invalid_csv', `unknown column${unknown.length > 1 ? 's' : ''} ${unknown.map((u) => `"${u}"`).join(', ')}: `
      + 'not in the mapping (map it in columns or prices, or list it in ignore)');
  }
  const dups = header.filter((h, i) => header.indexOf(h) !== i);
  if (dups.length > 0) throw new MasterdataInputError('invalid_csv', `column "${dups[0]}" appears twice in the header`);
  for (const [field, col] of [...Object.entries(m.columns), ...Object.entries(m.prices).map(([g, c]) => [`prices.${g}`, c] as const)]) {
    if (col !== undefined && !header.includes(col)) throw new MasterdataInputError('invalid_csv', `column "${col}" (${field} in the mapping) is not in the header: ${header.join(', ')}`);
  }
}

/** The SQL that maps the raw CSV table's row `r` into the staging columns. */
function mappedSelect(header: string[], m: MasterCsvMapping): string {
  const c = (name: string | undefined, dflt?: string) => {
    if (name !== undefined) return `r.c${header.indexOf(name) + 1}`;
    return dflt === undefined ? 'NULL' : literal(dflt);
  };
  const k = m.columns;
  const prices = Object.entries(m.prices).map(([g, col]) => `(${literal(g)}, ${c(col)})`);
  const pricesExpr = prices.length === 0 ? 'NULL' : `(SELECT coalesce(jsonb_agg(jsonb_build_object('age_group', v.g, 'amount', v.a)), '[]')::text
      FROM (VALUES ${prices.join(', ')}) v(g, a) WHERE coalesce(v.a, '') <> '')`;
  const images = k.images ? `CASE WHEN coalesce(${c(k.images)}, '') = '' THEN NULL ELSE to_jsonb(string_to_array(${c(k.images)}, ${literal(m.images_separator)}))::text END` : 'NULL';
  return `SELECT (row_number() OVER (ORDER BY r.ctid) + 1)::int, ${c(k.product_code)}, ${c(k.plan_code, m.defaults.plan_code)}, ${c(k.facility, m.defaults.facility)},
    ${c(k.name)}, ${c(k.description)}, ${images}, ${c(k.hours)}, ${c(k.price)}, ${pricesExpr}, ${c(k.sale_from)}, ${c(k.sale_until)},
    ${c(k.capacity)}, ${c(k.cancellation_policy)}, ${c(k.tax_rate, m.defaults.tax_rate)}, NULL
    FROM ${CSV_TABLE} r`;
}

/** COPY the file as it is, then map it into the staging table; returns the rows. */
export async function stageCsv(tx: ClientBase, csv: string, m: MasterCsvMapping): Promise<number> {
  const header = csvHeader(csv, m.delimiter);
  checkHeader(header, m);
  await tx.query(`CREATE TEMP TABLE ${CSV_TABLE} (${header.map((_, i) => `c${i + 1} text`).join(', ')}) ON COMMIT DROP`);
  const delim = m.delimiter.replace(/'/g, "''");
  try {
    await copyIn(tx, `COPY ${CSV_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER '${delim}')`, Readable.from([csv.replace(/^\uFEFF/, '')]));
  } catch (e) {
    const pe = e as { message: string; where?: string };
    throw new MasterdataInputError('invalid_csv', `${pe.message}${pe.where ? ` (${pe.where.replace(CSV_TABLE, 'file')})` : ''}`);
  }
  await createStage(tx);
  const r = await tx.query(`INSERT INTO ${STAGE_TABLE} ${mappedSelect(header, m)}`);
  return r.rowCount ?? 0;
}
