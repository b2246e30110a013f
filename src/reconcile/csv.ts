// CSV files with a declared column mapping (a JSON file): which column holds the external id, our
// reference, the amount, currency, status and date, and what their status values mean. The file
// itself goes to PostgreSQL as it is, with COPY … (FORMAT csv): nothing is parsed row by row in
// JavaScript, and a malformed file fails the COPY (or the checks after it) with its line number.
import { open } from 'node:fs/promises';
import { z } from 'zod';
import type { Tx } from '../kernel/db.ts';
import { ReconcileInputError } from './errors.ts';
import { copyIn } from './stage.ts';
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
  statuses: z.record(z.string(), z.enum(CANONICAL_STATUSES)).refine((m) => Object.keys(m).length > 0, 'must map at least one status'),
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
  relation(offset: number): { sql: string; params: unknown[] };
  /** The first bad row, for a clear error when the match found one. */
  findBadRow(tx: Tx): Promise<string | null>;
}

export const CSV_TABLE = 'recon_csv';

/** COPY the file into a temporary table of text columns, one per header column. */
export async function stageCsv(tx: Tx, path: string, mapping: CsvMapping, openStream: () => NodeJS.ReadableStream): Promise<CsvStage> {
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
  // line: the row's number in the file (the header is line 1), from the identity's order of insertion.
  await tx.query(`CREATE TEMP TABLE ${CSV_TABLE} (line bigint GENERATED ALWAYS AS IDENTITY (START 2), ${columns}) ON COMMIT DROP`);
  await tx.query(`SELECT set_config('TimeZone', $1, true)`, [mapping.timezone]).catch(() => {
    throw new ReconcileInputError('invalid_mapping', `timezone: unknown time zone ${mapping.timezone}`);
  });
  const delim = mapping.delimiter.replace(/'/g, "''");
  const list = header.map((_, i) => `c${i + 1}`).join(', ');
  try {
    await copyIn(tx, `COPY ${CSV_TABLE} (${list}) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER '${delim}')`, openStream());
  } catch (e) {
    const pe = e as { message: string; where?: string };
    // PostgreSQL's own words name the line ("COPY recon_csv, line 7: …").
    throw new ReconcileInputError('invalid_csv', `${pe.message}${pe.where ? ` (${pe.where.replace(CSV_TABLE, 'file')})` : ''}`);
  }
  const rows = Number((await tx.query<{ n: string }>(`SELECT count(*) AS n FROM ${CSV_TABLE}`)).rows[0]!.n);
  const theirs = Object.keys(mapping.statuses);
  const ours = theirs.map((k) => mapping.statuses[k]!);
  const keyExpr = mapping.match === 'reference' ? `coalesce(nullif(${c.reference}, ''), 'external:' || ${c.externalId})` : `nullif(${c.externalId}, '')`;
  const bad = `${c.externalId} IS NULL OR ${c.externalId} = '' OR ${c.amount} IS NULL OR ${c.amount} !~ '^-?[0-9]{1,18}$' OR sm.ours IS NULL`;
  return {
    rows,
    relation(offset) {
      return {
        sql: `SELECT r.line, ${keyExpr} AS key, ${c.externalId} AS external_id,
            CASE WHEN ${c.amount} ~ '^-?[0-9]{1,18}$' THEN ${c.amount}::bigint END AS amount,
            ${c.currency ? `upper(${c.currency})` : `$${offset + 1}::text`} AS currency, sm.ours AS status,
            ${c.date}::timestamptz AS at, NULL::jsonb AS raw, (${bad}) AS bad
          FROM ${CSV_TABLE} r LEFT JOIN unnest($${offset + 2}::text[], $${offset + 3}::text[]) AS sm(theirs, ours) ON sm.theirs = r.${c.status}`,
        params: [mapping.currency, theirs, ours],
      };
    },
    async findBadRow(q) {
      const r = await q.query<{ line: string; ext: string | null; amount: string | null; status: string | null; ours: string | null }>(
        `SELECT r.line, r.${c.externalId} AS ext, r.${c.amount} AS amount, r.${c.status} AS status, sm.ours
         FROM ${CSV_TABLE} r LEFT JOIN unnest($1::text[], $2::text[]) AS sm(theirs, ours) ON sm.theirs = r.${c.status}
         WHERE ${bad} ORDER BY r.line LIMIT 1`, [theirs, ours]);
      const row = r.rows[0];
      if (!row) return null;
      if (!row.ext) return `line ${row.line}, column ${mapping.columns.external_id}: the external id is empty`;
      if (row.amount === null || !/^-?[0-9]{1,18}$/.test(row.amount)) {
        return `line ${row.line}, column ${mapping.columns.amount}: ${JSON.stringify(row.amount)} is not an amount in minor units (an integer)`;
      }
      return `line ${row.line}, column ${mapping.columns.status}: status ${JSON.stringify(row.status)} is not in the mapping's statuses (${theirs.join(', ')})`;
    },
  };
}
