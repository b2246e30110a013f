// One reconciliation run (リコンサイル, 定期的な突合):
//   1. stage the other side's rows with COPY into a temporary table (streamed);
//   2. compare them with our side in ONE statement: a narrow pass for the keys they hold twice (as
//      sorted hashes), one hash full join of their rows (not grouped) with ours in the window
//      carrying only key, amount, currency, status and row ids, which counts the clean keys and
//      gathers the ids of the few unclean rows; those rows alone are read again (by ctid), looked
//      up by key where ours lies outside the window, grouped by key, classified, and the breaks
//      written (one open break per scope, class and key: a re-run changes the existing row, never
//      adds one);
//   3. resolve the open breaks of the same scope and window (and, for a bank file, of the accounts
//      it covers) that this run no longer sees;
//   4. record the run, commit; then repair (repair.ts).
// Steps 1–4 are one transaction on one connection: a run that fails leaves no breaks, a malformed
// input leaves nothing at all.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import pg from 'pg';
import { uuidv7 } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import type { InboxWriter } from '../intake/index.ts';
import type { Operations } from '../operations/index.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import { parseTransferNotice, type TransferNoticeGroup, type ZenginEncoding } from '../providers/zengin/index.ts';
import { emptyCounts, type BreakClass, type RepairCounts, type RunCounts, type RunSource } from './classes.ts';
import { stageCsv, type CsvMapping } from './csv.ts';
import type { BankTransferPolicy } from '../deposits/index.ts';
import { ReconcileInputError } from './errors.ts';
import { repairRun } from './repair.ts';
import {
  BREAK_COVERED, bankTransfersSide, coverParams, CREATE_COVER, depositsSide, historyRows, INSERT_COVER, zenginRows, type InternalSide,
} from './sources.ts';
import { STAGE_TABLE, stageRows, type ExternalRelation } from './stage.ts';

export interface ReconcileDeps {
  pool: pg.Pool;
  providers: ProviderRegistry;
  inboxWriter: InboxWriter;
  operations: Operations;
  log: Logger;
  /** How a missing bank transfer is imported: the file import's policy (the configured limit). */
  bankTransferPolicy: BankTransferPolicy;
}

export type ReconcileRequest =
  | { source: 'provider'; provider: string; from: Date; to: Date }
  | { source: 'csv'; file: string; mapping: CsvMapping; from?: Date | undefined; to?: Date | undefined }
  | { source: 'zengin'; file: string; encoding?: ZenginEncoding | undefined; from?: Date | undefined; to?: Date | undefined }
  | { source: 'deliveries'; from: Date; to: Date; deadlineMs?: number | undefined };

export interface Progress {
  phase: 'stage' | 'match' | 'repair' | 'done';
  rows: number;
  /** Share of the input read, where its size is known (files). */
  fraction?: number;
}

export interface ReconcileOptions {
  trigger?: 'manual' | 'schedule' | 'api';
  /** Feed notifications, ask for inquiries and open cases after the match (default true). */
  repair?: boolean;
  /** Our rows this far beyond the window still count as counterparts (default 1 day). */
  slackMs?: number;
  /** work_mem and temp_buffers of the run's connection (default 256MB each): PostgreSQL's memory, not this process's. */
  workMem?: string;
  tempBuffers?: string;
  /** A repaired break seen again this long after its repair opens a case (default 10 min). */
  escalateAfterMs?: number;
  onProgress?: (p: Progress) => void;
}

export interface RunSummary {
  id: string;
  source: RunSource;
  scope: string;
  provider: string | null;
  file: string | null;
  window: { from: string; to: string };
  status: 'succeeded' | 'failed';
  external_rows: number;
  internal_rows: number;
  counts: RunCounts;
  breaks: number;
  resolved: number;
  repairs: RepairCounts;
  timings_ms: { stage: number; match: number; repair: number; total: number };
}

const DAY = 86_400_000;

