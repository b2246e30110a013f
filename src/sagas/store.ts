// The saga rows: starting a saga in the caller's transaction, and reading one with its steps,
// attempts and events (admin API, CLI, the case a failed saga opens). The runner owns the writes after start.
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { wakeWhenVisible } from '../kernel/wake.ts';
import type pg from 'pg';
import type { SagaDefinition } from './define.ts';
import type { SagaStatus, StepStatus } from './state.ts';

export interface SagaRow {
  id: string; name: string; key: string | null; status: SagaStatus; input: Record<string, unknown>;
  entity_type: string | null; entity_id: string | null; current_step: string | null; last_error: string | null;
  next_run_at: Date; lease_token: string | null; locked_until: Date | null; created_at: Date; updated_at: Date; finished_at: Date | null;
}
export interface StepRow { saga_id: string; position: number; step_id: string; status: StepStatus; output: Record<string, unknown> | null; error: string | null; updated_at: Date }
export interface AttemptRow {
  id: string; saga_id: string; step_id: string; phase: 'invoke' | 'compensate'; attempt: number; status: 'started' | 'succeeded' | 'failed' | 'unknown';
  idempotency_key: string; inquiries: number; output: Record<string, unknown> | null; error_code: string | null; error_message: string | null;
  started_at: Date; finished_at: Date | null;
}
export interface EventRow { id: string; at: Date; step_id: string | null; from_status: string | null; to_status: string; cause: string }
export interface SagaHistory { saga: SagaRow; steps: StepRow[]; attempts: AttemptRow[]; events: EventRow[] }

export interface StartSaga {
  /** The starter's key: the same (name, key) twice returns the first saga. */
  key?: string | undefined;
  /** The record this saga is about; its integration status shows the saga. */
  entity?: { type: string; id: string } | undefined;
}

const INSERT_SAGA = `
INSERT INTO sagas (id, name, key, input, entity_type, entity_id, current_step) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name, key) WHERE key IS NOT NULL DO NOTHING RETURNING id`;
const INSERT_STEPS = `
INSERT INTO saga_steps (saga_id, position, step_id) SELECT $1, p - 1, s FROM unnest($2::text[]) WITH ORDINALITY AS t (s, p)`;
const INSERT_EVENT = 'INSERT INTO saga_events (saga_id, step_id, from_status, to_status, cause) VALUES ($1, $2, $3, $4, $5)';
const BY_KEY = 'SELECT id FROM sagas WHERE name = $1 AND key = $2';

/** Records a new saga (running, due now) in the caller's transaction and wakes the workers after commit. */
export async function startSaga<I extends Record<string, unknown>>(
  q: Queryable, def: SagaDefinition<I>, input: I, opts: StartSaga = {},
): Promise<{ id: string; created: boolean }> {
  const id = uuidv7();
  const ins = await q.query<{ id: string }>(INSERT_SAGA, [
    id, def.name, opts.key ?? null, JSON.stringify(input), opts.entity?.type ?? null, opts.entity?.id ?? null, def.steps[0]!.id]);
  if (!ins.rows[0]) return { id: (await q.query<{ id: string }>(BY_KEY, [def.name, opts.key])).rows[0]!.id, created: false };
  await q.query(INSERT_STEPS, [id, def.steps.map((s) => s.id)]);
  await q.query(INSERT_EVENT, [id, null, null, 'running', 'started']);
  wakeWhenVisible(q as pg.Pool | pg.PoolClient, 'sagas');
  return { id, created: true };
}

export async function recordSagaEvent(q: Queryable, sagaId: string, stepId: string | null, from: string | null, to: string, cause: string): Promise<void> {
  await q.query(INSERT_EVENT, [sagaId, stepId, from, to, cause.slice(0, 2000)]);
}

export async function getSaga(q: Queryable, id: string): Promise<SagaRow | null> {
  return (await q.query<SagaRow>('SELECT * FROM sagas WHERE id = $1', [id])).rows[0] ?? null;
}

/** A saga with its steps in order, every attempt and every event: what an operator needs to judge it. */
export async function sagaHistory(q: Queryable, id: string): Promise<SagaHistory | null> {
  const saga = await getSaga(q, id);
  if (!saga) return null;
  const steps = await q.query<StepRow>('SELECT * FROM saga_steps WHERE saga_id = $1 ORDER BY position', [id]);
  const attempts = await q.query<AttemptRow>('SELECT * FROM saga_step_attempts WHERE saga_id = $1 ORDER BY id', [id]);
  const events = await q.query<EventRow>(
    'SELECT e.id::text AS id, at, step_id, from_status, to_status, cause FROM saga_events e WHERE saga_id = $1 ORDER BY e.id', [id]);
  return { saga, steps: steps.rows, attempts: attempts.rows, events: events.rows };
}

export interface SagaFilter {
  status?: SagaStatus[] | undefined;
  name?: string | undefined;
  entity?: { type: string; id: string } | undefined;
  /** A saga id: lists the sagas older than it (the cursor of the previous page). */
  before?: string | undefined;
  limit: number;
}

const LIST_SAGAS = `
SELECT * FROM sagas
WHERE ($1::text[] IS NULL OR status = ANY($1::text[])) AND ($2::text IS NULL OR name = $2)
  AND ($3::text IS NULL OR (entity_type = $3 AND entity_id = $4)) AND ($5::uuid IS NULL OR id < $5::uuid)
ORDER BY id DESC LIMIT $6`;

/** Newest first (ids are UUIDv7); page on with `before` = the last id of the previous page. */
export async function listSagas(q: Queryable, f: SagaFilter): Promise<SagaRow[]> {
  const r = await q.query<SagaRow>(LIST_SAGAS, [
    f.status?.length ? f.status : null, f.name ?? null, f.entity?.type ?? null, f.entity?.id ?? null, f.before ?? null, f.limit]);
  return r.rows;
}
