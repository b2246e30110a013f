// The saga runner: claims due sagas with a lease (FOR UPDATE SKIP LOCKED, like periodic jobs) and
// advances each step by step. Every try is a `started` row committed before the call and completed
// after it, all fenced by the lease token, so a worker that lost its lease can no longer write and
// a saga whose worker died is resumed by another from its rows: inquiring first, never re-running a success.
import type pg from 'pg';
import { openCase } from '../cases/index.ts';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';
import { causeOf } from '../kernel/work.ts';
import {
  DEFAULT_STEP_TIMEOUT_MS, checkDefinition, delayAfter, retryOf, stepKey,
  type SagaDefinition, type SagaStep, type StepContext, type StepPhase, type StepResult,
} from './define.ts';
import { decide, type Next, type SagaState } from './decide.ts';
import { canSagaTransition, canStepTransition, isFinished, type SagaStatus, type StepStatus } from './state.ts';
import { getSaga, recordSagaEvent, sagaHistory, startSaga, type AttemptRow, type SagaRow, type StartSaga, type StepRow } from './store.ts';

const CLAIM_DUE = `
WITH c AS (SELECT id FROM sagas WHERE status IN ('running', 'compensating') AND name = ANY($1::text[]) AND next_run_at <= now()
             AND (locked_until IS NULL OR locked_until < now())
           ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE sagas s SET lease_token = gen_random_uuid(), locked_until = now() + $3::bigint * interval '1 millisecond', updated_at = now()
FROM c WHERE s.id = c.id RETURNING s.id, s.lease_token`;
const CLAIM_ONE = `
UPDATE sagas SET lease_token = gen_random_uuid(), locked_until = now() + $3::bigint * interval '1 millisecond', updated_at = now()
WHERE id = (SELECT id FROM sagas WHERE id = $1 AND status IN ('running', 'compensating') AND name = ANY($2::text[])
              AND next_run_at <= now() AND (locked_until IS NULL OR locked_until < now()) FOR UPDATE SKIP LOCKED)
RETURNING id, lease_token`;
/** Every write of the runner goes through this first: no row, no lease, nothing written. */
const FENCE = `UPDATE sagas SET locked_until = now() + $3::bigint * interval '1 millisecond', updated_at = now()
WHERE id = $1 AND lease_token = $2 RETURNING id`;
const RELEASE_UNTIL = `UPDATE sagas SET next_run_at = now() + $3::bigint * interval '1 millisecond', lease_token = NULL, locked_until = NULL,
  last_error = COALESCE($4, last_error) WHERE id = $1 AND lease_token = $2`;
const MOVE_SAGA = `UPDATE sagas SET status = $3, updated_at = now(), last_error = COALESCE($5, last_error),
  finished_at = CASE WHEN $4 THEN now() END, lease_token = CASE WHEN $4 THEN NULL ELSE lease_token END,
  locked_until = CASE WHEN $4 THEN NULL ELSE locked_until END
WHERE id = $1 AND status = $2`;
const MOVE_STEP = `UPDATE saga_steps SET status = $4, output = COALESCE($5, output), error = COALESCE($6, error), updated_at = now()
WHERE saga_id = $1 AND step_id = $2 AND status = $3`;
const INSERT_ATTEMPT = `INSERT INTO saga_step_attempts (saga_id, step_id, phase, attempt, idempotency_key) VALUES ($1, $2, $3, $4, $5)
RETURNING *`;
const RECORD_ATTEMPT = `UPDATE saga_step_attempts SET status = $2, output = $3, error_code = $4, error_message = $5, inquiries = inquiries + $6,
  finished_at = CASE WHEN $2 IN ('succeeded', 'failed') THEN now() END
WHERE id = $1 AND status IN ('started', 'unknown') RETURNING inquiries`;
const SET_CURRENT = 'UPDATE sagas SET current_step = $2 WHERE id = $1';
const LOAD_STEPS = 'SELECT * FROM saga_steps WHERE saga_id = $1 ORDER BY position';
const LOAD_LAST_ATTEMPTS = `SELECT DISTINCT ON (step_id, phase) * FROM saga_step_attempts WHERE saga_id = $1
ORDER BY step_id, phase, attempt DESC`;

/** Raised inside a runner transaction when the lease is gone: another worker owns the saga now. */
export class LeaseLost extends Error {
  constructor(sagaId: string) {
    super(`lost the lease on saga ${sagaId}`);
    this.name = 'LeaseLost';
  }
}

