// Cases: what a person must resolve. Anything that finds a problem it cannot repair calls
// `openCase` in its own transaction; one open case per (subject, cause) is kept by a partial unique
// index, so a problem seen again (a second sweep, another reconciliation run, a concurrent caller)
// is counted on the case it already has. Every change is a `case_events` row with actor and time.
import type { Queryable } from '../kernel/db.ts';
import { SeigoError } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { publish } from '../outbox/index.ts';
import { sourcesOf, type CaseStatus } from './state.ts';

export type CaseSubjectType = 'deposit' | 'operation' | 'delivery' | 'inbox' | 'recon_break' | 'ledger_account' | 'ledger_transaction' | 'bank_transfer' | 'saga' | 'iap_subscription' | 'ticket';
export const CASE_SUBJECT_TYPES: readonly CaseSubjectType[] = [
  'deposit', 'operation', 'delivery', 'inbox', 'recon_break', 'ledger_account', 'ledger_transaction', 'bank_transfer', 'saga', 'iap_subscription', 'ticket',
];
export interface CaseSubject { type: CaseSubjectType; id: string }

export interface OpenCaseInput {
  kind: string;            // e.g. 'reconciliation', 'operation', 'deposit', 'delivery', 'ledger'
  cause: string;           // stable code, e.g. 'operation_unknown_overdue', 'recon_missing_here'
  subject: CaseSubject;    // the record this case is about; one OPEN case per (subject, cause)
  related?: CaseSubject[]; // other records it concerns
  summary: string;
  details?: Record<string, unknown>;
  actor?: string;          // who opened it; default 'system'
  /**
   * Publish `case.opened` to the outbox (default true). Off for a case about a dead delivery of a
   * `case.*` message, so an unreachable notification endpoint cannot feed itself cases forever.
   */
  notify?: boolean;
}

export interface Case {
  id: string;
  kind: string;
  cause: string;
  status: CaseStatus;
  subject: CaseSubject;
  related: CaseSubject[];
  summary: string;
  details: Record<string, unknown>;
  assignee: string | null;
  openedBy: string;
  seenCount: number;
  openedAt: Date;
  lastSeenAt: Date;
  updatedAt: Date;
  closedAt: Date | null;
  resolution: Record<string, unknown> | null;
}

export type CaseEventType =
  | 'opened' | 'seen_again' | 'assigned' | 'commented' | 'transitioned' | 'action_performed' | 'action_failed'
  | 'adjustment_proposed' | 'adjustment_approved' | 'adjustment_rejected';

export interface CaseEvent {
  id: string;
  at: Date;
  actor: string;
  type: CaseEventType;
  fromStatus: CaseStatus | null;
  toStatus: CaseStatus | null;
  note: string | null;
  data: Record<string, unknown>;
}

interface CaseRow {
  id: string; kind: string; cause: string; status: CaseStatus; subject_type: CaseSubjectType; subject_id: string; related: CaseSubject[];
  summary: string; details: Record<string, unknown>; assignee: string | null; opened_by: string; seen_count: number;
  opened_at: Date; last_seen_at: Date; updated_at: Date; closed_at: Date | null; resolution: Record<string, unknown> | null;
}

const toCase = (r: CaseRow): Case => ({
  id: r.id, kind: r.kind, cause: r.cause, status: r.status, subject: { type: r.subject_type, id: r.subject_id }, related: r.related,
  summary: r.summary, details: r.details, assignee: r.assignee, openedBy: r.opened_by, seenCount: r.seen_count,
  openedAt: r.opened_at, lastSeenAt: r.last_seen_at, updatedAt: r.updated_at, closedAt: r.closed_at, resolution: r.resolution,
});

/** Raised for a case that does not exist (404) or a change its status does not allow (409). */
export class CaseError extends SeigoError {
  constructor(code: 'case_not_found' | 'case_transition_not_allowed' | 'case_closed', message: string, detail?: Record<string, unknown>) {
    super(code, message, code === 'case_not_found' ? 404 : 409, false, detail);
  }
}

export async function recordEvent(
  q: Queryable, caseId: string, e: { actor: string; type: CaseEventType; from?: CaseStatus | null; to?: CaseStatus | null; note?: string | null; data?: Record<string, unknown> },
): Promise<void> {
  await q.query(
    'INSERT INTO case_events (case_id, actor, type, from_status, to_status, note, data) VALUES ($1, $2, $3, $4, $5, $6, $7)',
    [caseId, e.actor, e.type, e.from ?? null, e.to ?? null, e.note ?? null, JSON.stringify(e.data ?? {})]);
}

