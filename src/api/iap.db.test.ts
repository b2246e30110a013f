// POST /v1/iap/purchases over real HTTP with the App Store, Google Play and billing simulators on
// loopback: an App Store purchase (JWS verified with Apple's library against the simulator's test
// root) and a Google Play one start the member's subscription; Idempotency-Key replays; a second
// member gets 409 and a case; an unknown product 422; a bad chain, another app or environment 401.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppStoreSimulator } from '../providers/app-store/index.ts';
import { BillingSimulator } from '../providers/billing/index.ts';
import { GooglePlaySimulator } from '../providers/google-play/index.ts';
import { getCase } from '../cases/index.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const API_KEY = 'iap-test-api-key-0123456789abcdef';
const billing = new BillingSimulator({ apiKey: 'bk_iap_api', seed: 3 });
const play = new GooglePlaySimulator({ packageName: 'jp.example.app', accessToken: 'ya29.api', seed: 3 });
const apple = new AppStoreSimulator({ bundleId: 'jp.example.app' });
let t: TestEngine;

beforeAll(async () => {
  const [b, g] = await Promise.all([billing.start(), play.start()]);
  t = await startTestEngine({
    config: {
      apiClients: [{ name: 'apps', key: API_KEY }],
      providers: {
        billing: { kind: 'billing', apiBase: b.url, apiKey: 'bk_iap_api' },
        app_store: { kind: 'app-store', bundleId: 'jp.example.app', environment: 'Sandbox', rootCertificates: [apple.rootDer.toString('base64')], onlineChecks: false },
        google_play: { kind: 'google-play', packageName: 'jp.example.app', accessToken: 'ya29.api', apiBase: g.url },
      },
      iap: { products: ['gold.monthly', 'platinum.monthly'] },
      endpoints: { billing: { timeoutMs: 2_000, maxAttempts: 1, breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 1_000 } } },
    },
  });
});
afterAll(async () => {
  await t?.close();
  await billing.stop();
  await play.stop();
});

async function post(body: Record<string, unknown>, key?: string) {
  const res = await request(`${t.url}/v1/iap/purchases`, {
    method: 'POST', body: JSON.stringify(body),
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
  });
  return { status: res.statusCode, type: String(res.headers['content-type']), replayed: res.headers['idempotent-replayed'], body: await res.body.json() as Record<string, any> };
}