export interface SagasDeps {
  pool: pg.Pool;
  log: Logger;
  /** Lease beyond a step's own timeout: how long a dead worker's saga waits before another resumes it. Default 30 s. */
  leaseSlackMs?: number;
}

// What each phase moves a step through: the status while it runs, when it is done, when it fails for good or stays unknown.
const PHASE: Record<StepPhase, { active: StepStatus; done: StepStatus; failed: StepStatus; unknown: StepStatus }> = {
  invoke: { active: 'running', done: 'succeeded', failed: 'failed', unknown: 'unknown' },
  compensate: { active: 'compensating', done: 'compensated', failed: 'compensation_failed', unknown: 'compensation_failed' },
};

interface Lease { id: string; token: string }

export class Sagas {
  private readonly defs = new Map<string, SagaDefinition<never>>();
  private readonly slackMs: number;

  constructor(private readonly deps: SagasDeps) {
    this.slackMs = deps.leaseSlackMs ?? 30_000;
  }

  /** Registers a definition; sagas of unregistered names are left to a worker that knows them. */
  define<I>(def: SagaDefinition<I>): SagaDefinition<I> {
    checkDefinition(def as SagaDefinition<never>);
    if (this.defs.has(def.name)) throw new Error(`saga "${def.name}" is defined twice`);
    this.defs.set(def.name, def as SagaDefinition<never>);
    return def;
  }

  /** Records a saga in the caller's transaction; a worker (or `run`) advances it once committed. */
  async start<I extends Record<string, unknown>>(q: Queryable, def: SagaDefinition<I>, input: I, opts: StartSaga = {}): Promise<{ id: string; created: boolean }> {
    if (this.defs.get(def.name) !== (def as SagaDefinition<never>)) throw new Error(`saga "${def.name}" is not defined here`);
    return startSaga(q, def, input, opts);
  }

  /** Advances one saga now if it is due and nobody holds it; returns it as it stands afterwards. */
  async run(id: string): Promise<SagaRow | null> {
    const r = await this.deps.pool.query<{ id: string; lease_token: string }>(CLAIM_ONE, [id, [...this.defs.keys()], this.slackMs]);
    if (r.rows[0]) await this.advance({ id, token: r.rows[0].lease_token });
    return getSaga(this.deps.pool, id);
  }

  /** The work loop: claims up to `limit` due sagas and advances them; returns how many it claimed. */
  async runOnce(limit = 10): Promise<number> {
    if (this.defs.size === 0) return 0;
    const r = await this.deps.pool.query<{ id: string; lease_token: string }>(CLAIM_DUE, [[...this.defs.keys()], limit, this.slackMs]);
    const done = await Promise.allSettled(r.rows.map((row) => this.advance({ id: row.id, token: row.lease_token })));
    for (const [i, d] of done.entries()) {
      if (d.status === 'rejected') this.deps.log.error({ sagaId: r.rows[i]!.id, err: d.reason as Error }, 'saga could not be advanced; another worker resumes it when its lease ends');
    }
    return r.rows.length;
  }

  /** Takes the steps the rows say are next until the saga finishes, must wait, or the lease is lost. */
  async advance(lease: Lease): Promise<void> {
    for (let guard = 0; guard < 10_000; guard++) {
      const state = await this.load(lease.id);
      if (!state || state.saga.lease_token !== lease.token || isFinished(state.saga.status)) return;
      const def = this.defs.get(state.saga.name)!;
      try {
        if (!(await this.take(lease, def, state, decide(def, state)))) return;
      } catch (e) {
        if (e instanceof LeaseLost) return;
        throw e;
      }
    }
    throw new Error(`saga ${lease.id} did not settle within 10000 moves`);
  }

  private async load(id: string): Promise<SagaState | null> {
    const saga = await getSaga(this.deps.pool, id);
    if (!saga) return null;
    const steps = (await this.deps.pool.query<StepRow>(LOAD_STEPS, [id])).rows;
    const lastAttempts = (await this.deps.pool.query<AttemptRow>(LOAD_LAST_ATTEMPTS, [id])).rows;
    return { saga, steps, lastAttempts };
  }

  /** Does one move; returns whether to go on (false: the saga waits, finished, or has nothing to do). */
  private async take(lease: Lease, def: SagaDefinition<never>, state: SagaState, next: Next): Promise<boolean> {
    switch (next.kind) {
      case 'idle': return false;
      case 'finish': await this.finish(lease, state.saga.status, next); return false;
      case 'call': return this.call(lease, def, state, next.step, next.phase, next.attempt);
      case 'inquire': return this.inquire(lease, def, state, next.step, next.phase, next.attempt);
    }
  }

