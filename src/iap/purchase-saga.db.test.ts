// The Google Play purchase saga end to end against the store and billing simulators over loopback:
// a purchase starts the member's subscription in the billing system and maps the token; the same
// purchase again renews; an upgrade's token maps to the same subscription; a second member is
// refused before anything is billed (and a case opened); an unknown product is refused at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCases } from '../cases/index.ts';
import { BillingSimulator, billingAdapter } from '../providers/billing/index.ts';
import { GooglePlaySimulator } from '../providers/google-play/index.ts';
import { sagaHistory, type SagaDefinition, type SagaStatus } from '../sagas/index.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

import { purchaseSaga, subscriptionOfStoreId, type PurchaseInput } from './index.ts';

const billing = new BillingSimulator({ apiKey: 'bk_iap', seed: 9 });
const play = new GooglePlaySimulator({ packageName: 'jp.example.app', accessToken: 'ya29.iap', seed: 9 });
let t: TestEngine;
let def: SagaDefinition<PurchaseInput>;

beforeAll(async () => {
  const b = await billing.start();
  const g = await play.start();
  t = await startTestEngine({
    providers: [billingAdapter({ name: 'billing', apiBase: b.url, apiKey: 'bk_iap' })],
    config: { endpoints: { billing: { timeoutMs: 2_000, maxAttempts: 1, breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 1_000 } } } },
  });
  def = t.engine.sagas.define(purchaseSaga({
    pool: t.tdb.db.pool, operations: t.engine.operations, billingProvider: 'billing', products: ['gold.monthly', 'platinum.monthly'],
    googlePlay: { packageName: 'jp.example.app', accessToken: 'ya29.iap', apiBase: g.url },
  }));
});

afterAll(async () => {
  await t?.close();
  await billing.stop();
  await play.stop();
});

async function purchase(input: { purchase_token: string; product_id: string; member_id: string }): Promise<{ id: string; status: SagaStatus }> {
  const { id } = await t.engine.sagas.start(t.tdb.db.pool, def, { platform: 'google_play', ...input }, { entity: { type: 'member', id: input.member_id } });
  const s = await t.engine.sagas.run(id);
  return { id, status: s!.status };
}

describe('iap purchase saga (Google Play)', () => {
  it('starts the subscription in billing and maps the token; the same purchase again renews it', async () => {
    const token = play.buy({ productId: 'gold.monthly', days: 30 });
    const first = await purchase({ purchase_token: token, product_id: 'gold.monthly', member_id: 'm-1' });
    expect(first.status).toBe('completed');
    expect(billing.subscription('m-1')).toMatchObject({ status: 'active', product_id: 'gold.monthly', renewals: 0, reference: first.id });
    const sub = await subscriptionOfStoreId(t.tdb.db.pool, 'google_play', token);
    expect(sub).toMatchObject({ member_id: 'm-1', product_id: 'gold.monthly' });
    const again = await purchase({ purchase_token: token, product_id: 'gold.monthly', member_id: 'm-1' });
    expect(again.status).toBe('completed');
    expect(billing.subscription('m-1')?.renewals).toBe(1);
    const h = (await sagaHistory(t.tdb.db.pool, again.id))!;
    expect(h.steps.find((s) => s.step_id === 'persist')?.output).toEqual({ subscription_id: sub!.id, created: false });
  });

  it('an upgrade\'s token (linkedPurchaseToken) maps to the same subscription', async () => {
    const old = play.buy({ productId: 'gold.monthly' });
    await purchase({ purchase_token: old, product_id: 'gold.monthly', member_id: 'm-2' });
    const token = play.buy({ productId: 'platinum.monthly', linkedPurchaseToken: old });
    expect((await purchase({ purchase_token: token, product_id: 'platinum.monthly', member_id: 'm-2' })).status).toBe('completed');
    const [a, b] = await Promise.all([old, token].map((x) => subscriptionOfStoreId(t.tdb.db.pool, 'google_play', x)));
    expect(b?.id).toBe(a?.id);
    expect(billing.subscription('m-2')).toMatchObject({ product_id: 'platinum.monthly', renewals: 1 });
  });

  it('a second member claiming the token is refused before anything is billed, with a case', async () => {
    const token = play.buy({ productId: 'gold.monthly' });
    await purchase({ purchase_token: token, product_id: 'gold.monthly', member_id: 'owner' });
    const r = await purchase({ purchase_token: token, product_id: 'gold.monthly', member_id: 'intruder' });
    expect(r.status).toBe('compensated');
    expect(billing.subscription('intruder')).toBeUndefined();
    const h = (await sagaHistory(t.tdb.db.pool, r.id))!;
    expect(h.attempts.find((a) => a.step_id === 'check-owner')).toMatchObject({ status: 'failed', error_code: 'claimed_by_another_member' });
    const sub = await subscriptionOfStoreId(t.tdb.db.pool, 'google_play', token);
    const cases = await listCases(t.tdb.db.pool, { subjectType: 'iap_subscription', subjectId: sub!.id, limit: 5 });
    expect(cases.map((c) => c.cause)).toEqual(['iap_claimed_by_another_member']);
  });

  it('refuses an unknown product and an unknown token at verification, billing nothing', async () => {
    const token = play.buy({ productId: 'gold.monthly' });
    const unknown = await purchase({ purchase_token: token, product_id: 'bronze.yearly', member_id: 'm-3' });
    const badToken = await purchase({ purchase_token: 'not-a-token', product_id: 'gold.monthly', member_id: 'm-3' });
    expect([unknown.status, badToken.status]).toEqual(['compensated', 'compensated']);
    const codes = await Promise.all([unknown, badToken].map(async (p) => (await sagaHistory(t.tdb.db.pool, p.id))!.attempts[0]!.error_code));
    expect(codes).toEqual(['unknown_product', 'invalid_purchase_token']);
    expect(billing.subscription('m-3')).toBeUndefined();
  });
});
