// The App Store, played for dev and tests: StoreKit 2 signed transactions and Server Notifications
// V2 `signedPayload`s with Apple's real field names, signed ES256 with an x5c chain from a test CA
// (src/providers/app-store/test-ca.ts). The buyer's side is driven by plain methods; each change of
// a subscription returns the notification Apple would send, which `deliver` posts with Apple's retries.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CompactSign, importPKCS8 } from 'jose';
import { request } from 'undici';
import { createTestCa, type TestCa } from './test-ca.ts';
import type { AppStoreEnvironment } from './verify.ts';

export interface AppStoreSimulatorOptions {
  bundleId: string;
  environment?: AppStoreEnvironment | undefined;
  appAppleId?: number | undefined;
  /** Share one CA between simulators (another bundle id, say); default a fresh one. */
  ca?: TestCa | undefined;
  now?: (() => Date) | undefined;
}

/** Apple's subscription status values (App Store Server API `status`). */
export const APPLE_STATUS = { active: 1, expired: 2, billingRetry: 3, gracePeriod: 4, revoked: 5 } as const;

export interface SimulatedAppleSubscription {
  originalTransactionId: string;
  productId: string;
  expiresDate: number;
  status: (typeof APPLE_STATUS)[keyof typeof APPLE_STATUS];
  autoRenewStatus: 0 | 1;
  transactions: number;
  revocationDate?: number | undefined;
}

export interface SignedNotification { notificationUUID: string; body: string }

let serial = 2_000_000_000_000_000;

export class AppStoreSimulator {
  readonly ca: TestCa;
  private readonly subs = new Map<string, SimulatedAppleSubscription>();
  private readonly now: () => Date;
  private readonly environment: AppStoreEnvironment;

  constructor(private readonly opts: AppStoreSimulatorOptions) {
    this.ca = opts.ca ?? createTestCa();
    this.now = opts.now ?? (() => new Date());
    this.environment = opts.environment ?? 'Sandbox';
  }

  /** The root to trust instead of Apple Root CA G3. */
  get rootDer(): Buffer { return this.ca.rootDer; }

  /** Any payload as a JWS signed by the simulator's leaf, with the x5c chain in its header. */
  async sign(payload: Record<string, unknown>): Promise<string> {
    const key = await importPKCS8(this.ca.leafKeyPem, 'ES256');
    return new CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', x5c: this.ca.x5c }).sign(key);
  }

  /** A buyer subscribes in the app: the StoreKit 2 signed transaction the app hands its backend. */
  async buy(o: { productId: string; days?: number; appAccountToken?: string }): Promise<{ originalTransactionId: string; signedTransaction: string }> {
    const originalTransactionId = String(++serial);
    const sub: SimulatedAppleSubscription = {
      originalTransactionId, productId: o.productId, expiresDate: this.now().getTime() + (o.days ?? 30) * 86_400_000,
      status: APPLE_STATUS.active, autoRenewStatus: 1, transactions: 1,
    };
    this.subs.set(originalTransactionId, sub);
    return { originalTransactionId, signedTransaction: await this.sign(this.transaction(sub, originalTransactionId, o.appAccountToken)) };
  }

  subscription(originalTransactionId: string): SimulatedAppleSubscription | undefined {
    const s = this.subs.get(originalTransactionId);
    return s ? { ...s } : undefined;
  }

  /** The decoded transaction (JWSTransactionDecodedPayload) of the subscription's latest transaction. */
  transaction(sub: SimulatedAppleSubscription, transactionId = String(++serial), appAccountToken?: string): Record<string, unknown> {
    const now = this.now().getTime();
    return {
      transactionId, originalTransactionId: sub.originalTransactionId, webOrderLineItemId: String(++serial), bundleId: this.opts.bundleId,
      productId: sub.productId, subscriptionGroupIdentifier: '21000000', purchaseDate: now, originalPurchaseDate: now,
      expiresDate: sub.expiresDate, quantity: 1, type: 'Auto-Renewable Subscription', inAppOwnershipType: 'PURCHASED', signedDate: now,
      environment: this.environment, transactionReason: sub.transactions > 1 ? 'RENEWAL' : 'PURCHASE', storefront: 'JPN', storefrontId: '143462',
      price: 480_000, currency: 'JPY', ...(appAccountToken ? { appAccountToken } : {}),
      ...(sub.revocationDate ? { revocationDate: sub.revocationDate, revocationReason: 0 } : {}),
    };
  }

  /**
   * Changes a subscription as the store would and returns the notification it sends: `mutate`
   * edits the subscription first. Names are Apple's notificationType and subtype.
   */
  async notify(originalTransactionId: string, notificationType: string, subtype?: string, mutate?: (s: SimulatedAppleSubscription) => void): Promise<SignedNotification> {
    const sub = this.subs.get(originalTransactionId);
    if (!sub) throw new Error(`no subscription ${originalTransactionId}`);
    mutate?.(sub);
    const now = this.now().getTime();
    const renewal = {
      originalTransactionId, autoRenewProductId: sub.productId, productId: sub.productId, autoRenewStatus: sub.autoRenewStatus,
      isInBillingRetryPeriod: sub.status === APPLE_STATUS.billingRetry || sub.status === APPLE_STATUS.gracePeriod,
      ...(sub.status === APPLE_STATUS.gracePeriod ? { gracePeriodExpiresDate: sub.expiresDate + 16 * 86_400_000 } : {}),
      signedDate: now, environment: this.environment, recentSubscriptionStartDate: now, renewalDate: sub.expiresDate,
    };
    const notificationUUID = randomUUID();
    const signedPayload = await this.sign({
      notificationType, ...(subtype ? { subtype } : {}), notificationUUID, version: '2.0', signedDate: now,
      data: {
        appAppleId: this.opts.appAppleId, bundleId: this.opts.bundleId, bundleVersion: '1', environment: this.environment, status: sub.status,
        signedTransactionInfo: await this.sign(this.transaction(sub)), signedRenewalInfo: await this.sign(renewal),
      },
    });
    return { notificationUUID, body: JSON.stringify({ signedPayload }) };
  }

  /**
   * Posts a notification as Apple does: anything but a 2xx is retried (Apple waits 1, 12, 24, 48
   * and 72 hours; here `delaysMs`), and `duplicate` sends it once more after success.
   */
  async deliver(url: string, n: SignedNotification, o: { delaysMs?: readonly number[]; duplicate?: boolean } = {}): Promise<{ attempts: number; delivered: boolean }> {
    const delays = o.delaysMs ?? [10, 50, 100, 200, 400];
    let attempts = 0;
    for (let i = 0; i <= delays.length; i++) {
      attempts++;
      const ok = await request(url, { method: 'POST', body: n.body, headers: { 'content-type': 'application/json' } })
        .then(async (r) => { await r.body.dump(); return r.statusCode >= 200 && r.statusCode < 300; }, () => false);
      if (ok) {
        if (o.duplicate) await request(url, { method: 'POST', body: n.body, headers: { 'content-type': 'application/json' } }).then((r) => r.body.dump(), () => undefined);
        return { attempts, delivered: true };
      }
      if (i < delays.length) await sleep(delays[i]!);
    }
    return { attempts, delivered: false };
  }
}
