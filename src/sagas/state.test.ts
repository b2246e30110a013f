// The saga and step transition tables: every status reachable from the start, the finished ones
// final, and the tables' edges exactly what canSagaTransition / canStepTransition allow.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ACTIVE_STATUSES, SAGA_STATUSES, SAGA_TRANSITIONS, STEP_STATUSES, STEP_TRANSITIONS, canSagaTransition, canStepTransition, isFinished,
} from './state.ts';

function reachable<S extends string>(table: Readonly<Record<S, readonly S[]>>, start: S): S[] {
  const seen = new Set<S>([start]);
  for (let grew = true; grew;) {
    grew = false;
    for (const s of [...seen]) for (const to of table[s]) if (!seen.has(to)) { seen.add(to); grew = true; }
  }
  return [...seen].sort();
}

describe('saga transitions', () => {
  it('reaches every status from running; completed, compensated and failed are final', () => {
    expect(reachable(SAGA_TRANSITIONS, 'running')).toEqual([...SAGA_STATUSES].sort());
    expect(SAGA_STATUSES.filter(isFinished)).toEqual(['completed', 'compensated', 'failed']);
    expect(ACTIVE_STATUSES).toEqual(['running', 'compensating']);
  });

  it('a saga never goes back to running, and only a compensating saga ends compensated or failed', () => {
    for (const s of SAGA_STATUSES) expect(canSagaTransition(s, 'running')).toBe(false);
    expect(SAGA_STATUSES.filter((s) => canSagaTransition(s, 'compensated'))).toEqual(['compensating']);
    expect(SAGA_STATUSES.filter((s) => canSagaTransition(s, 'failed'))).toEqual(['compensating']);
  });

  it('canSagaTransition holds exactly the edges of the table (property)', () => {
    fc.assert(fc.property(fc.constantFrom(...SAGA_STATUSES), fc.constantFrom(...SAGA_STATUSES), (from, to) => {
      expect(canSagaTransition(from, to)).toBe(SAGA_TRANSITIONS[from].includes(to));
    }), { seed: 10, numRuns: 100 });
  });
});

describe('step transitions', () => {
  it('reaches every status from pending; only a succeeded step is ever compensated', () => {
    expect(reachable(STEP_TRANSITIONS, 'pending')).toEqual([...STEP_STATUSES].sort());
    expect(STEP_STATUSES.filter((s) => canStepTransition(s, 'compensating'))).toEqual(['succeeded']);
    // An unknown outcome is never compensated: nothing is undone that is not known to have happened.
    expect(STEP_TRANSITIONS.unknown).toEqual([]);
  });

  it('canStepTransition holds exactly the edges of the table (property)', () => {
    fc.assert(fc.property(fc.constantFrom(...STEP_STATUSES), fc.constantFrom(...STEP_STATUSES), (from, to) => {
      expect(canStepTransition(from, to)).toBe(STEP_TRANSITIONS[from].includes(to));
    }), { seed: 10, numRuns: 100 });
  });
});
