// The in-app purchase saga: verify the purchase with the store (App Store JWS with Apple's library,
// or Google's subscriptionsv2.get), refuse a store subscription another member owns, start or renew it
// in the billing system (an operation), then persist the id mapping; a refusal after billing compensates it.
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import type { Operations } from '../operations/index.ts';
import type { AppStoreVerifier } from '../providers/app-store/index.ts';
import { getSubscriptionV2, type GooglePlayClientOptions } from '../providers/google-play/index.ts';
import { operationStep, type SagaDefinition, type StepResult } from '../sagas/index.ts';
import { claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId, type StoreClaim } from './mapping.ts';

export const PURCHASE_SAGA = 'iap.purchase';

export type PurchaseInput = Record<string, unknown> & ({
  platform: 'google_play';
  purchase_token: string;
  product_id: string;
  member_id: string;
} | {
  platform: 'app_store';
  /** The StoreKit 2 signed transaction (JWS) the app hands its backend. */
  signed_transaction: string;
  /** Optional: when given, it must be the transaction's product. */
  product_id?: string | undefined;
  member_id: string;
});

export interface PurchaseSagaDeps {
  pool: pg.Pool;
  operations: Operations;
  googlePlay?: GooglePlayClientOptions | undefined;
  appStore?: AppStoreVerifier | undefined;
  /** The billing system's provider name (an adapter made by billingAdapter). */
  billingProvider: string;
  /** Product ids sold in the apps; anything else is refused. */
  products: readonly string[];
  now?: (() => Date) | undefined;
}

/** What verification established; the later steps use only this, never the raw input. */
export interface VerifiedPurchase { store_id: string; linked_store_id: string | null; product_id: string; expires_at: string | null }

const refuse = (code: string, message: string, retryable = false): StepResult => ({ status: 'failed', code, message, retryable });
const claimOf = (input: PurchaseInput, v: VerifiedPurchase): StoreClaim => ({
  platform: input.platform, storeId: v.store_id, linkedStoreId: v.linked_store_id ?? undefined, memberId: input.member_id, productId: v.product_id,
  expiresAt: v.expires_at ? new Date(v.expires_at) : undefined,
});
const succeeded = (v: VerifiedPurchase): StepResult => ({ status: 'succeeded', output: { ...v } });

async function verifyGooglePlay(deps: PurchaseSagaDeps, input: Extract<PurchaseInput, { platform: 'google_play' }>, signal: AbortSignal): Promise<StepResult> {
  if (!deps.googlePlay) return refuse('platform_not_configured', 'Google Play is not configured');
  if (!deps.products.includes(input.product_id)) return refuse('unknown_product', `product ${input.product_id} is not sold here`);
  const r = await getSubscriptionV2(deps.googlePlay, input.purchase_token, signal);
  if (!r.ok) return refuse(r.error.code, r.error.message, r.error.code === 'store_unavailable');
  if (!r.value.productIds.includes(input.product_id)) return refuse('product_mismatch', `the purchase is for ${r.value.productIds.join(', ')}`);
  if (!r.value.entitled) return refuse('not_entitled', `the subscription is ${r.value.state}`);
  return succeeded({ store_id: input.purchase_token, linked_store_id: r.value.linkedPurchaseToken ?? null, product_id: input.product_id, expires_at: r.value.expiresAt?.toISOString() ?? null });
}

async function verifyAppStore(deps: PurchaseSagaDeps, input: Extract<PurchaseInput, { platform: 'app_store' }>): Promise<StepResult> {
  if (!deps.appStore) return refuse('platform_not_configured', 'the App Store is not configured');
  const r = await deps.appStore.transaction(input.signed_transaction);
  if (!r.ok) return refuse(r.error.code, r.error.message, r.error.code === 'store_unavailable');
  const t = r.value;
  if (!t.originalTransactionId || !t.productId) return refuse('invalid_signature', 'the transaction names no originalTransactionId or productId');
  if (!deps.products.includes(t.productId)) return refuse('unknown_product', `product ${t.productId} is not sold here`);
  if (input.product_id !== undefined && input.product_id !== t.productId) return refuse('product_mismatch', `the transaction is for ${t.productId}`);
  const now = (deps.now ?? (() => new Date()))().getTime();
  if (t.revocationDate !== undefined) return refuse('not_entitled', 'the transaction was revoked (refunded or family sharing ended)');
  if (t.expiresDate !== undefined && t.expiresDate <= now) return refuse('not_entitled', 'the subscription has expired');
  return succeeded({ store_id: t.originalTransactionId, linked_store_id: null, product_id: t.productId, expires_at: t.expiresDate ? new Date(t.expiresDate).toISOString() : null });
}

