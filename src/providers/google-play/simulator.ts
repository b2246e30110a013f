// A Google Play Developer API stand-in for purchases.subscriptionsv2.get: subscriptions by purchase
// token with the real SubscriptionPurchaseV2 field names, a bearer access token, Google's error shape,
// and the other simulators' faults (latency, 500s). The buyer's side (buy, upgrade, renew, cancel,
// expire) is driven by plain methods, never over HTTP.
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { request } from 'undici';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '../../kernel/prng.ts';
import type { SubscriptionPurchaseV2, SubscriptionState } from './subscription.ts';

export interface GooglePlayFaults { latencyMs?: number; error500?: number }

export interface GooglePlaySimulatorOptions { packageName: string; accessToken: string; seed?: number | undefined; now?: (() => Date) | undefined }

/** An RTDN push as Pub/Sub sends it: the JSON body and its Authorization header (an OIDC token). */
export interface RtdnPush { messageId: string; body: string; authorization: string }

/** What the push's OIDC token claims; tests vary it to see refusals. */
export interface OidcClaims { audience: string; email: string; issuer?: string; expiresInSeconds?: number; emailVerified?: boolean }

/** The JWKS path the simulator serves, as Google's https://www.googleapis.com/oauth2/v3/certs. */
export const JWKS_PATH = '/oauth2/v3/certs';

const googleError = (code: number, message: string, reason: string) => ({ error: { code, message, errors: [{ message, domain: 'androidpublisher', reason }] } });

export class GooglePlaySimulator {
  private readonly subs = new Map<string, SubscriptionPurchaseV2>();
  private faults: Required<GooglePlayFaults> = { latencyMs: 0, error500: 0 };
  private rand: () => number;
  private server: Server | undefined;
  private readonly now: () => Date;
  private orders = 0;
  private signing: { key: CryptoKey; jwk: JWK } | undefined;

  constructor(private readonly opts: GooglePlaySimulatorOptions) {
    this.rand = mulberry32(opts.seed ?? 1);
    this.now = opts.now ?? (() => new Date());
  }

  setFaults(f: GooglePlayFaults & { seed?: number }): void {
    const { seed, ...faults } = f;
    this.faults = { latencyMs: 0, error500: 0, ...faults };
    this.rand = mulberry32(seed ?? this.opts.seed ?? 1);
  }

