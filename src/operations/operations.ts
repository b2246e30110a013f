// Outbound operations: tx1 records the operation (pending) with its idempotency key; the call runs
// outside any transaction through the resilience policy; tx2 records the result and its effects.
// A call that may have reached the provider but gave no answer is `unknown`, never `failed`: the
// janitor asks the provider (`inquire`) on a backoff schedule until it knows.
import { SpanKind, contextOf, currentTraceparent, inSpan } from '../kernel/tracing.ts';
import type pg from 'pg';
import type { Clock } from '../kernel/clock.ts';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import { causeOf } from '../kernel/work.ts';
import { wakeWhenVisible } from '../kernel/wake.ts';
import { faultPoint } from '../kernel/fault-point.ts';
import type { CallOutcome, InquiryResult, OperationRequest } from '../providers/types.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import { classifyCallError, type Resilience } from './resilience.ts';

export type OperationStatus = 'pending' | 'sending' | 'succeeded' | 'failed' | 'unknown';

/** The state machine as data: every edge an operation may take. */
export const OPERATION_TRANSITIONS: Readonly<Record<OperationStatus, readonly OperationStatus[]>> = {
  pending: ['sending', 'failed'],
  sending: ['succeeded', 'failed', 'unknown'],
  unknown: ['succeeded', 'failed'],
  succeeded: [],
  failed: [],
};

export interface Operation {
  id: string; provider: string; kind: string; entity_type: string | null; entity_id: string | null;
  idempotency_key: string; idempotent: boolean; request: Record<string, unknown>; status: OperationStatus;
  response: Record<string, unknown> | null; error_code: string | null; error_message: string | null;
  attempts: number; inquiries: number; next_inquiry_at: Date | null; deadline_at: Date | null;
  created_at: Date; sent_at: Date | null; completed_at: Date | null; updated_at: Date;
  /** The trace that recorded it (W3C traceparent); its call's span joins it. */
  traceparent: string | null;
}

export interface RecordOperation {
  provider: string;
  kind: string;
  idempotencyKey: string;
  request: Record<string, unknown>;
  /** Can the provider safely receive this call twice (it honours the idempotency key)? */
  idempotent?: boolean;
  entity?: { type: string; id: string };
}

/** Effects of a final outcome, run in the transaction that records it: exactly once per operation. */
export type ResultHandler = (tx: Tx, op: Operation) => Promise<void>;

export interface OperationsDeps {
  pool: pg.Pool;
  providers: ProviderRegistry;
  resilience: Resilience;
  log: Logger;
  clock: Clock;
  inquiryScheduleMs: readonly number[];
  unknownDeadlineMs: number;
  /** A `pending` operation older than this was orphaned before sending; default 30 s. */
  stalePendingMs?: number | undefined;
  onTransition?: (provider: string, to: OperationStatus) => void;
  /** Each call made to a provider: how long it took, and whether it ended without the provider's answer. */
  onCall?: (provider: string, ms: number, error: boolean) => void;
}

interface Change { status: OperationStatus; cause: string; response?: Record<string, unknown> | undefined; errorCode?: string | undefined; errorMessage?: string | undefined }

export class Operations {
  private readonly resultHandlers = new Map<string, ResultHandler[]>();

  constructor(private readonly deps: OperationsDeps) {}

  /** Registers effects for operations of one kind (e.g. credit a wallet when a charge succeeds). */
  onResult(kind: string, handler: ResultHandler): this {
    this.resultHandlers.set(kind, [...(this.resultHandlers.get(kind) ?? []), handler]);
    return this;
  }

  /** tx1: records the operation in the caller's transaction. The same key twice returns the first. */
  async record(db: Queryable, input: RecordOperation): Promise<{ operation: Operation; created: boolean }> {
    const id = uuidv7();
    const ins = await db.query<Operation>(
      `INSERT INTO operations (id, provider, kind, idempotency_key, idempotent, request, entity_type, entity_id, deadline_at, traceparent)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9::bigint * interval '1 millisecond', $10)
       ON CONFLICT (provider, idempotency_key) DO NOTHING RETURNING *`,
      [id, input.provider, input.kind, input.idempotencyKey, input.idempotent ?? false, JSON.stringify(input.request),
        input.entity?.type ?? null, input.entity?.id ?? null, this.deps.unknownDeadlineMs, currentTraceparent()]);
    if (ins.rows[0]) {
      await db.query('INSERT INTO operation_events (operation_id, from_status, to_status, cause) VALUES ($1, NULL, $2, $3)', [id, 'pending', 'recorded']);
      return { operation: ins.rows[0], created: true };
    }
    const ex = await db.query<Operation>('SELECT * FROM operations WHERE provider = $1 AND idempotency_key = $2', [input.provider, input.idempotencyKey]);
    return { operation: ex.rows[0]!, created: false };
  }

