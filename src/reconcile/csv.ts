// CSV files with a declared column mapping (a JSON file): which column holds the external id, our
// reference, the amount, currency, status and date, and what their status values mean. The file
// itself goes to PostgreSQL as it is, with COPY … (FORMAT csv): nothing is parsed row by row in
// JavaScript, and a malformed file fails the COPY (or the checks after it) with its line number.
import { open } from 'node:fs/promises';
import { z } from 'zod';
import type { ClientBase } from 'pg';
import { ReconcileInputError } from './errors.ts';
import { copyIn, type ExternalRelation } from './stage.ts';
import { CANONICAL_STATUSES } from './classes.ts';

const columnName = z.string().min(1).max(200);

export const csvMappingSchema = z.object({
  /** The provider whose deposits are our side of this file. */
  provider: z.string().min(1).max(100),
  delimiter: z.string().length(1).default(','),
  /**
   * What a row is matched on: their id against our `provider_payment_id` (default), or our own
   * reference (a deposit id in `columns.reference`).
   */
  match: z.enum(['external_id', 'reference']).default('external_id'),
  columns: z.object({
    external_id: columnName,
    reference: columnName.optional(),
    amount: columnName,
    currency: columnName.optional(),
    status: columnName,
    date: columnName,
  }).strict(),
  /** The currency of every row when the file has no currency column. */
  currency: z.string().regex(/^[A-Z]{3}$/).default('JPY'),
  /** Time zone of dates without one. */
  timezone: z.string().min(1).max(64).default('UTC'),
  /** Their status values → paid | pending | failed | refunded. */
  statuses: z.record(z.string().max(200).regex(/^[^\u0000]*$/, 'must not hold NUL'), z.enum(CANONICAL_STATUSES)).refine((m) => Object.keys(m).length > 0, 'must map at least one status'),
}).strict().refine((m) => m.match !== 'reference' || m.columns.reference !== undefined, { message: 'match "reference" needs columns.reference', path: ['columns', 'reference'] });
export type CsvMapping = z.output<typeof csvMappingSchema>;

export function parseCsvMapping(json: string): CsvMapping {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new ReconcileInputError('invalid_mapping', `the mapping is not JSON: ${(e as Error).message}`);
  }
  return checkCsvMapping(value);
}

