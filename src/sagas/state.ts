// The saga and saga-step state machines as data: each a
// union type, a transition table, the CHECK in 0040_sagas.sql and a conditional UPDATE in runner.ts.
export type SagaStatus = 'running' | 'compensating' | 'completed' | 'compensated' | 'failed';
export const SAGA_STATUSES: readonly SagaStatus[] = ['running', 'compensating', 'completed', 'compensated', 'failed'];

/**
 * running → completed when every step succeeded; → compensating when a step failed for good (or its
 * outcome stayed unknown); compensating → compensated when every known effect was undone, → failed
 * when a compensation failed for good or a step's outcome is still unknown (a case is opened).
 */
export const SAGA_TRANSITIONS: Readonly<Record<SagaStatus, readonly SagaStatus[]>> = {
  running: ['completed', 'compensating'],
  compensating: ['compensated', 'failed'],
  completed: [],
  compensated: [],
  failed: [],
};

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'unknown' | 'compensating' | 'compensated' | 'compensation_failed';
export const STEP_STATUSES: readonly StepStatus[] = ['pending', 'running', 'succeeded', 'failed', 'unknown', 'compensating', 'compensated', 'compensation_failed'];

/**
 * A step runs (pending → running) and ends succeeded, failed, or unknown (no answer, nothing learnt by
 * asking). Only a succeeded step is compensated; an unknown one stays as it is for a person.
 */
export const STEP_TRANSITIONS: Readonly<Record<StepStatus, readonly StepStatus[]>> = {
  pending: ['running'],
  running: ['succeeded', 'failed', 'unknown'],
  succeeded: ['compensating'],
  unknown: [],
  failed: [],
  compensating: ['compensated', 'compensation_failed'],
  compensated: [],
  compensation_failed: [],
};

export const canSagaTransition = (from: SagaStatus, to: SagaStatus): boolean => SAGA_TRANSITIONS[from].includes(to);
export const canStepTransition = (from: StepStatus, to: StepStatus): boolean => STEP_TRANSITIONS[from].includes(to);
export const isFinished = (s: SagaStatus): boolean => SAGA_TRANSITIONS[s].length === 0;
/** Statuses in which a worker still has work on the saga. */
export const ACTIVE_STATUSES: readonly SagaStatus[] = SAGA_STATUSES.filter((s) => !isFinished(s));
