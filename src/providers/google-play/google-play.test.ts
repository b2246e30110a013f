// purchases.subscriptionsv2.get over real HTTP against the simulator: a purchase read into facts,
// an upgrade's linkedPurchaseToken, state changes, an unknown token, wrong credentials, and a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GooglePlaySimulator, getSubscriptionV2, subscriptionPurchaseV2, type GooglePlayClientOptions } from './index.ts';

const sim = new GooglePlaySimulator({ packageName: 'jp.example.app', accessToken: 'ya29.test-token', seed: 5 });
let opts: GooglePlayClientOptions;
const get = (token: string, o: GooglePlayClientOptions = opts) => getSubscriptionV2(o, token, AbortSignal.timeout(5_000));

beforeAll(async () => {
  const { url } = await sim.start();
  opts = { packageName: 'jp.example.app', accessToken: 'ya29.test-token', apiBase: url };
});
afterAll(() => sim.stop());

describe('google play subscriptionsv2.get', () => {
  it('reads a purchase into facts; the simulator\'s object passes the real schema', async () => {
    const token = sim.buy({ productId: 'gold.monthly', days: 30, accountId: 'm-1' });
    expect(subscriptionPurchaseV2.safeParse(sim.subscription(token)).success).toBe(true);
    const r = await get(token);
    expect(r.ok && r.value).toMatchObject({
      purchaseToken: token, productIds: ['gold.monthly'], state: 'SUBSCRIPTION_STATE_ACTIVE', entitled: true, autoRenewing: true, test: true, linkedPurchaseToken: undefined,
    });
    expect(r.ok && r.value.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it('an upgrade names the token it replaced; the old one is no longer entitled', async () => {
    const old = sim.buy({ productId: 'silver.monthly' });
    const token = sim.buy({ productId: 'gold.monthly', linkedPurchaseToken: old });
    const r = await get(token);
    expect(r.ok && r.value.linkedPurchaseToken).toBe(old);
    const o = await get(old);
    expect(o.ok && [o.value.state, o.value.entitled, o.value.autoRenewing]).toEqual(['SUBSCRIPTION_STATE_EXPIRED', false, false]);
    sim.setState(token, 'SUBSCRIPTION_STATE_IN_GRACE_PERIOD');
    const g = await get(token);
    expect(g.ok && g.value.entitled).toBe(true);
  });

  it('refuses an unknown token, wrong credentials and another package; a 500 is unavailable', async () => {
    expect(await get('no-such-token')).toMatchObject({ ok: false, error: { code: 'invalid_purchase_token', message: 'Invalid Value' } });
    const token = sim.buy({ productId: 'gold.monthly' });
    expect(await get(token, { ...opts, accessToken: 'wrong' })).toMatchObject({ ok: false, error: { code: 'store_unauthorized' } });
    expect(await get(token, { ...opts, packageName: 'jp.other.app' })).toMatchObject({ ok: false, error: { code: 'invalid_purchase_token' } });
    sim.setFaults({ error500: 1 });
    expect(await get(token)).toMatchObject({ ok: false, error: { code: 'store_unavailable' } });
    sim.setFaults({});
  });
});