describe('POST /v1/iap/purchases', () => {
  it('an App Store purchase starts the subscription in billing and maps the originalTransactionId; the key replays it', async () => {
    const { originalTransactionId, signedTransaction } = await apple.buy({ productId: 'gold.monthly', days: 30 });
    const r = await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'm-apple' }, 'buy-1');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ status: 'completed', subscription: { member_id: 'm-apple', platform: 'app_store', product_id: 'gold.monthly', created: true } });
    expect(billing.subscription('m-apple')).toMatchObject({ status: 'active', product_id: 'gold.monthly', reference: r.body.saga_id });
    const again = await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'm-apple' }, 'buy-1');
    expect([again.status, again.replayed, again.body.saga_id]).toEqual([200, 'true', r.body.saga_id]);
    expect(billing.subscription('m-apple')?.renewals).toBe(0);
    const map = await t.tdb.db.pool.query('SELECT subscription_id FROM iap_store_ids WHERE platform = $1 AND store_id = $2', ['app_store', originalTransactionId]);
    expect(map.rows[0]?.subscription_id).toBe(r.body.subscription.id);
  });

  it('a Google Play purchase does the same with its token', async () => {
    const token = play.buy({ productId: 'platinum.monthly' });
    const r = await post({ platform: 'google_play', purchase_token: token, product_id: 'platinum.monthly', member_id: 'm-google' });
    expect([r.status, r.body.subscription?.platform]).toEqual([200, 'google_play']);
    expect(billing.subscription('m-google')).toMatchObject({ status: 'active', product_id: 'platinum.monthly' });
  });

  it('a second member claiming a mapped store subscription gets 409 with the case, and billing is untouched', async () => {
    const { signedTransaction } = await apple.buy({ productId: 'gold.monthly' });
    expect((await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'owner' })).status).toBe(200);
    const r = await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'intruder' });
    expect(r.status).toBe(409);
    expect(r.type).toContain('application/problem+json');
    expect(r.body).toMatchObject({ code: 'claimed_by_another_member', saga_id: expect.any(String), case_id: expect.any(String) });
    expect(await getCase(t.tdb.db.pool, r.body.case_id)).toMatchObject({ cause: 'iap_claimed_by_another_member', details: { owner_member_id: 'owner', claiming_member_id: 'intruder' } });
    expect(billing.subscription('intruder')).toBeUndefined();
  });

  it('an unknown product is 422, on either store', async () => {
    const { signedTransaction } = await apple.buy({ productId: 'bronze.yearly' });
    const a = await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'm-u' });
    const g = await post({ platform: 'google_play', purchase_token: play.buy({ productId: 'bronze.yearly' }), product_id: 'bronze.yearly', member_id: 'm-u' });
    expect([a.status, a.body.code, g.status, g.body.code]).toEqual([422, 'unknown_product', 422, 'unknown_product']);
    expect(billing.subscription('m-u')).toBeUndefined();
  });

  it('a JWS with a broken chain, for another app or another environment is 401 problem+json, counted, nothing applied', async () => {
    const jws = {
      chain: (await new AppStoreSimulator({ bundleId: 'jp.example.app' }).buy({ productId: 'gold.monthly' })).signedTransaction,
      bundle: (await new AppStoreSimulator({ bundleId: 'jp.other.app', ca: apple.ca }).buy({ productId: 'gold.monthly' })).signedTransaction,
      env: (await new AppStoreSimulator({ bundleId: 'jp.example.app', environment: 'Production', appAppleId: 1, ca: apple.ca }).buy({ productId: 'gold.monthly' })).signedTransaction,
    };
    const out = [];
    for (const [name, j] of Object.entries(jws)) {
      const r = await post({ platform: 'app_store', signed_transaction: j, member_id: `m-bad-${name}` });
      out.push([r.status, r.type.split(';')[0], r.body.code]);
      expect(billing.subscription(`m-bad-${name}`)).toBeUndefined();
    }
    expect(out).toEqual([[401, 'application/problem+json', 'invalid_signature'], [401, 'application/problem+json', 'wrong_bundle_id'], [401, 'application/problem+json', 'wrong_environment']]);
    const metrics = await t.engine.metrics.registry.getSingleMetricAsString('seigo_iap_purchases_total');
    expect(metrics).toContain('platform="app_store",outcome="invalid_signature"} 1');
    const mapped = await t.tdb.db.pool.query("SELECT count(*)::int AS n FROM iap_subscriptions WHERE member_id LIKE 'm-bad-%'");
    expect(mapped.rows[0].n).toBe(0);
  });
});

describe('store notifications applied through the iap.notification saga', () => {
  it('an App Store EXPIRED cancels in billing and records the state; a billing outage never refuses the notification', async () => {
    await t.startWorker();
    const { originalTransactionId, signedTransaction } = await apple.buy({ productId: 'gold.monthly' });
    expect((await post({ platform: 'app_store', signed_transaction: signedTransaction, member_id: 'm-notif' })).status).toBe(200);
    const off = await apple.notify(originalTransactionId, 'DID_CHANGE_RENEWAL_STATUS', 'AUTO_RENEW_DISABLED', (s) => { s.autoRenewStatus = 0; });
    expect((await apple.deliver(`${t.url}/webhooks/app_store`, off)).delivered).toBe(true);
    const state = async () => (await t.tdb.db.pool.query<{ state: string; auto_renew: boolean }>(
      "SELECT s.state, s.auto_renew FROM iap_store_ids i JOIN iap_subscriptions s ON s.id = i.subscription_id WHERE i.platform = 'app_store' AND i.store_id = $1", [originalTransactionId])).rows[0];
    await eventually(async () => (await state())?.auto_renew === false);
    expect(billing.subscription('m-notif')?.status).toBe('active');
    // Billing down: the notification is still acknowledged at once; the saga retries until billing answers.
    billing.setFaults({ error500: 1 });
    const expired = await apple.notify(originalTransactionId, 'EXPIRED', 'VOLUNTARY', (s) => { s.status = 2; });
    expect(await apple.deliver(`${t.url}/webhooks/app_store`, expired, { delaysMs: [] })).toEqual({ attempts: 1, delivered: true });
    await eventually(async () => (await t.tdb.db.pool.query("SELECT 1 FROM saga_step_attempts a JOIN sagas s ON s.id = a.saga_id WHERE s.name = 'iap.notification' AND a.step_id = 'billing' AND a.status <> 'succeeded'")).rowCount! > 0);
    billing.setFaults({});
    await eventually(async () => (await state())?.state === 'expired', 60_000);
    expect(billing.subscription('m-notif')?.status).toBe('cancelled');
  }, 90_000);
});
