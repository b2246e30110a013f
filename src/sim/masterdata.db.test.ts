import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { runMasterdataSim } from './masterdata.ts';

let tdb: TestDatabase;
beforeAll(async () => { tdb = await createTestDatabase(); });
afterAll(async () => { await tdb.drop(); });

describe('seigo sim masterdata', () => {
  it('runs days of partner changes, failed pulls and random decisions with nothing overwritten silently or applied unapproved', async () => {
    const r = await runMasterdataSim({ pool: tdb.db.pool, partners: 3, products: 200, days: 6, seed: 11 });
    expect(r).toMatchObject({ overwritten_silently: 0, price_applied_without_approval: 0 });
    expect(r.pulls).toBe(3 * 7);
    expect(r.applied_by_rule).toBeGreaterThan(0);
    expect(r.approved).toBeGreaterThan(600);
    expect(r.rejected).toBeGreaterThan(0);
    expect(r.failed_pulls).toBeGreaterThan(0);
  });

  it.each([
    ['unapproved-price', 'price_applied_without_approval'],
    ['overwrite', 'overwritten_silently'],
  ] as const)('catches an injected %s', async (fault, check) => {
    const r = await runMasterdataSim({ pool: tdb.db.pool, partners: 2, products: 300, days: 4, seed: 12 + fault.length, inject: [fault] });
    expect(r[check]).toBeGreaterThan(0);
  });
});