// ON CONFLICT on the partial unique index never raises, so a caller's transaction survives a
// duplicate; a concurrent inserter of the same (subject, cause) is waited for, then conflicts.
const INSERT_CASE = `
INSERT INTO cases (id, kind, cause, subject_type, subject_id, related, summary, details, opened_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (subject_type, subject_id, cause) WHERE status IN ('open', 'investigating') DO NOTHING
RETURNING id`;

const SEEN_AGAIN = `
UPDATE cases SET seen_count = seen_count + 1, last_seen_at = now()
WHERE subject_type = $1 AND subject_id = $2 AND cause = $3 AND status IN ('open', 'investigating')
RETURNING id`;

/**
 * Opens a case for `c.subject` and `c.cause`, in the caller's transaction when `q` is one. When an
 * open case already exists for them, returns it with `opened: false` and records that it was seen
 * again. Never creates two open cases for the same subject and cause, even under concurrency.
 */
export async function openCase(q: Queryable, c: OpenCaseInput): Promise<{ id: string; opened: boolean }> {
  const actor = c.actor ?? 'system';
  // Bounded: each round either inserts, or finds the open case; only a case closed between the two
  // statements (by another transaction) sends us round again.
  for (let round = 0; round < 5; round++) {
    const id = uuidv7();
    const ins = await q.query<{ id: string }>({
      name: 'cases_insert', text: INSERT_CASE,
      values: [id, c.kind, c.cause, c.subject.type, c.subject.id, JSON.stringify(c.related ?? []), c.summary, JSON.stringify(c.details ?? {}), actor],
    });
    if (ins.rows[0]) {
      await recordEvent(q, id, { actor, type: 'opened', to: 'open', note: c.summary, data: { cause: c.cause, ...(c.details ? { details: c.details } : {}) } });
      if (c.notify !== false) {
        await publish(q, 'case.opened', { id, kind: c.kind, cause: c.cause, subject: c.subject, related: c.related ?? [], summary: c.summary },
          { id, key: id, attributes: { kind: c.kind, cause: c.cause }, entity: { type: 'case', id } });
      }
      return { id, opened: true };
    }
    const seen = await q.query<{ id: string }>({ name: 'cases_seen_again', text: SEEN_AGAIN, values: [c.subject.type, c.subject.id, c.cause] });
    if (seen.rows[0]) {
      await recordEvent(q, seen.rows[0].id, { actor, type: 'seen_again', note: c.summary, ...(c.details ? { data: { details: c.details } } : {}) });
      return { id: seen.rows[0].id, opened: false };
    }
  }
  throw new Error(`could not open or find a case for ${c.subject.type} ${c.subject.id} (${c.cause})`);
}

export async function getCase(q: Queryable, id: string): Promise<Case | null> {
  const r = await q.query<CaseRow>('SELECT * FROM cases WHERE id = $1', [id]);
  return r.rows[0] ? toCase(r.rows[0]) : null;
}

export async function caseEvents(q: Queryable, id: string): Promise<CaseEvent[]> {
  const r = await q.query<{ id: string; at: Date; actor: string; type: CaseEventType; from_status: CaseStatus | null; to_status: CaseStatus | null; note: string | null; data: Record<string, unknown> }>(
    'SELECT id::text AS id, at, actor, type, from_status, to_status, note, data FROM case_events e WHERE case_id = $1 ORDER BY e.id', [id]);
  return r.rows.map((e) => ({ id: e.id, at: e.at, actor: e.actor, type: e.type, fromStatus: e.from_status, toStatus: e.to_status, note: e.note, data: e.data }));
}

export interface CaseFilter {
  status?: CaseStatus[] | undefined;
  kind?: string | undefined;
  cause?: string | undefined;
  /** An operator's name; `null` lists the unassigned ones. */
  assignee?: string | null | undefined;
  subjectType?: CaseSubjectType | undefined;
  subjectId?: string | undefined;
  /** Cases that name this record as subject or among their related records. */
  concerns?: CaseSubject | undefined;
  /** A case id: lists the cases older than it (the cursor of the previous page). */
  before?: string | undefined;
  limit: number;
}