interface Staged {
  scope: string;
  provider: string | null;
  file: string | null;
  rows: number;
  side: InternalSide | null;
  relation: (offset: number) => ExternalRelation;
  from: Date;
  to: Date;
  findBadRow?: (tx: pg.ClientBase, refused?: string) => Promise<string | null>;
  /** The run covers only some accounts (a bank file's, staged in COVER_TABLE): it resolves only their breaks. */
  covered?: boolean;
}

const stagedRelation = () => ({ sql: `SELECT ctid AS line, key, external_id, amount, currency, status, at, raw, false AS bad FROM ${STAGE_TABLE}`, params: [] });

async function stage(tx: pg.ClientBase, deps: ReconcileDeps, req: ReconcileRequest, progress: (rows: number, fraction?: number) => void): Promise<Staged> {
  switch (req.source) {
    case 'provider': {
      const adapter = deps.providers.get(req.provider);
      if (!adapter) throw new ReconcileInputError('unknown_provider', `no provider "${req.provider}" is configured`);
      if (!adapter.history) throw new ReconcileInputError('no_history', `provider "${req.provider}" (${adapter.kind}) has no history to reconcile against`);
      const rows = await stageRows(tx, historyRows(adapter, req.from, req.to), progress);
      return { scope: `provider:${req.provider}`, provider: req.provider, file: null, rows, side: depositsSide('reference'), relation: stagedRelation, from: req.from, to: req.to };
    }
    case 'zengin': {
      const bytes = await readFile(req.file).catch((e: NodeJS.ErrnoException) => {
        throw new ReconcileInputError('invalid_transfer_notice', `cannot read ${req.file}: ${e.code ?? e.message}`);
      });
      const parsed = parseTransferNotice(bytes, req.encoding ? { encoding: req.encoding } : {});
      if (!parsed.ok) throw new ReconcileInputError('invalid_transfer_notice', `line ${parsed.error.line}, ${parsed.error.field}: ${parsed.error.message}`);
      const rows = await stageRows(tx, zenginRows(parsed.value.transfers), progress);
      await tx.query(CREATE_COVER);
      await tx.query(INSERT_COVER, coverParams(parsed.value.groups));
      const w = zenginWindow(parsed.value.groups, req.from, req.to);
      return { scope: 'zengin', provider: null, file: req.file, rows, side: bankTransfersSide, relation: stagedRelation, covered: true, ...w };
    }
    case 'csv': {
      const size = (await stat(req.file).catch(() => ({ size: 0 }))).size;
      const csv = await stageCsv(tx, req.file, req.mapping, () => {
        let read = 0;
        return createReadStream(req.file).on('data', (chunk) => {
          read += chunk.length;
          progress(0, size > 0 ? read / size : undefined);
        });
      });
      progress(csv.rows, 1);
      const w = await fileWindow(tx, csv.relation(0), req.from, req.to);
      return {
        scope: `csv:${req.mapping.provider}`, provider: req.mapping.provider, file: req.file, rows: csv.rows, side: depositsSide(req.mapping.match),
        relation: csv.relation, findBadRow: csv.findBadRow, ...w,
      };
    }
    case 'deliveries':
      return { scope: 'deliveries', provider: null, file: null, rows: 0, side: null, relation: stagedRelation, from: req.from, to: req.to };
  }
}

/**
 * A CSV file's window: as given, or the whole days its rows span, from the first row's day to the
 * last row's, in the mapping's time zone (the session's, set by stageCsv). A statement export
 * covers whole days; a day after its last row is not covered (and its deposits not missing there).
 */
async function fileWindow(tx: pg.ClientBase, rel: { sql: string; params: unknown[] }, from?: Date, to?: Date): Promise<{ from: Date; to: Date }> {
  if (from && to) return { from, to };
  const r = await tx.query<{ min: Date | null; end: Date | null }>(
    `SELECT date_trunc('day', min(at::timestamptz)) AS min, date_trunc('day', max(at::timestamptz)) + interval '1 day' AS end
     FROM (${rel.sql}) x`, rel.params);
  const min = r.rows[0]!.min ?? new Date();
  return { from: from ?? min, to: to ?? r.rows[0]!.end ?? min };
}

