// The in-app purchase facade as the API uses it: wiring from the configuration (the stores and the
// billing system are declared providers), and one purchase run through its saga to an outcome the
// route turns into a response: completed, still pending (a retry is due), or refused with its cause.
import type pg from 'pg';
import { listCases } from '../cases/index.ts';
import type { Config } from '../kernel/config.ts';
import type { Operations } from '../operations/index.ts';
import { appStoreVerifier, type AppStoreVerifier } from '../providers/app-store/index.ts';
import type { GooglePlayClientOptions } from '../providers/google-play/index.ts';
import { sagaHistory, type SagaDefinition, type Sagas, type SagaStatus } from '../sagas/index.ts';
import type { Dispatcher } from 'undici';
import { subscriptionOfStoreId, type IapSubscription } from './mapping.ts';
import { purchaseSaga, verifiedOf, type PurchaseInput } from './purchase-saga.ts';
import { notificationSaga, registerNotificationHandlers, type NotificationInput } from './notification-saga.ts';
import type { EventHandlers } from '../intake/index.ts';

export interface Iap {
  purchase: SagaDefinition<PurchaseInput>;
  notification: SagaDefinition<NotificationInput>;
  appStore: AppStoreVerifier | undefined;
  googlePlay: GooglePlayClientOptions | undefined;
  products: readonly string[];
}

export type PurchaseOutcome =
  | { kind: 'completed'; sagaId: string; subscription: IapSubscription; created: boolean }
  | { kind: 'pending'; sagaId: string; status: SagaStatus; cause: string | null }
  | { kind: 'refused'; sagaId: string; status: SagaStatus; code: string; message: string; caseId?: string | undefined };

/** The stores' clients from their provider declarations; undefined when a store is not declared. */
export function storesOf(config: Pick<Config, 'providers' | 'iap'>, dispatcher?: Dispatcher): Pick<Iap, 'appStore' | 'googlePlay'> {
  const apple = config.iap ? config.providers[config.iap.appStoreProvider] : undefined;
  const google = config.iap ? config.providers[config.iap.googlePlayProvider] : undefined;
  return {
    appStore: apple?.kind === 'app-store'
      ? appStoreVerifier({ bundleId: apple.bundleId, environment: apple.environment, appAppleId: apple.appAppleId, rootCertificates: apple.rootCertificates, onlineChecks: apple.onlineChecks })
      : undefined,
    googlePlay: google?.kind === 'google-play'
      ? { packageName: google.packageName, accessToken: google.accessToken, apiBase: google.apiBase, ...(dispatcher ? { dispatcher } : {}) }
      : undefined,
  };
}

/** Defines the purchase saga when the configuration sells in-app purchases; undefined otherwise. */
export function createIap(deps: {
  pool: pg.Pool; operations: Operations; sagas: Sagas; handlers: EventHandlers; config: Pick<Config, 'providers' | 'iap'>; dispatcher?: Dispatcher;
}): Iap | undefined {
  const c = deps.config.iap;
  if (!c) return undefined;
  const stores = storesOf(deps.config, deps.dispatcher);
  const purchase = deps.sagas.define(purchaseSaga({ pool: deps.pool, operations: deps.operations, billingProvider: c.billingProvider, products: c.products, ...stores }));
  const notification = deps.sagas.define(notificationSaga({ pool: deps.pool, operations: deps.operations, billingProvider: c.billingProvider }));
  registerNotificationHandlers(deps.handlers, deps.sagas, notification);
  return { purchase, notification, ...stores, products: c.products };
}

/** Starts (or, with the same key, finds) the purchase's saga, advances it now, and reads its outcome. */
/** How long a purchase request waits for a saga that a worker claimed before this request could run it. */
const WAIT_FOR_WORKER_MS = 5_000;
const LEASED_ELSEWHERE = 'SELECT locked_until > now() AS leased FROM sagas WHERE id = $1';

export async function runPurchase(pool: pg.Pool, sagas: Sagas, iap: Iap, input: PurchaseInput, key?: string): Promise<PurchaseOutcome> {
  const { id } = await sagas.start(pool, iap.purchase, input, { key, entity: { type: 'member', id: input.member_id } });
  await sagas.run(id);
  // A worker woken by the new saga may have claimed it before run() could: while that worker holds
  // it, wait for its result rather than answer 202 to a purchase that is completing right now.
  let outcome = await purchaseOutcome(pool, id, input);
  for (const until = Date.now() + WAIT_FOR_WORKER_MS; outcome.kind === 'pending' && outcome.status === 'running' && Date.now() < until;) {
    const { rows } = await pool.query<{ leased: boolean | null }>(LEASED_ELSEWHERE, [id]);
    if (!rows[0]?.leased) break;
    await new Promise((r) => setTimeout(r, 50));
    outcome = await purchaseOutcome(pool, id, input);
  }
  return outcome;
}

export async function purchaseOutcome(pool: pg.Pool, sagaId: string, input: PurchaseInput): Promise<PurchaseOutcome> {
  const h = await sagaHistory(pool, sagaId);
  if (!h) throw new Error(`saga ${sagaId} vanished`);
  const { saga } = h;
  const outputs = Object.fromEntries(h.steps.filter((s) => s.output).map((s) => [s.step_id, s.output!]));
  if (saga.status === 'completed') {
    const sub = await subscriptionOfStoreId(pool, input.platform, verifiedOf(outputs).store_id);
    if (!sub) throw new Error(`saga ${sagaId} completed without its subscription`);
    return { kind: 'completed', sagaId, subscription: sub, created: outputs.persist?.created === true };
  }
  // The invoke that failed for good is the cause; compensations after it are the saga's business.
  const failed = [...h.attempts].reverse().find((a) => a.phase === 'invoke' && a.status === 'failed' && a.error_code);
  if (saga.status === 'running' || !failed) return { kind: 'pending', sagaId, status: saga.status, cause: saga.last_error };
  const refused = { kind: 'refused' as const, sagaId, status: saga.status, code: failed.error_code!, message: failed.error_message ?? failed.error_code! };
  if (refused.code !== 'claimed_by_another_member' || !outputs.verify) return refused;
  const sub = await subscriptionOfStoreId(pool, input.platform, verifiedOf(outputs).store_id);
  const [c] = sub ? await listCases(pool, { subjectType: 'iap_subscription', subjectId: sub.id, cause: 'iap_claimed_by_another_member', limit: 1 }) : [];
  return { ...refused, caseId: c?.id };
}
