// What to do next with a saga, read off its rows alone: a pure function, so a worker that resumes a
// saga another worker left (its lease expired mid-step) takes exactly the step the rows say is next.
import type { SagaDefinition, StepPhase } from './define.ts';
import type { SagaStatus } from './state.ts';
import type { AttemptRow, SagaRow, StepRow } from './store.ts';

export interface SagaState { saga: SagaRow; steps: StepRow[]; lastAttempts: AttemptRow[] }

export type Next =
  /** A new try of a step's invoke or compensate. */
  | { kind: 'call'; step: StepRow; phase: StepPhase; attempt: number }
  /** Ask what became of a try whose outcome is unknown (no answer, or the worker died during it). */
  | { kind: 'inquire'; step: StepRow; phase: StepPhase; attempt: AttemptRow }
  | { kind: 'finish'; to: SagaStatus; cause: string; caseCause?: 'saga_compensation_failed' | 'saga_outcome_unknown' }
  | { kind: 'idle' };

const lastOf = (s: SagaState, stepId: string, phase: StepPhase): AttemptRow | undefined =>
  s.lastAttempts.find((a) => a.step_id === stepId && a.phase === phase);

function resume(s: SagaState, step: StepRow, phase: StepPhase): Next {
  const a = lastOf(s, step.step_id, phase);
  if (!a) return { kind: 'call', step, phase, attempt: 1 };
  if (a.status === 'started' || a.status === 'unknown') return { kind: 'inquire', step, phase, attempt: a };
  if (a.status === 'failed') return { kind: 'call', step, phase, attempt: a.attempt + 1 };
  throw new Error(`saga ${s.saga.id}: step ${step.step_id} has a succeeded ${phase} attempt but is ${step.status}`);
}

export function decide(def: SagaDefinition<never>, s: SagaState): Next {
  if (s.saga.status === 'running') {
    for (const step of s.steps) {
      if (step.status === 'succeeded') continue;
      if (step.status === 'pending') return { kind: 'call', step, phase: 'invoke', attempt: 1 };
      if (step.status === 'running') return resume(s, step, 'invoke');
      throw new Error(`saga ${s.saga.id} is running with step ${step.step_id} ${step.status}`);
    }
    return { kind: 'finish', to: 'completed', cause: 'every step succeeded' };
  }
  if (s.saga.status === 'compensating') {
    const broken = s.steps.find((st) => st.status === 'compensation_failed');
    if (broken) return { kind: 'finish', to: 'failed', cause: `compensation of ${broken.step_id} failed for good`, caseCause: 'saga_compensation_failed' };
    for (const step of [...s.steps].reverse()) {
      if (step.status === 'compensating') return resume(s, step, 'compensate');
      const hasCompensate = def.steps.find((d) => d.id === step.step_id)?.compensate !== undefined;
      if (step.status === 'succeeded' && hasCompensate) return { kind: 'call', step, phase: 'compensate', attempt: 1 };
    }
    const unknown = s.steps.find((st) => st.status === 'unknown');
    if (unknown) return { kind: 'finish', to: 'failed', cause: `outcome of ${unknown.step_id} is unknown`, caseCause: 'saga_outcome_unknown' };
    return { kind: 'finish', to: 'compensated', cause: 'every known effect was undone' };
  }
  return { kind: 'idle' };
}