/** A Zengin file's window: as given, or its headers' 勘定日 range, whole days in Japan. */
function zenginWindow(groups: readonly TransferNoticeGroup[], from?: Date, to?: Date): { from: Date; to: Date } {
  const first = groups.map((g) => g.header.accountingFrom).sort()[0]!;
  const last = groups.map((g) => g.header.accountingTo).sort().at(-1)!;
  return { from: from ?? new Date(`${first}T00:00:00+09:00`), to: to ?? new Date(Date.parse(`${last}T00:00:00+09:00`) + DAY) };
}

// $1 run, $2 scope, $3 window from, $4 window to, $5 provider, $6/$7 the window widened by the
// slack (our side's rows); their relation's parameters follow.
// One open break per (scope, class, key): runs of one scope are serialized by an advisory lock;
// without open breaks in the scope the breaks are inserted here, otherwise (`upsert`) they are
// merged by UPSERT_BREAKS.
function matchStatement(side: InternalSide, ext: ExternalRelation, upsert: boolean): string {
  return `
WITH d AS (
  -- The keys they hold more than once, as 64-bit hashes of the key: a narrow pass that sorts the
  -- hashes (by value, in memory) and counts the runs, cheaper at a million rows than a hash table
  -- of a million text keys. A hash shared by two keys only sends a clean row to be read again and
  -- classified below, where it is found clean.
  SELECT h FROM (SELECT hashtextextended(key, 0) AS h FROM (${ext.sql}) x ORDER BY 1) x GROUP BY h HAVING count(*) > 1
), i AS NOT MATERIALIZED (${side.window}
), agg AS (
  -- One hash full join of their rows as they are (not grouped) with ours in the window, carrying
  -- only what decides "clean": the key, amount, currency, status and each row's id. Clean keys
  -- (one row each side, the same amount, currency and status) are only counted; the rows of the
  -- few that are not are gathered by row id, and only those are read again and classified below.
  SELECT count(*)::int AS all_rows, count(i.tid)::int AS all_internal,
    array_agg(ROW(coalesce(e.key, i.key), e.line, i.tid)) FILTER (WHERE e.line IS NULL OR i.tid IS NULL OR e.amount IS DISTINCT FROM i.amount
      OR ${ext.mayDiffer ? ext.mayDiffer('i') : 'e.currency IS DISTINCT FROM i.currency OR e.status IS DISTINCT FROM i.status'} OR hashtextextended(e.key, 0) IN (SELECT h FROM d)) AS rows
  FROM (${ext.sql}) e FULL JOIN i ON i.key = e.key
), w AS (
  -- The gathered rows read again by row id (their unreadable rows among them: every unreadable
  -- row is unclean); ours outside the window looked up by key where the side can.
  SELECT u.key, u.line IS NOT NULL AS has_e, u.tid IS NOT NULL AS in_window, x.external_id, x.amount AS e_amount, x.currency AS e_currency,
    x.status AS e_status, x.at AS e_at, coalesce(x.bad, false) AS bad,
    ${side.lookup ? `coalesce(y.id, lk.id) AS i_id, coalesce(y.amount, lk.amount) AS i_amount, coalesce(y.currency, lk.currency) AS i_currency,
    coalesce(y.status, lk.status) AS i_status, coalesce(y.raw_status, lk.raw_status) AS raw_status, coalesce(y.at, lk.at) AS i_at,
    (y.tid IS NOT NULL OR lk.id IS NOT NULL) AS has_i` : 'y.id AS i_id, y.amount AS i_amount, y.currency AS i_currency, y.status AS i_status, y.raw_status, y.at AS i_at, y.tid IS NOT NULL AS has_i'}
  FROM agg CROSS JOIN LATERAL unnest(agg.rows) AS u(key text, line tid, tid tid)
  LEFT JOIN LATERAL (SELECT * FROM (${ext.sql}) x WHERE x.line = u.line) x ON true
  LEFT JOIN LATERAL (SELECT * FROM i WHERE i.tid = u.tid) y ON true${side.lookup ? `
  LEFT JOIN LATERAL (SELECT * FROM (${side.lookup('u.key')}) l WHERE u.tid IS NULL) lk ON true` : ''}
), g AS (
  -- The unclean keys, one row each (a key held n times there: its n rows, counted here).
  SELECT w.key AS match_key, min(w.external_id COLLATE "C") AS external_id, min(w.i_id::text COLLATE "C") AS internal_id,
    min(w.e_amount) AS external_amount, min(w.i_amount) AS internal_amount, min(w.e_currency COLLATE "C") AS their_currency,
    min(w.i_currency COLLATE "C") AS our_currency, min(w.e_status COLLATE "C") AS external_status, min(w.i_status COLLATE "C") AS our_status,
    min(w.raw_status COLLATE "C") AS internal_status, count(*) FILTER (WHERE w.has_e)::int AS external_count,
    coalesce(min(w.e_at::text COLLATE "C")::timestamptz, min(w.i_at)) AS occurred_at, bool_or(w.has_i) AS has_internal,
    count(*) FILTER (WHERE w.in_window)::int AS window_rows
  FROM w WHERE NOT w.bad GROUP BY w.key
), brk AS (
  SELECT * FROM (
    SELECT g.*, CASE
      WHEN g.external_count > 1 THEN 'duplicate_there'
      WHEN g.external_count = 0 THEN CASE WHEN g.occurred_at >= $3 AND g.occurred_at < $4
        AND (g.our_status = 'paid' OR g.internal_status IN ('unknown', 'awaiting_payment', 'paid_preliminary')) THEN 'missing_there' END
      WHEN NOT g.has_internal THEN CASE WHEN g.external_status = 'paid' THEN 'missing_here' END
      WHEN g.external_amount IS DISTINCT FROM g.internal_amount OR g.their_currency IS DISTINCT FROM g.our_currency THEN 'amount_mismatch'
      WHEN g.external_status = 'paid' AND g.our_status = 'pending' THEN 'missing_here'
      -- Else clean after all: ours found outside the window by the look-up.
      WHEN g.external_status IS DISTINCT FROM g.our_status THEN 'status_mismatch'
    END AS class
    FROM g
  ) x WHERE class IS NOT NULL
)${upsert ? `, ins AS (
  -- Open breaks exist in this scope: the breaks found go to a temporary table, and two more
  -- statements (planned with its real size) update the ones seen again and insert the rest.
  INSERT INTO ${PENDING_BREAKS} SELECT $1, $2, $5, class, match_key, external_id, internal_id, external_amount, internal_amount,
    coalesce(their_currency, our_currency), external_status, internal_status, external_count, occurred_at FROM brk
)` : `, ins AS (
  INSERT INTO reconcile_breaks (scope, provider, class, match_key, run_id, first_run_id, external_id, internal_type, internal_id,
    external_amount, internal_amount, currency, external_status, internal_status, external_count, occurred_at)
  SELECT $2, $5, class, match_key, $1, $1, external_id, CASE WHEN internal_id IS NOT NULL THEN '${side.type}' END, internal_id,
    external_amount, internal_amount, coalesce(their_currency, our_currency), external_status, internal_status, external_count, occurred_at
  FROM brk
)`}
SELECT class, count(*)::int AS n, 0 AS bad, 0 AS internal FROM brk GROUP BY class
UNION ALL
SELECT 'matched', agg.all_rows - coalesce(cardinality(agg.rows), 0) + (SELECT count(*) FROM g)::int - (SELECT count(*) FROM brk)::int,
  (SELECT count(*) FROM w WHERE bad)::int, agg.all_internal - (SELECT coalesce(sum(window_rows - has_internal::int), 0) FROM g)::int
FROM agg`;
}

