// The pure part of points: the rule a category gets, and a purchase's target from its events.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../kernel/config.ts';
import { pointsFor, ruleFor, summarize, targetPoints } from './rules.ts';

describe('points rules', () => {
  const cfg = parseConfig({ points: { rules: [{ name: 'dining', merchantCategories: ['5812', '5814'], rateBasisPoints: 300 }] } }).points!;

  it('picks the first rule naming the category, else the default rate; the config subscribes the consumer to card.*', () => {
    expect(ruleFor(cfg, '5814')).toEqual({ name: 'dining', rateBp: 300 });
    expect(ruleFor(cfg, '5411')).toEqual({ name: 'default', rateBp: 100 });
    expect(parseConfig({ points: {} }).subscriptions).toContainEqual({ name: 'points', topic: 'card.*', filter: {}, target: { type: 'handler', handler: 'points' } });
    expect(parseConfig({}).subscriptions).toEqual([]);
  });

  it('rounds down, and is a function of the set of events only', () => {
    expect(pointsFor(199n, 100)).toBe(1n);
    expect(pointsFor(-5n, 100)).toBe(0n);
    const events = [
      { topic: 'card.authorized' as const, amountJpy: 10_000n }, { topic: 'card.cleared' as const, amountJpy: 6_000n },
      { topic: 'card.refunded' as const, amountJpy: 1_000n },
    ];
    expect(targetPoints(summarize(events), 100)).toEqual({ provisional: 40n, confirmed: 50n });
    expect(targetPoints(summarize([...events].reverse()), 100)).toEqual({ provisional: 40n, confirmed: 50n });
    expect(targetPoints(summarize([...events, { topic: 'card.expired', amountJpy: 4_000n }]), 100)).toEqual({ provisional: 0n, confirmed: 50n });
    // A clearing with no authorization seen confirms, and nothing is provisional.
    expect(targetPoints(summarize([{ topic: 'card.cleared', amountJpy: 500n }]), 100)).toEqual({ provisional: 0n, confirmed: 5n });
  });
});