/** Whether the member may have it: refused (with a case) when another member owns it; otherwise start or renew. */
async function checkOwner(deps: PurchaseSagaDeps, input: PurchaseInput, v: VerifiedPurchase): Promise<StepResult> {
  const ids = [v.store_id, ...(v.linked_store_id ? [v.linked_store_id] : [])];
  for (const id of ids) {
    const sub = await subscriptionOfStoreId(deps.pool, input.platform, id);
    if (!sub) continue;
    if (sub.member_id !== input.member_id) {
      await reportClaimConflict(deps.pool, claimOf(input, v), { code: 'claimed_by_another_member', subscriptionId: sub.id, ownerMemberId: sub.member_id });
      return refuse('claimed_by_another_member', `the store subscription belongs to another member (subscription ${sub.id})`);
    }
    return { status: 'succeeded', output: { subscription_id: sub.id, billing: 'renew' } };
  }
  return { status: 'succeeded', output: { subscription_id: null, billing: 'start' } };
}

async function persist(deps: PurchaseSagaDeps, input: PurchaseInput, v: VerifiedPurchase): Promise<StepResult> {
  const claim = claimOf(input, v);
  const r = await withTx(deps.pool, (tx) => claimStoreSubscription(tx, claim));
  if (!r.ok) {
    await reportClaimConflict(deps.pool, claim, r.error);
    return refuse('claimed_by_another_member', `claimed meanwhile by another member (subscription ${r.error.subscriptionId})`);
  }
  return { status: 'succeeded', output: { subscription_id: r.value.subscription.id, created: r.value.created } };
}

export const verifiedOf = (outputs: Readonly<Record<string, Record<string, unknown>>>): VerifiedPurchase => outputs.verify as unknown as VerifiedPurchase;

export function purchaseSaga(deps: PurchaseSagaDeps): SagaDefinition<PurchaseInput> {
  const retry = { maxAttempts: 3, delaysMs: [500, 2_000], maxInquiries: 5 };
  return {
    name: PURCHASE_SAGA,
    steps: [
      {
        id: 'verify', retry, timeoutMs: 10_000,
        invoke: (ctx) => (ctx.input.platform === 'app_store' ? verifyAppStore(deps, ctx.input) : verifyGooglePlay(deps, ctx.input, ctx.signal)),
      },
      { id: 'check-owner', retry, invoke: (ctx) => checkOwner(deps, ctx.input, verifiedOf(ctx.outputs)) },
      operationStep<PurchaseInput>({ pool: deps.pool, operations: deps.operations }, {
        id: 'billing', provider: deps.billingProvider, retry, timeoutMs: 30_000,
        invoke: {
          kind: (ctx) => (ctx.outputs['check-owner']?.billing === 'renew' ? 'billing.renew' : 'billing.start'),
          request: (ctx) => {
            const v = verifiedOf(ctx.outputs);
            return { member_id: ctx.input.member_id, product_id: v.product_id, expires_at: v.expires_at, reference: ctx.sagaId };
          },
        },
        compensate: { kind: 'billing.cancel', request: (ctx) => ({ member_id: ctx.input.member_id }) },
        entity: (ctx) => ({ type: 'member', id: ctx.input.member_id }),
      }),
      { id: 'persist', retry, invoke: (ctx) => persist(deps, ctx.input, verifiedOf(ctx.outputs)) },
    ],
  };
}

