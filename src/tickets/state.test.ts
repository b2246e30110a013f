// The ticket transition table: issued reaches every other status, the others are final, and a
// posting kind exists for every status a ticket can be in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { POSTING_FOR, TICKET_STATUSES, TICKET_TRANSITIONS, canTransition } from './state.ts';

describe('ticket transitions', () => {
  it('goes from issued to each final status once; nothing leaves a final status', () => {
    expect([...TICKET_TRANSITIONS.issued].sort()).toEqual(['cancelled', 'redeemed', 'refunded']);
    for (const s of TICKET_STATUSES.filter((x) => x !== 'issued')) expect(TICKET_TRANSITIONS[s]).toEqual([]);
  });

  it('never allows an edge out of a final status or back to issued (property)', () => {
    fc.assert(fc.property(fc.constantFrom(...TICKET_STATUSES), fc.constantFrom(...TICKET_STATUSES), (from, to) => {
      if (to === 'issued' || from !== 'issued') expect(canTransition(from, to)).toBe(false);
      expect(POSTING_FOR[to]).toBeDefined();
    }), { numRuns: 100, seed: 12 });
  });
});