  async start(): Promise<{ url: string }> {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    this.signing = { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' } };
    const server = createServer((req, res) => { void this.handle(req, res); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** A buyer subscribes (or upgrades from `linkedPurchaseToken`, whose subscription ends): returns the new purchase token. */
  buy(o: { productId: string; days?: number; linkedPurchaseToken?: string; accountId?: string }): string {
    const token = randomBytes(24).toString('base64url');
    const start = this.now();
    if (o.linkedPurchaseToken) this.setState(o.linkedPurchaseToken, 'SUBSCRIPTION_STATE_EXPIRED');
    this.subs.set(token, {
      kind: 'androidpublisher#subscriptionPurchaseV2', regionCode: 'JP', startTime: start.toISOString(),
      subscriptionState: 'SUBSCRIPTION_STATE_ACTIVE', latestOrderId: `GPA.3300-0000-0000-${String(++this.orders).padStart(5, '0')}`,
      acknowledgementState: 'ACKNOWLEDGEMENT_STATE_PENDING',
      lineItems: [{
        productId: o.productId, expiryTime: new Date(start.getTime() + (o.days ?? 30) * 86_400_000).toISOString(),
        autoRenewingPlan: { autoRenewEnabled: true }, offerDetails: { basePlanId: 'monthly' },
      }],
      ...(o.linkedPurchaseToken ? { linkedPurchaseToken: o.linkedPurchaseToken } : {}),
      ...(o.accountId ? { externalAccountIdentifiers: { obfuscatedExternalAccountId: o.accountId } } : {}),
      testPurchase: {},
    });
    return token;
  }

  setState(token: string, state: SubscriptionState): void {
    const s = this.subs.get(token);
    if (!s) throw new Error(`no subscription for token ${token}`);
    s.subscriptionState = state;
    if (state !== 'SUBSCRIPTION_STATE_ACTIVE' && state !== 'SUBSCRIPTION_STATE_IN_GRACE_PERIOD') {
      for (const l of s.lineItems) if (l.autoRenewingPlan) l.autoRenewingPlan.autoRenewEnabled = false;
    }
  }

  /** A Real-time developer notification for `token` as Pub/Sub pushes it, signed with the simulator's key. */
  async rtdn(token: string, notificationType: number, claims: OidcClaims): Promise<RtdnPush> {
    if (!this.signing) throw new Error('start the simulator first (it makes its signing key)');
    const productId = this.subs.get(token)?.lineItems[0]?.productId;
    const notification = {
      version: '1.0', packageName: this.opts.packageName, eventTimeMillis: String(this.now().getTime()),
      subscriptionNotification: { version: '1.0', notificationType, purchaseToken: token, ...(productId ? { subscriptionId: productId } : {}) },
    };
    const messageId = String(Math.floor(this.rand() * 1e15));
    const body = JSON.stringify({
      message: { data: Buffer.from(JSON.stringify(notification)).toString('base64'), messageId, message_id: messageId, publishTime: this.now().toISOString() },
      subscription: 'projects/seigo-sim/subscriptions/play-rtdn',
    });
    const now = Math.floor(this.now().getTime() / 1000);
    const jwt = await new SignJWT({ email: claims.email, email_verified: claims.emailVerified ?? true })
      .setProtectedHeader({ alg: 'RS256', kid: this.signing.jwk.kid!, typ: 'JWT' })
      .setIssuer(claims.issuer ?? 'https://accounts.google.com').setAudience(claims.audience).setSubject(randomUUID())
      .setIssuedAt(now).setExpirationTime(now + (claims.expiresInSeconds ?? 3_600)).sign(this.signing.key);
    return { messageId, body, authorization: `Bearer ${jwt}` };
  }

  /** Pushes as Pub/Sub does: retried with backoff until a 2xx (102, 200, 201, 202, 204 ack), once more when `duplicate`. */
  async push(url: string, p: RtdnPush, o: { delaysMs?: readonly number[]; duplicate?: boolean } = {}): Promise<{ attempts: number; delivered: boolean }> {
    const delays = o.delaysMs ?? [10, 50, 100, 200, 400];
    const send = () => request(url, { method: 'POST', body: p.body, headers: { 'content-type': 'application/json', authorization: p.authorization } })
      .then(async (r) => { await r.body.dump(); return r.statusCode >= 200 && r.statusCode < 300; }, () => false);
    for (let i = 0; i <= delays.length; i++) {
      if (await send()) {
        if (o.duplicate) await send();
        return { attempts: i + 1, delivered: true };
      }
      if (i < delays.length) await sleep(delays[i]!);
    }
    return { attempts: delays.length + 1, delivered: false };
  }

  subscription(token: string): SubscriptionPurchaseV2 | undefined {
    const s = this.subs.get(token);
    return s ? structuredClone(s) : undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' }).end(JSON.stringify(body)); };
    if (req.method === 'GET' && req.url === JWKS_PATH) return send(200, { keys: this.signing ? [this.signing.jwk] : [] });
    if (this.faults.latencyMs > 0) await sleep(Math.floor(this.rand() * this.faults.latencyMs));
    if (req.headers.authorization !== `Bearer ${this.opts.accessToken}`) {
      return send(401, googleError(401, 'Request had invalid authentication credentials.', 'authError'));
    }
    if (this.faults.error500 > 0 && this.rand() < this.faults.error500) return send(500, googleError(500, 'Internal error encountered.', 'backendError'));
    const m = /^\/androidpublisher\/v3\/applications\/([^/]+)\/purchases\/subscriptionsv2\/tokens\/([^/?]+)$/.exec(new URL(req.url ?? '/', 'http://play').pathname);
    if (req.method !== 'GET' || !m) return send(404, googleError(404, 'Not Found', 'notFound'));
    if (decodeURIComponent(m[1]!) !== this.opts.packageName) return send(404, googleError(404, 'No application was found for the given package name.', 'applicationNotFound'));
    const sub = this.subs.get(decodeURIComponent(m[2]!));
    if (!sub) return send(400, googleError(400, 'Invalid Value', 'invalid'));
    send(200, sub);
  }
}
