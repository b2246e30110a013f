// Reading runs and breaks back: for the admin API, its CSV export and the CLI.
import type { Queryable } from '../kernel/db.ts';
import type { BreakClass } from './classes.ts';

const RUN_COLUMNS = `id, source, scope, provider, file_name, window_from, window_to, status, trigger, external_rows, internal_rows,
  counts, repairs, timings, error, started_at, finished_at`;

export interface RunRow {
  id: string; source: string; scope: string; provider: string | null; file_name: string | null; window_from: Date | null; window_to: Date | null;
  status: string; trigger: string; external_rows: string; internal_rows: string; counts: Record<string, number>; repairs: Record<string, number>;
  timings: Record<string, number>; error: string | null; started_at: Date; finished_at: Date | null;
}

const runMessage = (r: RunRow) => ({
  ...r, external_rows: Number(r.external_rows), internal_rows: Number(r.internal_rows),
  window_from: r.window_from?.toISOString() ?? null, window_to: r.window_to?.toISOString() ?? null,
  started_at: r.started_at.toISOString(), finished_at: r.finished_at?.toISOString() ?? null,
});
export type RunMessage = ReturnType<typeof runMessage>;

/** Up to `limit` runs, newest first; `before` is the last id of the previous page. */
export async function listRuns(q: Queryable, o: { scope?: string | undefined; limit: number; before?: string | undefined }): Promise<RunMessage[]> {
  const r = await q.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM reconcile_runs WHERE ($1::text IS NULL OR scope = $1) AND ($2::uuid IS NULL OR id < $2)
     ORDER BY id DESC LIMIT $3`, [o.scope ?? null, o.before ?? null, o.limit]);
  return r.rows.map(runMessage);
}

export async function getRun(q: Queryable, id: string): Promise<RunMessage | null> {
  const r = await q.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM reconcile_runs WHERE id = $1`, [id]);
  return r.rows[0] ? runMessage(r.rows[0]) : null;
}

export interface BreakFilter { runId: string; class?: BreakClass | undefined; /** The last id of the previous page. */ after?: string | undefined; limit: number }

const BREAK_COLUMNS = `id::text, run_id, first_run_id, scope, provider, class, match_key, status, external_id, internal_type, internal_id,
  external_amount::text, internal_amount::text, currency, external_status, internal_status, external_count, occurred_at, seen_count,
  repair, repair_ref, repaired_at, case_id, first_seen_at, last_seen_at, resolved_at`;

interface BreakRowOut { id: string; occurred_at: Date | null; repaired_at: Date | null; first_seen_at: Date; last_seen_at: Date; resolved_at: Date | null; [k: string]: unknown }
const iso = (d: Date | null) => d?.toISOString() ?? null;
const breakMessage = (b: BreakRowOut) => ({
  ...b, occurred_at: iso(b.occurred_at), repaired_at: iso(b.repaired_at), first_seen_at: b.first_seen_at.toISOString(),
  last_seen_at: b.last_seen_at.toISOString(), resolved_at: iso(b.resolved_at),
});

// A run's breaks are the ones it saw last (a break seen again by a later run moves to that run),
// in id order (the order they were found).
const BREAKS = `SELECT ${BREAK_COLUMNS} FROM reconcile_breaks
  WHERE run_id = $1 AND ($2::text IS NULL OR class = $2) AND ($3::bigint IS NULL OR id > $3) ORDER BY reconcile_breaks.id LIMIT $4`;

/** Up to `limit` of a run's breaks, in id order; `after` is the last id of the previous page. */
export async function listBreaks(q: Queryable, f: BreakFilter): Promise<ReturnType<typeof breakMessage>[]> {
  const r = await q.query<BreakRowOut>(BREAKS, [f.runId, f.class ?? null, f.after ?? null, f.limit]);
  return r.rows.map(breakMessage);
}

const CSV_FIELDS = ['id', 'class', 'status', 'scope', 'external_id', 'internal_type', 'internal_id', 'external_amount', 'internal_amount', 'currency',
  'external_status', 'internal_status', 'external_count', 'occurred_at', 'repair', 'repair_ref', 'case_id', 'seen_count', 'first_seen_at'] as const;

const csvCell = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const s = v instanceof Date ? v.toISOString() : String(v);
  // Quoted when needed; a leading = + - @ is prefixed so a spreadsheet never runs it as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d+$/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

/** A run's breaks as CSV (RFC 4180), page by page so a large run is never held whole. */
export async function* breaksCsv(q: Queryable, runId: string, cls?: BreakClass): AsyncGenerator<string> {
  yield `${CSV_FIELDS.join(',')}\r\n`;
  let after: string | null = null;
  for (;;) {
    const r: { rows: BreakRowOut[] } = await q.query<BreakRowOut>(BREAKS, [runId, cls ?? null, after, 1000]);
    if (r.rows.length === 0) return;
    yield r.rows.map((b) => `${CSV_FIELDS.map((f) => csvCell(b[f])).join(',')}\r\n`).join('');
    after = r.rows[r.rows.length - 1]!.id;
  }
}