// HTTP callbacks to internal services: each must end acknowledged (delivered). Dead ones,
// and ones still unacknowledged past the deadline ($6), are missing there: the service never got them.
const DELIVERIES_MATCH = `
WITH cls AS (
  SELECT d.id::text AS key, d.status, d.created_at, CASE
    WHEN d.status = 'dead' THEN 'missing_there'
    WHEN d.status IN ('pending', 'sending') AND d.created_at < $6 THEN 'missing_there'
  END AS class
  FROM deliveries d WHERE d.target_type = 'http' AND d.status <> 'cancelled' AND d.created_at >= $3 AND d.created_at < $4
), found AS (
  -- Only the breaks meet the open ones: a few rows on each side, whatever plan joins them.
  SELECT key, class, status, created_at FROM cls WHERE class IS NOT NULL
), ex AS (
  SELECT id, match_key FROM reconcile_breaks WHERE scope = $2 AND status = 'open' AND class = 'missing_there'
), upd AS (
  UPDATE reconcile_breaks b SET run_id = $1, seen_count = b.seen_count + 1, last_seen_at = now(), internal_status = found.status
  FROM ex JOIN found ON found.key = ex.match_key WHERE b.id = ex.id
), ins AS (
  INSERT INTO reconcile_breaks (scope, provider, class, match_key, run_id, first_run_id, internal_type, internal_id, internal_status, occurred_at)
  SELECT $2, $5, class, key, $1, $1, 'delivery', key, status, created_at FROM found
  WHERE NOT EXISTS (SELECT 1 FROM ex WHERE ex.match_key = found.key)
)
SELECT coalesce(class, 'matched') AS class, count(*)::int AS n, 0 AS bad, count(*)::int AS internal FROM cls GROUP BY 1`;

