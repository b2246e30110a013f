// The in-app purchase id mapping on a real PostgreSQL: one internal subscription per store
// subscription and its upgrade chain, one member per subscription; a second member is refused and a
// case opened; two first claims at once make one subscription; a property over random claims.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caseEvents, listCases } from '../cases/index.ts';
import { withTx } from '../kernel/db.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId, type StoreClaim } from './index.ts';

let tdb: TestDatabase;
beforeAll(async () => { tdb = await createTestDatabase(); });
afterAll(async () => { await tdb?.drop(); });

const claim = (c: StoreClaim) => withTx(tdb.db.pool, (tx) => claimStoreSubscription(tx, c));

describe('iap id mapping', () => {
  it('maps a store subscription to one internal id for its member, again and again', async () => {
    const c: StoreClaim = { platform: 'app_store', storeId: '2000000123456789', memberId: 'm-1', productId: 'gold.monthly', expiresAt: new Date('2027-01-01Z') };
    const first = await claim(c);
    expect(first.ok && first.value.created).toBe(true);
    const again = await claim({ ...c, expiresAt: new Date('2027-02-01Z') });
    expect(again.ok && !again.value.created && again.value.subscription.id).toBe(first.ok && first.value.subscription.id);
    expect(again.ok && again.value.subscription.expires_at?.toISOString()).toBe('2027-02-01T00:00:00.000Z');
    // The same id on the other store is another subscription.
    const other = await claim({ ...c, platform: 'google_play' });
    expect(other.ok && other.value.created).toBe(true);
  });

  it('follows Google\'s linkedPurchaseToken chain on upgrades to the same subscription', async () => {
    const base = { platform: 'google_play' as const, memberId: 'm-2', productId: 'silver' };
    const t1 = await claim({ ...base, storeId: 'tok-1' });
    const t2 = await claim({ ...base, storeId: 'tok-2', linkedStoreId: 'tok-1', productId: 'gold' });
    const t3 = await claim({ ...base, storeId: 'tok-3', linkedStoreId: 'tok-2', productId: 'platinum' });
    const id = t1.ok ? t1.value.subscription.id : '';
    expect([t2.ok && t2.value.subscription.id, t3.ok && t3.value.subscription.id]).toEqual([id, id]);
    expect((await subscriptionOfStoreId(tdb.db.pool, 'google_play', 'tok-3'))).toMatchObject({ id, product_id: 'platinum', member_id: 'm-2' });
    const rows = await tdb.db.pool.query('SELECT store_id, linked_from FROM iap_store_ids WHERE subscription_id = $1 ORDER BY store_id', [id]);
    expect(rows.rows).toEqual([{ store_id: 'tok-1', linked_from: null }, { store_id: 'tok-2', linked_from: 'tok-1' }, { store_id: 'tok-3', linked_from: 'tok-2' }]);
  });

  it('refuses a second member, directly or through an upgrade, and opens one case about it', async () => {
    const c: StoreClaim = { platform: 'app_store', storeId: '2000000999', memberId: 'owner', productId: 'gold' };
    const first = await claim(c);
    const id = first.ok ? first.value.subscription.id : '';
    const thief = { ...c, memberId: 'someone-else' };
    const refused = await claim(thief);
    expect(refused).toEqual({ ok: false, error: { code: 'claimed_by_another_member', subscriptionId: id, ownerMemberId: 'owner' } });
    const viaUpgrade = await claim({ platform: 'app_store', storeId: 'new-id', linkedStoreId: '2000000999', memberId: 'someone-else', productId: 'gold' });
    expect(viaUpgrade.ok).toBe(false);
    expect(await subscriptionOfStoreId(tdb.db.pool, 'app_store', 'new-id')).toBeNull();
    if (refused.ok) throw new Error('unreachable');
    const caseId = await reportClaimConflict(tdb.db.pool, thief, refused.error);
    expect(await reportClaimConflict(tdb.db.pool, thief, refused.error)).toBe(caseId);
    const [c1] = await listCases(tdb.db.pool, { subjectType: 'iap_subscription', subjectId: id, limit: 5 });
    expect(c1).toMatchObject({ id: caseId, kind: 'iap', cause: 'iap_claimed_by_another_member', seenCount: 2, details: { owner_member_id: 'owner', claiming_member_id: 'someone-else' } });
    expect((await caseEvents(tdb.db.pool, caseId)).map((e) => e.type)).toEqual(['opened', 'seen_again']);
  });

  it('two first claims at once by two members make one subscription, and one of them is refused', async () => {
    for (let i = 0; i < 10; i++) {
      const storeId = `race-${i}`;
      const [a, b] = await Promise.all(['a', 'b'].map((m) => claim({ platform: 'google_play', storeId, memberId: m, productId: 'gold' })));
      expect([a!.ok, b!.ok].filter(Boolean)).toHaveLength(1);
      const n = await tdb.db.pool.query('SELECT count(*)::int AS n FROM iap_subscriptions s JOIN iap_store_ids i ON i.subscription_id = s.id WHERE i.store_id = $1', [storeId]);
      expect(n.rows[0].n).toBe(1);
    }
  });

  it('every store id maps to one subscription of the member who claimed it first (property)', async () => {
    let run = 0;
    const step = fc.record({ token: fc.integer({ min: 0, max: 5 }), linked: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }), member: fc.constantFrom('x', 'y') });
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
      run++;
      const owner = new Map<string, string>(); // model: store id → member
      const sub = new Map<string, string>(); // model: store id → subscription id
      for (const s of steps) {
        const storeId = `p${run}-${s.token}`;
        const linked = s.linked === undefined || s.linked === s.token ? undefined : `p${run}-${s.linked}`;
        const r = await claim({ platform: 'google_play', storeId, linkedStoreId: linked, memberId: s.member, productId: 'gold' });
        const known = owner.get(storeId) ?? (linked ? owner.get(linked) : undefined);
        if (known !== undefined && known !== s.member) {
          expect(r.ok).toBe(false);
        } else {
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          const expected = sub.get(storeId) ?? (linked ? sub.get(linked) : undefined);
          if (expected) expect(r.value.subscription.id).toBe(expected);
          owner.set(storeId, s.member);
          sub.set(storeId, r.value.subscription.id);
        }
        // Checked after every claim: the database agrees with the model, store id by store id.
        for (const [id, m] of owner) expect((await subscriptionOfStoreId(tdb.db.pool, 'google_play', id))).toMatchObject({ id: sub.get(id), member_id: m });
      }
    }), { numRuns: 100, seed: 1041 });
  }, 120_000);
});