  /**
   * Makes an unknown operation's inquiry due now, in the caller's transaction: for a provider's
   * late webhook, so the janitor settles the operation through its one path. Returns whether it did.
   */
  async inquireSoon(db: Queryable, id: string): Promise<boolean> {
    const r = await db.query(
      `UPDATE operations SET next_inquiry_at = now(), updated_at = now()
       WHERE id = $1 AND status = 'unknown' AND (next_inquiry_at IS NULL OR next_inquiry_at > now())`, [id]);
    if (!r.rowCount) return false;
    wakeWhenVisible(db as pg.Pool | pg.PoolClient, 'operations');
    return true;
  }

  async get(id: string): Promise<Operation | null> {
    const r = await this.deps.pool.query<Operation>('SELECT * FROM operations WHERE id = $1', [id]);
    return r.rows[0] ?? null;
  }

  /**
   * Sends a recorded operation and records what came of it. Never inside a transaction.
   * Returns the operation as it stands afterwards (another process may have moved it first).
   */
  async execute(id: string): Promise<Operation> {
    // The lease must outlast the call with all its retries, or the janitor would call a live call abandoned.
    const current = await this.get(id);
    if (!current) throw new Error(`no operation ${id}`);
    if (current.status !== 'pending') return current;
    const claimed = await this.deps.pool.query<Operation>(
      `UPDATE operations SET status = 'sending', attempts = attempts + 1, sent_at = now(), updated_at = now(),
         locked_until = now() + $2::bigint * interval '1 millisecond'
       WHERE id = $1 AND status = 'pending' RETURNING *`, [id, this.deps.resilience.leaseMs(current.provider)]);
    const op = claimed.rows[0];
    if (!op) return (await this.get(id))!;
    await this.deps.pool.query('INSERT INTO operation_events (operation_id, from_status, to_status, cause) VALUES ($1, $2, $3, $4)', [id, 'pending', 'sending', 'sending']);
    this.deps.onTransition?.(op.provider, 'sending');
    const adapter = this.deps.providers.get(op.provider);
    let change: Change;
    if (!adapter?.client) {
      change = { status: 'failed', cause: 'no client', errorCode: 'no_client', errorMessage: `provider "${op.provider}" has no client for outbound calls` };
    } else {
      const client = adapter.client.bind(adapter);
      const request: OperationRequest = { id: op.id, kind: op.kind, idempotencyKey: op.idempotency_key, request: op.request };
      const started = performance.now();
      try {
        // The call's span, in the trace of whatever recorded the operation (a notification's processing, a request).
        const outcome: CallOutcome = await inSpan('operation.call', {
          kind: SpanKind.CLIENT, parent: contextOf(op.traceparent),
          attributes: { 'seigo.provider': op.provider, 'seigo.operation_id': op.id, 'seigo.operation_kind': op.kind },
        }, async (span) => {
          const o = await this.deps.resilience.execute(op.provider, op.idempotent, (signal) => client(request, signal));
          span.setAttribute('seigo.outcome', o.status);
          return o;
        });
        change = outcome.status === 'succeeded'
          ? { status: 'succeeded', cause: 'provider answered', response: outcome.response }
          : { status: 'failed', cause: 'provider declined', response: outcome.response, errorCode: outcome.code, errorMessage: outcome.message };
        this.deps.onCall?.(op.provider, performance.now() - started, false);
      } catch (e) {
        const c = classifyCallError(e);
        this.deps.onCall?.(op.provider, performance.now() - started, true);
        change = c.kind === 'not_sent'
          ? { status: 'failed', cause: `not sent: ${c.reason}`, errorCode: c.reason, errorMessage: causeOf(e as Error) }
          : { status: 'unknown', cause: `no answer: ${c.reason}`, errorCode: c.reason, errorMessage: causeOf(e as Error) };
      }
    }
    // The chaos harness's deliberate crash between the provider's answer and the commit that records it.
    faultPoint('operations.after-call');
    return (await this.transition(op.id, 'sending', change)) ?? (await this.get(id))!;
  }

  /**
   * Moves an operation from `from` to `change.status` if nobody moved it first, with its effects in the same
   * transaction. Returns null when the row was not in `from` (someone else decided: a normal outcome).
   */
  async transition(id: string, from: OperationStatus, change: Change): Promise<Operation | null> {
    if (!OPERATION_TRANSITIONS[from].includes(change.status)) throw new Error(`operation transition ${from} → ${change.status} is not allowed`);
    const final = change.status === 'succeeded' || change.status === 'failed';
    const op = await withTx(this.deps.pool, async (tx) => {
      const r = await tx.query<Operation>(
        `UPDATE operations SET status = $3, response = COALESCE($4, response), error_code = $5, error_message = $6, updated_at = now(),
           locked_until = NULL,
           completed_at = CASE WHEN $7 THEN now() ELSE completed_at END,
           next_inquiry_at = CASE WHEN $3 = 'unknown' THEN COALESCE(next_inquiry_at, now() + $8::bigint * interval '1 millisecond') ELSE NULL END
         WHERE id = $1 AND status = $2 RETURNING *`,
        [id, from, change.status, change.response ? JSON.stringify(change.response) : null, change.errorCode ?? null,
          change.errorMessage ?? null, final, this.deps.inquiryScheduleMs[0] ?? 30_000]);
      const row = r.rows[0];
      if (!row) return null;
      await tx.query('INSERT INTO operation_events (operation_id, from_status, to_status, cause) VALUES ($1, $2, $3, $4)', [id, from, change.status, change.cause]);
      if (final) for (const h of this.resultHandlers.get(row.kind) ?? []) await h(tx, row);
      return row;
    });
    if (op) this.deps.onTransition?.(op.provider, op.status);
    if (op?.status === 'failed' || op?.status === 'unknown') {
      this.deps.log.warn({ operation_id: op.id, provider: op.provider, kind: op.kind, error_code: op.error_code, cause: change.cause },
        op.status === 'failed' ? 'operation failed' : 'operation outcome unknown');
    }
    return op;
  }