const PENDING_BREAKS = 'recon_found';
const CREATE_PENDING = `CREATE TEMP TABLE ${PENDING_BREAKS} (run_id uuid, scope text, provider text, class text, match_key text, external_id text,
  internal_id text, external_amount bigint, internal_amount bigint, currency text, external_status text, internal_status text,
  external_count int, occurred_at timestamptz) ON COMMIT DROP`;
// $1 the internal type: the breaks seen again are updated, the others inserted.
const UPSERT_BREAKS = [`
UPDATE reconcile_breaks b SET run_id = f.run_id, provider = f.provider, seen_count = b.seen_count + 1, last_seen_at = now(),
  external_id = f.external_id, internal_type = CASE WHEN f.internal_id IS NOT NULL THEN $1 END, internal_id = f.internal_id,
  external_amount = f.external_amount, internal_amount = f.internal_amount, external_status = f.external_status,
  internal_status = f.internal_status, external_count = f.external_count
FROM ${PENDING_BREAKS} f WHERE b.scope = f.scope AND b.status = 'open' AND b.class = f.class AND b.match_key = f.match_key`, `
INSERT INTO reconcile_breaks (scope, provider, class, match_key, run_id, first_run_id, external_id, internal_type, internal_id,
  external_amount, internal_amount, currency, external_status, internal_status, external_count, occurred_at)
SELECT f.scope, f.provider, f.class, f.match_key, f.run_id, f.run_id, f.external_id, CASE WHEN f.internal_id IS NOT NULL THEN $1 END,
  f.internal_id, f.external_amount, f.internal_amount, f.currency, f.external_status, f.internal_status, f.external_count, f.occurred_at
FROM ${PENDING_BREAKS} f
WHERE NOT EXISTS (SELECT 1 FROM reconcile_breaks b WHERE b.scope = f.scope AND b.status = 'open' AND b.class = f.class AND b.match_key = f.match_key)`];

const RESOLVE = `
UPDATE reconcile_breaks SET status = 'resolved', resolved_at = now(), resolved_run_id = $1
WHERE scope = $2 AND status = 'open' AND run_id <> $1 AND occurred_at >= $3 AND occurred_at < $4`;
// A run over some accounts only (a bank file) resolves only their breaks.
const RESOLVE_COVERED = `${RESOLVE} AND ${BREAK_COVERED}`;

// Their row as they gave it, on the breaks (a repair, or a case's re-import, replays it).
const ATTACH_RAW = `
UPDATE reconcile_breaks b SET external_raw = x.raw FROM ${STAGE_TABLE} x
WHERE b.run_id = $1 AND x.external_id = b.external_id AND x.raw IS NOT NULL`;

