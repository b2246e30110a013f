// One pull of a partner's master: recorded as running, its feed (the partner API, or an
// uploaded CSV) staged with COPY and checked in SQL, then diffed and recorded as a change set in
// one transaction with what applies at once (plain fields, rules). A feed with any bad row is
// refused whole: the pull is failed with the reason per row and nothing changes.
import type pg from 'pg';
import type { Dispatcher } from 'undici';
import { withTx, type Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { MasterdataInputError } from './errors.ts';
import { FeedError, fetchFeed } from './feed.ts';
import { checkMasterCsvMapping, stageCsv } from './csv.ts';
import { checkStaged, stageRows, typeStaged, type RowError } from './stage.ts';
import { recordDiff } from './diff.ts';
import { applyRules } from './apply.ts';
import { listRules } from './rules.ts';
import { getSource } from './sources.ts';

export interface PullRequest {
  partnerId: string;
  trigger: 'manual' | 'schedule' | 'upload';
  actor: string;
  /** An uploaded file (trigger upload), read with `mapping` or the source's. */
  csv?: string | undefined;
  mapping?: unknown;
}

export interface PullCounts {
  rows: number; added: number; removed: number; changed: number; applied: number; applied_by_rule: number;
  waiting: number; superseded: number; kept_waiting: number;
}
export interface PullSummary { id: string; partnerId: string; status: 'succeeded' | 'failed'; error: string | null; rowErrors: RowError[] | null; counts: PullCounts | null }

export interface PullDeps { pool: pg.Pool; dispatcher?: Dispatcher | undefined }

const INSERT_PULL = `INSERT INTO masterdata_pulls (id, partner_id, trigger, actor) VALUES ($1, $2, $3, $4)`;
const FINISH_PULL = `UPDATE masterdata_pulls SET status = $2, error = $3, row_errors = $4, rows = $5, counts = $6, finished_at = now() WHERE id = $1 AND status = 'running'`;
const LOCK_PARTNER = `SELECT pg_advisory_xact_lock(hashtext('masterdata:' || $1::text))`;
const STATUS_COUNTS = `SELECT status, count(*)::int AS n FROM masterdata_changes WHERE pull_id = $1 GROUP BY status`;

/** Thrown inside the pull's transaction to roll it back; the pull is then recorded as failed. */
class Refused extends Error {
  constructor(readonly rows: number, readonly rowErrors: RowError[], readonly bad: number) {
    super(`${bad} of ${rows} rows refused; nothing applied`);
  }
}

async function stageSource(tx: pg.PoolClient, deps: PullDeps, req: PullRequest): Promise<number> {
  const source = await getSource(tx, req.partnerId);
  if (req.csv !== undefined) {
    const mapping = req.mapping ?? source?.mapping;
    if (mapping === undefined || mapping === null) throw new MasterdataInputError('invalid_mapping', 'an uploaded CSV needs a mapping (in the request or the partner\'s source)');
    return stageCsv(tx, req.csv, checkMasterCsvMapping(mapping));
  }
  if (!source) throw new MasterdataInputError('no_master_source', 'the partner has no master source');
  if (source.kind !== 'http' || !source.url) throw new MasterdataInputError('invalid_source', 'the partner\'s master comes as a CSV upload: upload a file');
  return stageRows(tx, fetchFeed(source.url, deps.dispatcher ? { dispatcher: deps.dispatcher } : {}));
}

/** Pulls, diffs and records; never throws for a bad feed (the summary says why), only for bad requests and broken invariants. */
export async function pullMaster(deps: PullDeps, req: PullRequest): Promise<PullSummary> {
  const id = uuidv7();
  await deps.pool.query(INSERT_PULL, [id, req.partnerId, req.trigger, req.actor]);
  try {
    const counts = await withTx(deps.pool, async (tx) => {
      await tx.query(LOCK_PARTNER, [req.partnerId]);
      const rows = await stageSource(tx, deps, req);
      const check = await checkStaged(tx);
      if (check.bad > 0) throw new Refused(rows, check.errors, check.bad);
      await typeStaged(tx);
      const diff = await recordDiff(tx, req.partnerId, id, req.actor);
      const source = await getSource(tx, req.partnerId);
      await applyRules(tx, id, await listRules(tx, req.partnerId), source?.trusted ?? false);
      const by = Object.fromEntries((await tx.query<{ status: string; n: number }>(STATUS_COUNTS, [id])).rows.map((r) => [r.status, r.n]));
      const c: PullCounts = {
        rows, ...diff, applied: by.applied ?? 0, applied_by_rule: by.applied_by_rule ?? 0, waiting: by.waiting ?? 0,
      };
      await tx.query(FINISH_PULL, [id, 'succeeded', null, null, rows, JSON.stringify(c)]);
      return c;
    });
    return { id, partnerId: req.partnerId, status: 'succeeded', error: null, rowErrors: null, counts };
  } catch (e) {
    if (e instanceof Refused) {
      await finishFailed(deps.pool, id, e.message, e.rowErrors, e.rows);
      return { id, partnerId: req.partnerId, status: 'failed', error: e.message, rowErrors: e.rowErrors, counts: null };
    }
    const message = (e as Error).message;
    await finishFailed(deps.pool, id, message, null, null);
    if (e instanceof FeedError) return { id, partnerId: req.partnerId, status: 'failed', error: message, rowErrors: null, counts: null };
    throw e;
  }
}

async function finishFailed(q: Queryable, id: string, error: string, rowErrors: RowError[] | null, rows: number | null): Promise<void> {
  await q.query(FINISH_PULL, [id, 'failed', error, rowErrors ? JSON.stringify(rowErrors) : null, rows, null]);
}