  /**
   * The janitor: sends operations recorded but never sent (the process died after tx1), turns
   * abandoned `sending` rows into `unknown`, and asks the provider about due `unknown` ones.
   * Returns how many operations it looked at.
   */
  async janitorOnce(limit = 100): Promise<number> {
    const pool = this.deps.pool;
    const stalePending = await pool.query<{ id: string }>(
      `SELECT id FROM operations WHERE status = 'pending' AND created_at < now() - $2::bigint * interval '1 millisecond' ORDER BY created_at LIMIT $1`,
      [limit, this.deps.stalePendingMs ?? 30_000]);
    for (const { id } of stalePending.rows) await this.execute(id);
    const abandoned = await pool.query<{ id: string }>(
      `SELECT id FROM operations WHERE status = 'sending' AND locked_until < now() LIMIT $1`, [limit]);
    for (const { id } of abandoned.rows) {
      await this.transition(id, 'sending', { status: 'unknown', cause: 'process stopped during the call', errorCode: 'abandoned', errorMessage: 'the process stopped between sending and recording the result' });
    }
    // Claim due inquiries by pushing their next time out first, so two janitors never ask twice at once.
    const due = await pool.query<Operation>(
      `WITH c AS (SELECT id FROM operations WHERE status = 'unknown' AND next_inquiry_at <= now()
                  ORDER BY next_inquiry_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE operations o SET next_inquiry_at = now() + interval '5 minutes', inquiries = o.inquiries + 1
       FROM c WHERE o.id = c.id RETURNING o.*`, [limit]);
    for (const op of due.rows) await this.inquire(op);
    return stalePending.rows.length + abandoned.rows.length + due.rows.length;
  }

  /**
   * Asks the provider about one unknown operation now, as the janitor would (an operator's retry
   * from a case). Returns the operation as it stands afterwards; null if there is none.
   */
  async inquireNow(id: string): Promise<Operation | null> {
    const claimed = await this.deps.pool.query<Operation>(
      `UPDATE operations SET next_inquiry_at = now() + interval '5 minutes', inquiries = inquiries + 1
       WHERE id = $1 AND status = 'unknown' RETURNING *`, [id]);
    if (claimed.rows[0]) await this.inquire(claimed.rows[0]);
    return this.get(id);
  }

  private async inquire(op: Operation): Promise<void> {
    const adapter = this.deps.providers.get(op.provider);
    let result: InquiryResult;
    if (!adapter?.inquire) {
      result = { status: 'unknown', message: `provider "${op.provider}" cannot be asked about an operation` };
    } else {
      const inquire = adapter.inquire.bind(adapter);
      try {
        const req: OperationRequest = { id: op.id, kind: op.kind, idempotencyKey: op.idempotency_key, request: op.request };
        result = await this.deps.resilience.inquire(op.provider, (signal) => inquire(req, signal));
      } catch (e) {
        result = { status: 'unknown', message: `inquiry failed: ${causeOf(e as Error)}` };
      }
    }
    switch (result.status) {
      case 'succeeded':
        await this.transition(op.id, 'unknown', { status: 'succeeded', cause: 'inquiry: provider has it succeeded', response: result.response });
        return;
      case 'failed':
        await this.transition(op.id, 'unknown', { status: 'failed', cause: 'inquiry: provider has it failed', response: result.response, errorCode: result.code, errorMessage: result.message });
        return;
      case 'not_found':
        // The provider never received it: a known state, and safe to send again with the same idempotency key.
        await this.transition(op.id, 'unknown', { status: 'failed', cause: 'inquiry: provider has no such operation', errorCode: 'not_found_at_provider', errorMessage: 'the provider has no record of this operation; it was never received' });
        return;
      case 'unknown': {
        const delay = this.deps.inquiryScheduleMs[op.inquiries];
        await this.deps.pool.query(
          `UPDATE operations SET next_inquiry_at = CASE WHEN $2::bigint IS NULL THEN NULL ELSE now() + $2::bigint * interval '1 millisecond' END,
             error_message = $3, updated_at = now() WHERE id = $1 AND status = 'unknown'`,
          [op.id, delay ?? null, result.message]);
        if (delay === undefined) this.deps.log.warn({ operationId: op.id, provider: op.provider }, 'operation still unknown after every inquiry; needs a person');
      }
    }
  }
}