export async function runReconcile(deps: ReconcileDeps, req: ReconcileRequest, opts: ReconcileOptions = {}): Promise<RunSummary> {
  const t0 = performance.now();
  // The run's real start; the rows are written in a transaction whose now() would be its own start, and
  // finished_at comes from clock_timestamp() once the repairs are done.
  const startedAt = new Date();
  const id = uuidv7();
  const report = (phase: Progress['phase'], rows: number, fraction?: number) => opts.onProgress?.({ phase, rows, ...(fraction === undefined ? {} : { fraction }) });
  if ('from' in req && req.from && req.to && !(req.from < req.to)) throw new ReconcileInputError('invalid_window', '--from must be before --to');
  // A connection of its own, with room for the run's temporary table and hash tables in the
  // server's memory (temp_buffers can only be set before a session first touches a temporary table).
  const settings = `-c temp_buffers=${opts.tempBuffers ?? '256MB'} -c work_mem=${opts.workMem ?? '256MB'}`;
  const client = new pg.Client({ ...deps.pool.options, options: [deps.pool.options.options, settings].filter(Boolean).join(' ') });
  client.on('error', (e) => deps.log.warn({ runId: id, err: e.message }, 'reconcile connection failed'));
  await client.connect();
  let staged: Staged | undefined;
  let counts = emptyCounts();
  let internalRows = 0;
  let resolved = 0;
  let tStage = 0;
  let tMatch = 0;
  try {
    await client.query('BEGIN');
    staged = await stage(client, deps, req, (rows, fraction) => report('stage', rows, fraction));
    // One run per scope at a time: its breaks are upserted and resolved as a whole.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`reconcile:${staged.scope}`]);
    const upsert = (await client.query('SELECT 1 FROM reconcile_breaks WHERE scope = $1 AND status = $2 LIMIT 1', [staged.scope, 'open'])).rowCount !== 0;
    if (upsert && staged.side) await client.query(CREATE_PENDING);
    tStage = performance.now() - t0;
    await client.query(
      `INSERT INTO reconcile_runs (id, source, scope, provider, file_name, window_from, window_to, trigger, external_rows, started_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [id, req.source, staged.scope, staged.provider, staged.file, staged.from, staged.to, opts.trigger ?? 'manual', staged.rows, startedAt]);
    report('match', staged.rows);
    const slack = opts.slackMs ?? DAY;
    const base: unknown[] = [id, staged.scope, staged.from, staged.to, staged.provider];
    if (req.source === 'deliveries') base.push(new Date(Date.now() - (req.deadlineMs ?? DAY)));
    else base.push(new Date(staged.from.getTime() - slack), new Date(staged.to.getTime() + slack));
    let sql: string;
    let params: unknown[];
    if (staged.side) {
      const ext = staged.relation(base.length);
      sql = matchStatement(staged.side, ext, upsert);
      params = [...base, ...ext.params];
    } else {
      sql = DELIVERIES_MATCH;
      params = base;
    }
    let rows: { class: 'matched' | BreakClass; n: number; bad: number; internal: number }[];
    try {
      await client.query('SAVEPOINT recon_match');
      rows = (await client.query<{ class: 'matched' | BreakClass; n: number; bad: number; internal: number }>(sql, params)).rows;
    } catch (e) {
      const code = (e as { code?: string }).code;
      // 22xxx: a value their file holds that PostgreSQL cannot read as what the mapping says (a date, say).
      if (staged.findBadRow && code?.startsWith('22')) {
        await client.query('ROLLBACK TO SAVEPOINT recon_match');
        throw new ReconcileInputError('invalid_csv', (await staged.findBadRow(client, (e as Error).message)) ?? `the file holds a value that cannot be read: ${(e as Error).message}`);
      }
      throw e;
    }
    if (rows.some((r) => r.bad > 0)) throw new ReconcileInputError('invalid_csv', (await staged.findBadRow?.(client)) ?? 'the file holds rows that cannot be read');
    if (upsert && staged.side) {
      await client.query(`ANALYZE ${PENDING_BREAKS}`);
      for (const q of UPSERT_BREAKS) await client.query(q, [staged.side.type]);
    }
    counts = emptyCounts();
    for (const r of rows) {
      counts[r.class] += r.n;
      internalRows += r.internal;
    }
    if (req.source === 'provider' || req.source === 'zengin') await client.query(ATTACH_RAW, [id]);
    resolved = (await client.query(staged.covered ? RESOLVE_COVERED : RESOLVE, [id, staged.scope, staged.from, staged.to])).rowCount ?? 0;
    tMatch = performance.now() - t0 - tStage;
    await client.query(
      `UPDATE reconcile_runs SET status = 'succeeded', counts = $2, internal_rows = $3, finished_at = clock_timestamp(),
         timings = jsonb_build_object('stage', $4::int, 'match', $5::int, 'total', $6::int) WHERE id = $1`,
      [id, JSON.stringify(counts), internalRows, Math.round(tStage), Math.round(tMatch), Math.round(tStage + tMatch)]);
    await client.query('COMMIT');
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end().catch(() => undefined);
    if (!(e instanceof ReconcileInputError)) await recordFailure(deps, { id, startedAt }, req, staged, opts, e as Error);
    throw e;
  }
  await client.end();

  let repairs: RepairCounts = { notifications: 0, inquiries: 0, imports: 0, cases: 0 };
  const tRepair0 = performance.now();
  if (opts.repair !== false) {
    report('repair', 0);
    repairs = await repairRun(deps, id, req.source, { escalateAfterMs: opts.escalateAfterMs ?? 10 * 60_000 });
  }
  const tRepair = performance.now() - tRepair0;
  const total = performance.now() - t0;
  const breaks = counts.missing_here + counts.missing_there + counts.amount_mismatch + counts.status_mismatch + counts.duplicate_there;
  await deps.pool.query(
    `UPDATE reconcile_runs SET repairs = $2, timings = timings || jsonb_build_object('repair', $3::int, 'total', $4::int),
       finished_at = clock_timestamp() WHERE id = $1`,
    [id, JSON.stringify(repairs), Math.round(tRepair), Math.round(total)]);
  deps.log.info({ run_id: id, scope: staged.scope, trigger: opts.trigger ?? 'manual', external_rows: staged.rows, internal_rows: internalRows,
    breaks, resolved, repairs, ms: Math.round(total) }, 'reconcile run finished');
  report('done', staged.rows);
  return {
    id, source: req.source, scope: staged.scope, provider: staged.provider, file: staged.file,
    window: { from: staged.from.toISOString(), to: staged.to.toISOString() }, status: 'succeeded',
    external_rows: staged.rows, internal_rows: internalRows, counts, breaks, resolved, repairs,
    timings_ms: { stage: Math.round(tStage), match: Math.round(tMatch), repair: Math.round(tRepair), total: Math.round(total) },
  };
}

/** A run that failed for a reason other than its input (the provider or the database) is kept, with the cause. */
async function recordFailure(
  deps: ReconcileDeps, run: { id: string; startedAt: Date }, req: ReconcileRequest, staged: Staged | undefined, opts: ReconcileOptions, e: Error,
): Promise<void> {
  const id = run.id;
  const scope = staged?.scope ?? (req.source === 'provider' ? `provider:${req.provider}` : req.source === 'csv' ? `csv:${req.mapping.provider}` : req.source);
  await deps.pool.query(
    `INSERT INTO reconcile_runs (id, source, scope, provider, file_name, window_from, window_to, trigger, status, error, started_at, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'failed', $9, $10, clock_timestamp())`,
    [id, req.source, scope, req.source === 'provider' ? req.provider : staged?.provider ?? null, 'file' in req ? req.file : null,
      staged?.from ?? ('from' in req ? req.from ?? null : null), staged?.to ?? ('to' in req ? req.to ?? null : null), opts.trigger ?? 'manual', e.message.slice(0, 2000), run.startedAt],
  ).catch((err: Error) => deps.log.error({ runId: id, err: err.message }, 'recording a failed reconcile run failed'));
  deps.log.error({ runId: id, source: req.source, err: e.message }, 'reconcile run failed');
}
