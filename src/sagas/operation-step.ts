// A saga step that calls out is an operation (src/operations): recorded before it is sent, with the
// idempotency key of the saga's try (saga id + step id + phase + attempt). Asking about a try is the
// same call again: the key finds the recorded operation, and an unknown one is inquired about at the provider.
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import type { Operation, Operations } from '../operations/index.ts';
import type { RetryPolicy, SagaStep, StepContext, StepResult } from './define.ts';

export interface OperationCall<I> {
  /** The operation's kind (its result handlers are registered by kind); may depend on earlier steps. */
  kind: string | ((ctx: StepContext<I>) => string);
  request(ctx: StepContext<I>): Record<string, unknown>;
}

export interface OperationStepSpec<I> {
  id: string;
  provider: string;
  invoke: OperationCall<I>;
  compensate?: OperationCall<I>;
  /** The record the operations concern, for its integration status. */
  entity?: (ctx: StepContext<I>) => { type: string; id: string } | undefined;
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

// Failures that say the provider never acted on the call: a new try (with a new key) is safe.
const NOT_SENT = new Set(['circuit_open', 'bulkhead_full', 'connection_refused', 'egress_refused', 'not_found_at_provider']);

/** The step's view of an operation as it stands. */
export function resultOfOperation(op: Operation): StepResult {
  switch (op.status) {
    case 'succeeded': return { status: 'succeeded', output: op.response ?? {} };
    case 'failed': return {
      status: 'failed', code: op.error_code ?? 'failed', message: op.error_message ?? 'the provider declined',
      retryable: NOT_SENT.has(op.error_code ?? ''),
    };
    default: return { status: 'unknown', message: `operation ${op.id} is ${op.status}${op.error_message ? `: ${op.error_message}` : ''}` };
  }
}

export function operationStep<I>(deps: { pool: pg.Pool; operations: Operations }, spec: OperationStepSpec<I>): SagaStep<I> {
  const run = async (call: OperationCall<I>, ctx: StepContext<I>): Promise<StepResult> => {
    const entity = spec.entity?.(ctx);
    const { operation } = await withTx(deps.pool, (tx) => deps.operations.record(tx, {
      provider: spec.provider, kind: typeof call.kind === 'string' ? call.kind : call.kind(ctx), idempotencyKey: ctx.idempotencyKey, request: call.request(ctx), idempotent: true,
      ...(entity ? { entity } : {}),
    }));
    return resultOfOperation(await settle(deps.operations, operation));
  };
  const callFor = (ctx: StepContext<I>): OperationCall<I> => (ctx.phase === 'invoke' ? spec.invoke : spec.compensate!);
  return {
    id: spec.id,
    invoke: (ctx) => run(spec.invoke, ctx),
    ...(spec.compensate ? { compensate: (ctx: StepContext<I>) => run(spec.compensate!, ctx) } : {}),
    inquire: (ctx) => run(callFor(ctx), ctx),
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
    ...(spec.retry ? { retry: spec.retry } : {}),
  };
}

/** Moves an operation as far as it can go now: sends a recorded one, asks about an unknown one. */
async function settle(operations: Operations, op: Operation): Promise<Operation> {
  if (op.status === 'pending') return operations.execute(op.id);
  if (op.status === 'unknown') return (await operations.inquireNow(op.id)) ?? op;
  return op;
}
