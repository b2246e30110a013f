// App Store verification with Apple's SignedDataVerifier against the simulator's test CA: a signed
// transaction and a notification verify and decode; another root, another app, another environment,
// a forged or tampered JWS are refused with their codes; the embedded root is Apple Root CA G3.
import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { APPLE_ROOT_CA_G3_PEM, AppStoreSimulator, appStoreVerifier } from './index.ts';

const sim = new AppStoreSimulator({ bundleId: 'jp.example.app' });
const verifier = appStoreVerifier({ bundleId: 'jp.example.app', environment: 'Sandbox', rootCertificates: [sim.rootDer], onlineChecks: false });

describe('app store verification', () => {
  it('verifies and decodes a StoreKit 2 signed transaction', async () => {
    const { originalTransactionId, signedTransaction } = await sim.buy({ productId: 'gold.monthly', days: 30 });
    const r = await verifier.transaction(signedTransaction);
    expect(r.ok && r.value).toMatchObject({ originalTransactionId, productId: 'gold.monthly', bundleId: 'jp.example.app', environment: 'Sandbox', type: 'Auto-Renewable Subscription' });
  });

  it('verifies a notification and the transaction and renewal info inside it', async () => {
    const { originalTransactionId } = await sim.buy({ productId: 'gold.monthly' });
    const n = await sim.notify(originalTransactionId, 'DID_CHANGE_RENEWAL_STATUS', 'AUTO_RENEW_DISABLED', (s) => { s.autoRenewStatus = 0; });
    const r = await verifier.notification((JSON.parse(n.body) as { signedPayload: string }).signedPayload);
    expect(r.ok && r.value.payload).toMatchObject({ notificationType: 'DID_CHANGE_RENEWAL_STATUS', subtype: 'AUTO_RENEW_DISABLED', notificationUUID: n.notificationUUID });
    expect(r.ok && r.value.transaction?.originalTransactionId).toBe(originalTransactionId);
    expect(r.ok && r.value.renewal?.autoRenewStatus).toBe(0);
  });

  it('refuses another root, another app, another environment and a tampered JWS', async () => {
    const stranger = new AppStoreSimulator({ bundleId: 'jp.example.app' });
    const otherApp = new AppStoreSimulator({ bundleId: 'jp.other.app', ca: sim.ca });
    const production = new AppStoreSimulator({ bundleId: 'jp.example.app', environment: 'Production', ca: sim.ca });
    const codes = async (jws: string) => { const r = await verifier.transaction(jws); return r.ok ? 'ok' : r.error.code; };
    expect(await codes((await stranger.buy({ productId: 'gold.monthly' })).signedTransaction)).toBe('invalid_signature');
    expect(await codes((await otherApp.buy({ productId: 'gold.monthly' })).signedTransaction)).toBe('wrong_bundle_id');
    expect(await codes((await production.buy({ productId: 'gold.monthly' })).signedTransaction)).toBe('wrong_environment');
    const [h, p, s] = (await sim.buy({ productId: 'gold.monthly' })).signedTransaction.split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), productId: 'platinum.yearly' })).toString('base64url');
    expect(await codes(`${h}.${forged}.${s}`)).toBe('invalid_signature');
    expect(await codes('not-a-jws')).toBe('invalid_signature');
    // The simulator's chain is refused by the default (Apple Root CA G3) verifier.
    const apple = appStoreVerifier({ bundleId: 'jp.example.app', environment: 'Sandbox', onlineChecks: false });
    const r = await apple.transaction((await sim.buy({ productId: 'gold.monthly' })).signedTransaction);
    expect(r.ok ? 'ok' : r.error.code).toBe('invalid_signature');
  });

  it('embeds Apple Root CA G3 as Apple publishes it', () => {
    const c = new X509Certificate(APPLE_ROOT_CA_G3_PEM);
    expect(createHash('sha256').update(c.raw).digest('hex')).toBe('63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179');
    expect(c.subject).toContain('CN=Apple Root CA - G3');
  });
});