  private async tx<T>(lease: Lease, extendMs: number, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return withTx(this.deps.pool, async (tx) => {
      const f = await tx.query(FENCE, [lease.id, lease.token, extendMs]);
      if (!f.rowCount) throw new LeaseLost(lease.id);
      return fn(tx);
    });
  }

  private async call(lease: Lease, def: SagaDefinition<never>, state: SagaState, step: StepRow, phase: StepPhase, attempt: number): Promise<boolean> {
    const s = stepOf(def, step.step_id);
    const timeoutMs = s.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    const key = stepKey(lease.id, step.step_id, phase, attempt);
    const row = await this.tx(lease, timeoutMs + this.slackMs, async (tx) => {
      const from: StepStatus = phase === 'invoke' ? 'pending' : 'succeeded';
      if (attempt === 1) await moveStep(tx, lease.id, step.step_id, from, PHASE[phase].active, `${phase} started`);
      await tx.query(SET_CURRENT, [lease.id, step.step_id]);
      return (await tx.query<AttemptRow>(INSERT_ATTEMPT, [lease.id, step.step_id, phase, attempt, key])).rows[0]!;
    });
    const fn = phase === 'invoke' ? s.invoke : s.compensate!;
    const result = await callWithin(fn.bind(s), contextOf(state, step.step_id, phase, attempt), timeoutMs);
    return this.record(lease, s, row, result, 0);
  }

  private async inquire(lease: Lease, def: SagaDefinition<never>, state: SagaState, step: StepRow, phase: StepPhase, a: AttemptRow): Promise<boolean> {
    const s = stepOf(def, step.step_id);
    if (!s.inquire) {
      const why = a.status === 'started' ? 'the worker stopped during the call' : a.error_message ?? 'no answer';
      return this.record(lease, s, a, { status: 'unknown', message: `${why}; the step cannot be asked` }, Number.POSITIVE_INFINITY);
    }
    const timeoutMs = s.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    await this.tx(lease, timeoutMs + this.slackMs, async () => undefined);
    const result = await callWithin(s.inquire.bind(s), contextOf(state, step.step_id, phase, a.attempt), timeoutMs);
    return this.record(lease, s, a, result, 1);
  }

  /**
   * Records what came of a try (or of asking about it), with what follows in the same transaction:
   * the step done, a retry or inquiry scheduled, or the step given up (and the saga compensating).
   */
  private async record(lease: Lease, s: SagaStep<never>, a: AttemptRow, result: StepResult, asked: number): Promise<boolean> {
    const policy = retryOf(s);
    const ph = PHASE[a.phase];
    const label = `${a.phase} #${a.attempt} of ${a.step_id}`;
    return this.tx(lease, this.slackMs, async (tx) => {
      const output = result.status === 'succeeded' ? JSON.stringify(result.output ?? {}) : null;
      const [code, message] = result.status === 'failed' ? [result.code, result.message] : result.status === 'unknown' ? ['unknown', result.message] : [null, null];
      const rec = await tx.query<{ inquiries: number }>(RECORD_ATTEMPT, [a.id, result.status, output, code, message, Number.isFinite(asked) ? asked : 0]);
      if (!rec.rows[0]) throw new Error(`attempt ${a.id} of saga ${lease.id} was recorded twice`);
      if (result.status === 'succeeded') {
        await moveStep(tx, lease.id, a.step_id, ph.active, ph.done, `${label} succeeded${asked ? ' (learnt by asking)' : ''}`, a.phase === 'invoke' ? output : null);
        return true;
      }
      if (result.status === 'failed') {
        const cause = `${label} failed: ${result.code}: ${result.message}`;
        if (result.retryable !== false && a.attempt < policy.maxAttempts) return this.wait(tx, lease, delayAfter(policy, a.attempt), `${cause}; retrying`);
        return this.giveUp(tx, lease, a, ph.failed, cause);
      }
      const inquiries = rec.rows[0].inquiries;
      const cause = `${label} outcome unknown: ${result.message}`;
      if (!Number.isFinite(asked) || inquiries >= policy.maxInquiries) return this.giveUp(tx, lease, a, ph.unknown, `${cause} (asked ${inquiries} times)`);
      return this.wait(tx, lease, delayAfter(policy, inquiries + 1), `${cause}; asking again`);
    });
  }

