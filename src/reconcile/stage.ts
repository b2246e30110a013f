// Staging of the other side's rows: streamed into a temporary table with COPY FROM STDIN, so a
// million rows cost one round trip and never sit in memory together. Temporary tables write no
// WAL and vanish with the run's transaction (ON COMMIT DROP), which is sound here: a run that
// dies is simply run again, and only its breaks are kept.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import type { ClientBase } from 'pg';

/** One row of the other side in canonical terms (`status`: paid | pending | failed | refunded). */
export interface ExternalRow {
  /** What both sides share: our reference (a deposit id) or their id, as the source decides. */
  key: string;
  externalId: string;
  amount: bigint | null;
  currency: string | null;
  status: string;
  /** When it happened at their side, ISO 8601. */
  at: string | null;
  /** Their row as they gave it, kept only where a repair can use it. */
  raw?: unknown;
}

/**
 * Their rows as a relation of (line, key, external_id, amount, currency, status, at, raw, bad), `line`
 * the row's ctid (the match reads a row again by it); its parameters follow the match's own.
 * `mayDiffer(i)`, where given, is an SQL test of the joined row `e` (the relation) against ours `i`:
 * true whenever the currency or the status may differ. It reads the columns as staged, so the
 * mapping's expressions are worked out only for the rows that need them (the clean rows, nearly
 * all, are told apart by comparing the staged text); without it the match compares `currency` and
 * `status` themselves.
 */
export interface ExternalRelation {
  sql: string;
  params: unknown[];
  mayDiffer?: (i: string) => string;
}

export const STAGE_TABLE = 'recon_ext';

/** The typed staging table (provider history, Zengin files). */
export const CREATE_STAGE = `CREATE TEMP TABLE ${STAGE_TABLE} (
  line bigint NOT NULL, key text NOT NULL, external_id text NOT NULL, amount bigint, currency text, status text NOT NULL,
  at timestamptz, raw jsonb) ON COMMIT DROP`;

// COPY text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
const SPECIAL = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
export const copyText = (v: string | null | undefined): string => (v === null || v === undefined ? '\\N' : v.replace(SPECIAL, (c) => ESCAPES[c]!));

function line(n: number, r: ExternalRow): string {
  return `${n}\t${copyText(r.key)}\t${copyText(r.externalId)}\t${r.amount === null ? '\\N' : r.amount.toString()}\t${copyText(r.currency)}\t`
    + `${copyText(r.status)}\t${copyText(r.at)}\t${r.raw === undefined ? '\\N' : copyText(JSON.stringify(r.raw))}\n`;
}

/** COPY `rows` into the staging table, in chunks of text; returns how many. */
export async function stageRows(tx: ClientBase, rows: AsyncIterable<ExternalRow> | Iterable<ExternalRow>, onRow?: (n: number) => void): Promise<number> {
  await tx.query(CREATE_STAGE);
  let n = 0;
  async function* chunks(): AsyncGenerator<string> {
    let buf = '';
    for await (const r of rows) {
      n++;
      buf += line(n, r);
      if (buf.length > 64 * 1024) {
        onRow?.(n);
        yield buf;
        buf = '';
      }
    }
    onRow?.(n);
    if (buf) yield buf;
  }
  await copyIn(tx, `COPY ${STAGE_TABLE} (line, key, external_id, amount, currency, status, at, raw) FROM STDIN`, Readable.from(chunks()));
  return n;
}

/** Pipes `source` into a COPY … FROM STDIN statement on this connection; returns the rows copied. */
export async function copyIn(tx: ClientBase, sql: string, source: NodeJS.ReadableStream): Promise<number> {
  const sink = tx.query(copyFrom(sql));
  await pipeline(source, sink);
  return sink.rowCount;
}