/** Newest first (ids are UUIDv7); page on with `before` = the last id of the previous page. */
export async function listCases(q: Queryable, f: CaseFilter): Promise<Case[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, v: unknown) => { values.push(v); where.push(sql.replaceAll('?', `$${values.length}`)); };
  if (f.status?.length) add('status = ANY(?::text[])', f.status);
  if (f.kind !== undefined) add('kind = ?', f.kind);
  if (f.cause !== undefined) add('cause = ?', f.cause);
  if (f.assignee === null) where.push('assignee IS NULL');
  else if (f.assignee !== undefined) add('assignee = ?', f.assignee);
  if (f.subjectType !== undefined) add('subject_type = ?', f.subjectType);
  if (f.subjectId !== undefined) add('subject_id = ?', f.subjectId);
  if (f.concerns) {
    values.push(f.concerns.type, f.concerns.id, JSON.stringify([f.concerns]));
    const n = values.length;
    where.push(`((subject_type = $${n - 2} AND subject_id = $${n - 1}) OR related @> $${n}::jsonb)`);
  }
  if (f.before !== undefined) add('id < ?::uuid', f.before);
  values.push(f.limit);
  const r = await q.query<CaseRow>(
    `SELECT * FROM cases ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`, values);
  return r.rows.map(toCase);
}

/** Locks the case row for a change in `tx`; throws case_not_found. */
export async function lockCase(tx: Queryable, id: string): Promise<Case> {
  const r = await tx.query<CaseRow>('SELECT * FROM cases WHERE id = $1 FOR UPDATE', [id]);
  if (!r.rows[0]) throw new CaseError('case_not_found', `no case ${id}`);
  return toCase(r.rows[0]);
}

/** Sets (or with null clears) the assignee of an open case. */
export async function assignCase(tx: Queryable, id: string, assignee: string | null, actor: string, note?: string): Promise<Case> {
  const c = await lockCase(tx, id);
  if (c.closedAt) throw new CaseError('case_closed', `case ${id} is ${c.status}; it can no longer be assigned`, { status: c.status });
  const r = await tx.query<CaseRow>('UPDATE cases SET assignee = $2, updated_at = now() WHERE id = $1 RETURNING *', [id, assignee]);
  await recordEvent(tx, id, { actor, type: 'assigned', note: note ?? null, data: { from: c.assignee, to: assignee } });
  return toCase(r.rows[0]!);
}

/** Adds a note; closed cases take notes too (an afterthought about a resolution belongs in its history). */
export async function commentCase(tx: Queryable, id: string, note: string, actor: string): Promise<Case> {
  const c = await lockCase(tx, id);
  await tx.query('UPDATE cases SET updated_at = now() WHERE id = $1', [id]);
  await recordEvent(tx, id, { actor, type: 'commented', note });
  return c;
}

export interface TransitionInput {
  actor: string;
  note?: string | null | undefined;
  /** What closed it (action performed and its result): kept on the case and in the event. */
  resolution?: Record<string, unknown> | undefined;
}

/**
 * Moves case `id` to `to` if its current status allows it (conditional UPDATE; the event records
 * the edge taken). Returns null when it was in no status from which `to` may be reached.
 */
export async function transitionCase(q: Queryable, id: string, to: CaseStatus, t: TransitionInput): Promise<Case | null> {
  const from = sourcesOf(to);
  const r = await q.query<CaseRow & { from_status: CaseStatus }>({
    name: 'cases_transition',
    text: `WITH cur AS (SELECT id, status FROM cases WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE)
           UPDATE cases c SET status = $3, updated_at = now(),
             closed_at = CASE WHEN $3 IN ('resolved', 'wont_fix') THEN now() ELSE NULL END,
             resolution = COALESCE($4::jsonb, c.resolution)
           FROM cur WHERE c.id = cur.id RETURNING c.*, cur.status AS from_status`,
    values: [id, from, to, t.resolution ? JSON.stringify(t.resolution) : null],
  });
  const row = r.rows[0];
  if (!row) return null;
  await recordEvent(q, id, { actor: t.actor, type: 'transitioned', from: row.from_status, to, note: t.note ?? null, ...(t.resolution ? { data: { resolution: t.resolution } } : {}) });
  if (to === 'resolved' || to === 'wont_fix') {
    await publish(q, 'case.closed', { id, kind: row.kind, cause: row.cause, status: to, actor: t.actor, subject: { type: row.subject_type, id: row.subject_id } },
      { key: id, attributes: { kind: row.kind, cause: row.cause, status: to }, entity: { type: 'case', id } });
  }
  return toCase(row);
}

/** As transitionCase, but a refusal is a CaseError (404 or 409) naming the current status. */
export async function transitionOrThrow(q: Queryable, id: string, to: CaseStatus, t: TransitionInput): Promise<Case> {
  const moved = await transitionCase(q, id, to, t);
  if (moved) return moved;
  const cur = await getCase(q, id);
  if (!cur) throw new CaseError('case_not_found', `no case ${id}`);
  throw new CaseError('case_transition_not_allowed', `case ${id} is ${cur.status}; it cannot become ${to}`, { status: cur.status, to });
}