  /** Schedules the next move after `delayMs` and releases the lease; with no delay the runner goes on at once. */
  private async wait(tx: Tx, lease: Lease, delayMs: number, cause: string): Promise<boolean> {
    if (delayMs <= 0) {
      await tx.query('UPDATE sagas SET last_error = $2 WHERE id = $1', [lease.id, cause.slice(0, 2000)]);
      return true;
    }
    await tx.query(RELEASE_UNTIL, [lease.id, lease.token, delayMs, cause.slice(0, 2000)]);
    return false;
  }

  private async giveUp(tx: Tx, lease: Lease, a: AttemptRow, to: StepStatus, cause: string): Promise<boolean> {
    await moveStep(tx, lease.id, a.step_id, PHASE[a.phase].active, to, cause, null, cause);
    if (a.phase === 'invoke') await moveSaga(tx, lease.id, 'running', 'compensating', cause);
    return true;
  }

  private async finish(lease: Lease, from: SagaStatus, next: Extract<Next, { kind: 'finish' }>): Promise<void> {
    await this.tx(lease, this.slackMs, async (tx) => {
      await moveSaga(tx, lease.id, from, next.to, next.cause);
      if (next.caseCause) {
        const history = await sagaHistory(tx, lease.id);
        await openCase(tx, {
          kind: 'saga', cause: next.caseCause, subject: { type: 'saga', id: lease.id },
          summary: `saga ${history!.saga.name} failed: ${next.cause}`,
          details: { history: JSON.parse(JSON.stringify(history)) as Record<string, unknown> },
        });
      }
    });
    this.deps.log.info({ sagaId: lease.id, status: next.to, cause: next.cause }, 'saga finished');
  }
}

function stepOf(def: SagaDefinition<never>, stepId: string): SagaStep<never> {
  const s = def.steps.find((d) => d.id === stepId);
  if (!s) throw new Error(`saga "${def.name}" has no step "${stepId}" (the definition changed under a running saga)`);
  return s;
}

function contextOf(state: SagaState, stepId: string, phase: StepPhase, attempt: number): Omit<StepContext<never>, 'signal'> {
  const outputs: Record<string, Record<string, unknown>> = {};
  for (const st of state.steps) if (st.output) outputs[st.step_id] = st.output;
  return {
    sagaId: state.saga.id, sagaName: state.saga.name, stepId, phase, attempt, idempotencyKey: stepKey(state.saga.id, stepId, phase, attempt),
    input: state.saga.input as never, outputs,
  };
}

/** Calls a step's function with a deadline: no answer by then, or a throw, is an unknown outcome. */
export async function callWithin(fn: (ctx: StepContext<never>) => Promise<StepResult>, ctx: Omit<StepContext<never>, 'signal'>, timeoutMs: number): Promise<StepResult> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<StepResult>((resolve) => {
    timer = setTimeout(() => { ac.abort(); resolve({ status: 'unknown', message: `no answer within ${timeoutMs} ms` }); }, timeoutMs);
  });
  const call = Promise.resolve().then(() => fn({ ...ctx, signal: ac.signal }))
    .catch((e: unknown): StepResult => ({ status: 'unknown', message: `threw: ${causeOf(e instanceof Error ? e : new Error(String(e)))}` }));
  try {
    return await Promise.race([call, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function moveStep(tx: Tx, sagaId: string, stepId: string, from: StepStatus, to: StepStatus, cause: string, output: string | null = null, error: string | null = null): Promise<void> {
  if (!canStepTransition(from, to)) throw new Error(`saga step transition ${from} → ${to} is not allowed`);
  const r = await tx.query(MOVE_STEP, [sagaId, stepId, from, to, output, error]);
  if (!r.rowCount) throw new Error(`saga ${sagaId} step ${stepId} was not ${from} (moved under a held lease)`);
  await recordSagaEvent(tx, sagaId, stepId, from, to, cause);
}

async function moveSaga(tx: Tx, sagaId: string, from: SagaStatus, to: SagaStatus, cause: string): Promise<void> {
  if (!canSagaTransition(from, to)) throw new Error(`saga transition ${from} → ${to} is not allowed`);
  const r = await tx.query(MOVE_SAGA, [sagaId, from, to, isFinished(to), to === 'completed' || to === 'compensated' ? null : cause.slice(0, 2000)]);
  if (!r.rowCount) throw new Error(`saga ${sagaId} was not ${from} (moved under a held lease)`);
  await recordSagaEvent(tx, sagaId, null, from, to, cause);
}
