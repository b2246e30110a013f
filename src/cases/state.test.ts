// The case transition table itself: every status reachable from open, closed ones final, and
// sourcesOf (the WHERE of the conditional UPDATE) exactly the inverse of the table.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CASE_STATUSES, CASE_TRANSITIONS, OPEN_STATUSES, canTransition, isClosed, sourcesOf } from './state.ts';

describe('case transitions', () => {
  it('reaches every status from open; resolved and wont_fix are final; open statuses are not', () => {
    const seen = new Set(['open']);
    for (let grew = true; grew;) {
      grew = false;
      for (const s of [...seen]) for (const to of CASE_TRANSITIONS[s as keyof typeof CASE_TRANSITIONS]) if (!seen.has(to)) { seen.add(to); grew = true; }
    }
    expect([...seen].sort()).toEqual([...CASE_STATUSES].sort());
    expect(CASE_STATUSES.filter(isClosed)).toEqual(['resolved', 'wont_fix']);
    for (const s of OPEN_STATUSES) expect(isClosed(s)).toBe(false);
  });

  it('sourcesOf(to) holds exactly the statuses with an edge to `to` (property)', () => {
    fc.assert(fc.property(fc.constantFrom(...CASE_STATUSES), fc.constantFrom(...CASE_STATUSES), (from, to) => {
      expect(sourcesOf(to).includes(from)).toBe(canTransition(from, to));
    }));
  });
});
