// What a saga is in code: a named list of steps `{ id, invoke, compensate, inquire, timeoutMs, retry }`
// (Medusa v2's createStep, Temporal's saga sample). Definitions live in code; a saga row names one.
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** What came of one call of a step's invoke or compensate (or of asking about one). */
export type StepResult =
  | { status: 'succeeded'; output?: Record<string, unknown> | undefined }
  /** Known not to have happened. `retryable: false` ends the step at once. */
  | { status: 'failed'; code: string; message: string; retryable?: boolean | undefined }
  /** May or may not have happened (a timeout, a lost answer): asked about before anything else. */
  | { status: 'unknown'; message: string };

export type StepPhase = 'invoke' | 'compensate';

export interface StepContext<I = Record<string, unknown>> {
  sagaId: string;
  sagaName: string;
  stepId: string;
  phase: StepPhase;
  /** 1 for the first try of this phase of this step. */
  attempt: number;
  /** Derived from saga id + step id + phase + attempt: the same try always carries the same key. */
  idempotencyKey: string;
  input: I;
  /** The outputs of the steps that succeeded so far, by step id. */
  outputs: Readonly<Record<string, Record<string, unknown>>>;
  /** Aborted when the step's timeout passes. */
  signal: AbortSignal;
}

export interface RetryPolicy {
  /** Tries of invoke (and, separately, of compensate) before the step fails for good. Default 3. */
  maxAttempts: number;
  /** Waits before the 2nd, 3rd … try, and between inquiries; the last repeats. Default [1 s, 5 s, 30 s]. */
  delaysMs: readonly number[];
  /** How often an unknown outcome is asked about before it is left to a person. Default 5. */
  maxInquiries: number;
}

export interface SagaStep<I = Record<string, unknown>> {
  id: string;
  invoke(ctx: StepContext<I>): Promise<StepResult>;
  /** Undoes a succeeded invoke; must be safe to run twice with the same key. None: nothing to undo. */
  compensate?(ctx: StepContext<I>): Promise<StepResult>;
  /**
   * Asks what became of the try `ctx` describes (its key), after a timeout or a worker's death.
   * Without it an unknown outcome stays unknown: the saga compensates what is known and fails.
   */
  inquire?(ctx: StepContext<I>): Promise<StepResult>;
  /** A call that has not answered within this is unknown. Default 30 s. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
}

export interface SagaDefinition<I = Record<string, unknown>> {
  name: string;
  steps: readonly SagaStep<I>[];
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, delaysMs: [1_000, 5_000, 30_000], maxInquiries: 5 };
export const DEFAULT_STEP_TIMEOUT_MS = 30_000;

export const retryOf = (step: SagaStep<never>): RetryPolicy => ({ ...DEFAULT_RETRY, ...step.retry });
/** The wait before try `n + 1` (or inquiry `n + 1`): the policy's n-th delay, the last one repeating. */
export const delayAfter = (policy: RetryPolicy, n: number): number =>
  policy.delaysMs.length === 0 ? 0 : policy.delaysMs[Math.min(n, policy.delaysMs.length) - 1] ?? 0;

/** The idempotency key of one try: derived, so a resumed saga asks about the very call it made. */
export const stepKey = (sagaId: string, stepId: string, phase: StepPhase, attempt: number): string =>
  `saga:${sagaId}:${stepId}:${phase}:${attempt}`;

/** Checks a definition once, when it is registered: ids unique and non-empty. Broken definitions throw. */
export function checkDefinition(def: SagaDefinition<never>): void {
  if (!def.name || def.steps.length === 0) throw new Error(`saga "${def.name}" needs a name and at least one step`);
  const ids = new Set<string>();
  for (const s of def.steps) {
    if (!s.id || ids.has(s.id)) throw new Error(`saga "${def.name}": step ids must be unique and non-empty ("${s.id}")`);
    ids.add(s.id);
  }
}