export function checkCsvMapping(value: unknown): CsvMapping {
  const r = csvMappingSchema.safeParse(value);
  if (!r.success) throw new ReconcileInputError('invalid_mapping', `invalid mapping: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** A string as an SQL literal (standard_conforming_strings is on since PostgreSQL 9.1). */
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Splits one CSV line (RFC 4180 quoting) into fields. */
export function splitCsvLine(lineText: string, delimiter: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < lineText.length; i++) {
    const c = lineText[i]!;
    if (quoted) {
      if (c === '"' && lineText[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { out.push(cur); cur = ''; }
    else cur += c;
  }
  out.push(cur);
  return out;
}

async function readHeader(path: string): Promise<string> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new ReconcileInputError('invalid_csv', `cannot read ${path}: ${e.code ?? e.message}`);
  });
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '');
    const end = text.search(/\r?\n/);
    if (end < 0 && bytesRead === buf.length) throw new ReconcileInputError('invalid_csv', 'the header line is longer than 64 KiB');
    const header = end < 0 ? text : text.slice(0, end);
    if (header.trim() === '') throw new ReconcileInputError('invalid_csv', 'the file is empty: a header line is required');
    return header;
  } finally {
    await fh.close();
  }
}

export interface CsvStage {
  rows: number;
  /** The staged rows as `ExternalRow` columns; its parameters follow `offset`. */
  relation(offset: number): ExternalRelation;
  /** The first bad row, for a clear error when the match found one (or PostgreSQL refused a value: `refused`). */
  findBadRow(tx: ClientBase, refused?: string): Promise<string | null>;
}

export const CSV_TABLE = 'recon_csv';
/** The staged rows with their line in the file (the header is line 1). */
const NUMBERED = `(SELECT *, row_number() OVER (ORDER BY ctid) + 1 AS line FROM ${CSV_TABLE})`;

/** COPY the file into a temporary table of text columns, one per header column. */
export async function stageCsv(tx: ClientBase, path: string, mapping: CsvMapping, openStream: () => NodeJS.ReadableStream): Promise<CsvStage> {
  const header = splitCsvLine(await readHeader(path), mapping.delimiter).map((h) => h.trim());
  const col = (name: string | undefined, what: string): string | null => {
    if (name === undefined) return null;
    const i = header.indexOf(name);
    if (i < 0) throw new ReconcileInputError('invalid_csv', `column "${name}" (${what} in the mapping) is not in the header: ${header.join(', ')}`);
    return `c${i + 1}`;
  };
  const c = {
    externalId: col(mapping.columns.external_id, 'external_id')!, reference: col(mapping.columns.reference, 'reference'),
    amount: col(mapping.columns.amount, 'amount')!, currency: col(mapping.columns.currency, 'currency'),
    status: col(mapping.columns.status, 'status')!, date: col(mapping.columns.date, 'date')!,
  };
  const columns = header.map((_, i) => `c${i + 1} text`).join(', ');
  // No line column: COPY appends in file order, so a row's ctid orders it, and its line number is
  // worked out only when an error must name it.
  await tx.query(`CREATE TEMP TABLE ${CSV_TABLE} (${columns}) ON COMMIT DROP`);
  await tx.query(`SELECT set_config('TimeZone', $1, true)`, [mapping.timezone]).catch(() => {
    throw new ReconcileInputError('invalid_mapping', `timezone: unknown time zone ${mapping.timezone}`);
  });
  const delim = mapping.delimiter.replace(/'/g, "''");
  const list = header.map((_, i) => `c${i + 1}`).join(', ');
  let rows: number;
  try {
    rows = await copyIn(tx, `COPY ${CSV_TABLE} (${list}) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER '${delim}')`, openStream());
  } catch (e) {
    const pe = e as { message: string; where?: string };
    // PostgreSQL's own words name the line ("COPY recon_csv, line 7: …").
    throw new ReconcileInputError('invalid_csv', `${pe.message}${pe.where ? ` (${pe.where.replace(CSV_TABLE, 'file')})` : ''}`);
  }
  const theirs = Object.keys(mapping.statuses);
  // The status map as a CASE over literals: per row a few byte comparisons, cheaper than a join.
  const statusOf = (col: string) => `CASE ${col} ${theirs.map((t) => `WHEN ${literal(t)} THEN ${literal(mapping.statuses[t]!)}`).join(' ')} END`;
  const statusExpr = statusOf(`r.${c.status}`);
  const keyExpr = mapping.match === 'reference' ? `coalesce(nullif(r.${c.reference}, ''), 'external:' || r.${c.externalId})` : `nullif(r.${c.externalId}, '')`;
  // Checked in the match itself without a pattern per row: an empty id or an unmapped status marks
  // the row bad, an amount or date PostgreSQL cannot read fails the cast; either way findBadRow
  // then names the first bad line.
  const bad = `r.${c.externalId} IS NULL OR r.${c.externalId} = '' OR r.${c.amount} IS NULL OR (${statusExpr}) IS NULL`;
  const badRow = `${bad} OR r.${c.amount} !~ '^-?[0-9]{1,18}$' OR r.${c.date} IS NULL OR r.${c.date} = ''`;
  return {
    rows,
    relation(offset) {
      const currencyOf = (col: string) => (c.currency ? `coalesce(upper(nullif(${col}, '')), $${offset + 1}::text)` : `$${offset + 1}::text`);
      return {
        // The date stays text here: it is read (and refused if unreadable) where it is used, for the
        // window of a file without one, and for the breaks' occurred_at.
        sql: `SELECT r.ctid AS line, ${keyExpr} AS key, r.${c.externalId} AS external_id, r.${c.amount}::bigint AS amount,
            ${currencyOf(`r.${c.currency}`)} AS currency, ${statusExpr} AS status, r.${c.date} AS at, NULL::jsonb AS raw, (${bad}) AS bad,
            ${c.currency ? `r.${c.currency}` : 'NULL::text'} AS currency_text, r.${c.status} AS status_text
          FROM ${CSV_TABLE} r`,
        params: [mapping.currency],
        // A currency as staged that equals ours is the same currency: ours is upper case (deposits'
        // CHECK), so upper() would not change it. Only the others are upper-cased here.
        mayDiffer: (i) => `${c.currency ? `(e.currency_text IS DISTINCT FROM ${i}.currency AND ${currencyOf('e.currency_text')} IS DISTINCT FROM ${i}.currency)` : `${currencyOf('')} IS DISTINCT FROM ${i}.currency`}
          OR ${statusOf('e.status_text')} IS DISTINCT FROM ${i}.status`,
      };
    },
    async findBadRow(q, refused) {
      // "invalid input syntax for type timestamp with time zone: "31/13/2026"": find the line that holds it.
      const value = refused && /: "(.*)"$/.exec(refused)?.[1];
      if (value !== undefined && value !== null && value !== '') {
        const hit = await q.query<{ line: string; col: string }>(
          `SELECT line, CASE WHEN r.${c.date} = $1 THEN 'date' ELSE 'amount' END AS col FROM ${NUMBERED} r
           WHERE r.${c.date} = $1 OR r.${c.amount} = $1 ORDER BY line LIMIT 1`, [value]);
        const h = hit.rows[0];
        if (h) return `line ${h.line}, column ${h.col === 'date' ? mapping.columns.date : mapping.columns.amount}: cannot read ${JSON.stringify(value)} as ${h.col === 'date' ? 'a date' : 'an amount in minor units (an integer)'}`;
      }
      const r = await q.query<{ line: string; ext: string | null; amount: string | null; status: string | null; ours: string | null; date: string | null }>(
        `SELECT r.line, r.${c.externalId} AS ext, r.${c.amount} AS amount, r.${c.status} AS status, ${statusExpr} AS ours, r.${c.date} AS date
         FROM ${NUMBERED} r WHERE ${badRow} ORDER BY r.line LIMIT 1`);
      const row = r.rows[0];
      if (!row) return null;
      if (!row.ext) return `line ${row.line}, column ${mapping.columns.external_id}: the external id is empty`;
      if (row.amount === null || !/^-?[0-9]{1,18}$/.test(row.amount)) {
        return `line ${row.line}, column ${mapping.columns.amount}: ${JSON.stringify(row.amount)} is not an amount in minor units (an integer)`;
      }
      if (row.ours === null) return `line ${row.line}, column ${mapping.columns.status}: status ${JSON.stringify(row.status)} is not in the mapping's statuses (${theirs.join(', ')})`;
      return `line ${row.line}, column ${mapping.columns.date}: the date is empty`;
    },
  };
}
