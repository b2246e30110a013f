// Store notifications through the intake over real HTTP: App Store Server Notifications V2 verified
// with Apple's library against the simulator's test root, Google RTDN pushes whose OIDC token is
// verified with jose against the simulator's local JWKS. Accepted ones are stored once (duplicates
// answer the first row) and normalize to iap.<change> events with the decoded transaction and
// renewal info; a broken chain, a wrong audience, an expired token or another account are 401, counted.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppStoreSimulator, normalizeAppleNotification } from '../providers/app-store/index.ts';
import { GooglePlaySimulator, JWKS_PATH, normalizeRtdn } from '../providers/google-play/index.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const apple = new AppStoreSimulator({ bundleId: 'jp.example.app' });
const play = new GooglePlaySimulator({ packageName: 'jp.example.app', accessToken: 'ya29.rtdn', seed: 4 });
const AUDIENCE = 'https://seigo.example/webhooks/google_play';
const EMAIL = 'rtdn-push@seigo-sim.iam.gserviceaccount.com';
let t: TestEngine;

beforeAll(async () => {
  const g = await play.start();
  t = await startTestEngine({
    config: {
      providers: {
        app_store: { kind: 'app-store', bundleId: 'jp.example.app', environment: 'Sandbox', rootCertificates: [apple.rootDer.toString('base64')], onlineChecks: false },
        google_play: {
          kind: 'google-play', packageName: 'jp.example.app', accessToken: 'ya29.rtdn', apiBase: g.url,
          pubsub: { jwksUrl: `${g.url}${JWKS_PATH}`, audience: AUDIENCE, serviceAccountEmail: EMAIL },
        },
      },
    },
  });
});
afterAll(async () => {
  await t?.close();
  await play.stop();
});

const post = async (provider: string, body: string, headers: Record<string, string> = {}) => {
  const r = await request(`${t.url}/webhooks/${provider}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: r.statusCode, body: await r.body.json() as Record<string, unknown> };
};
const stored = async (provider: string, eventId: string) =>
  (await t.tdb.db.pool.query<{ body: Buffer }>('SELECT body FROM inbox WHERE provider = $1 AND event_id = $2', [provider, eventId])).rows;

describe('store notifications through the intake', () => {
  it('App Store: a verified notification is stored once and normalizes with its decoded transaction and renewal info', async () => {
    const { originalTransactionId } = await apple.buy({ productId: 'gold.monthly' });
    const n = await apple.notify(originalTransactionId, 'DID_FAIL_TO_RENEW', 'GRACE_PERIOD', (s) => { s.status = 4; });
    const first = await post('app_store', n.body);
    const dup = await post('app_store', n.body);
    expect([first.status, first.body.duplicate, dup.status, dup.body.duplicate, dup.body.id]).toEqual([200, false, 200, true, first.body.id]);
    const rows = await stored('app_store', n.notificationUUID);
    expect(rows).toHaveLength(1);
    const events = normalizeAppleNotification({ body: rows[0]!.body });
    expect(events.ok && events.value[0]).toMatchObject({
      type: 'iap.grace_period',
      data: { platform: 'app_store', store_id: originalTransactionId, notification_type: 'DID_FAIL_TO_RENEW', subtype: 'GRACE_PERIOD',
        transaction: { originalTransactionId, productId: 'gold.monthly' }, renewal_info: { isInBillingRetryPeriod: true } },
    });
  });

  it('App Store: a chain to another root or another app is 401 and nothing is stored', async () => {
    const stranger = new AppStoreSimulator({ bundleId: 'jp.example.app' });
    const other = new AppStoreSimulator({ bundleId: 'jp.other.app', ca: apple.ca });
    for (const sim of [stranger, other]) {
      const { originalTransactionId } = await sim.buy({ productId: 'gold.monthly' });
      const n = await sim.notify(originalTransactionId, 'DID_RENEW');
      const r = await post('app_store', n.body);
      expect([r.status, r.body.code]).toEqual([401, 'invalid_signature']);
      expect(await stored('app_store', n.notificationUUID)).toHaveLength(0);
    }
    expect(await post('app_store', '{"nope":1}')).toMatchObject({ status: 400 });
  });

  it('Google Play: an RTDN push with a valid OIDC token is stored once (the simulator retries and duplicates) and normalizes by its real type name', async () => {
    const token = play.buy({ productId: 'gold.monthly' });
    const p = await play.rtdn(token, 3, { audience: AUDIENCE, email: EMAIL });
    const sent = await play.push(`${t.url}/webhooks/google_play`, p, { duplicate: true });
    expect(sent).toEqual({ attempts: 1, delivered: true });
    const rows = await stored('google_play', p.messageId);
    expect(rows).toHaveLength(1);
    const events = normalizeRtdn({ body: rows[0]!.body });
    expect(events.ok && events.value[0]).toMatchObject({ type: 'iap.auto_renew_off', data: { store_id: token, notification_type: 'SUBSCRIPTION_CANCELED', notification_type_number: 3, product_id: 'gold.monthly' } });
  });

  it('Google Play: a wrong audience, an expired token, another account or issuer, or no token is 401, counted, nothing stored', async () => {
    const token = play.buy({ productId: 'gold.monthly' });
    const bad = [
      { audience: 'https://elsewhere.example', email: EMAIL },
      { audience: AUDIENCE, email: EMAIL, expiresInSeconds: -600 },
      { audience: AUDIENCE, email: 'someone@else.iam.gserviceaccount.com' },
      { audience: AUDIENCE, email: EMAIL, issuer: 'https://evil.example' },
      { audience: AUDIENCE, email: EMAIL, emailVerified: false },
    ];
    for (const claims of bad) {
      const p = await play.rtdn(token, 2, claims);
      const r = await post('google_play', p.body, { authorization: p.authorization });
      expect([r.status, r.body.code]).toEqual([401, 'invalid_signature']);
      expect(await stored('google_play', p.messageId)).toHaveLength(0);
    }
    const p = await play.rtdn(token, 2, { audience: AUDIENCE, email: EMAIL });
    expect((await post('google_play', p.body)).status).toBe(401);
    const m = await t.engine.metrics.registry.getSingleMetricAsString('seigo_webhooks_received_total');
    expect(m).toContain('provider="google_play",outcome="invalid_signature"} 6');
  });
});
