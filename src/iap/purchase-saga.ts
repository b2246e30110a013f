// The in-app purchase saga, Google Play for now: verify the purchase with the store,
// refuse a store subscription another member owns, start or renew it in the billing system (an
// operation), then persist the id mapping; a refusal after the billing call compensates it (cancel).
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import type { Operations } from '../operations/index.ts';
import { getSubscriptionV2, type GooglePlayClientOptions } from '../providers/google-play/index.ts';
import { operationStep, type SagaDefinition, type StepResult } from '../sagas/index.ts';
import { claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId, type StoreClaim } from './mapping.ts';

export const PURCHASE_SAGA = 'iap.purchase';

export interface PurchaseInput extends Record<string, unknown> {
  platform: 'google_play';
  purchase_token: string;
  product_id: string;
  member_id: string;
}

export interface PurchaseSagaDeps {
  pool: pg.Pool;
  operations: Operations;
  googlePlay: GooglePlayClientOptions;
  /** The billing system's provider name (an adapter made by billingAdapter). */
  billingProvider: string;
  /** Product ids sold in the apps; anything else is refused. */
  products: readonly string[];
}

interface Verified { store_id: string; linked_store_id: string | null; product_id: string; expires_at: string | null }

const refuse = (code: string, message: string): StepResult => ({ status: 'failed', code, message, retryable: false });
const claimOf = (input: PurchaseInput, v: Verified): StoreClaim => ({
  platform: 'google_play', storeId: v.store_id, linkedStoreId: v.linked_store_id ?? undefined, memberId: input.member_id, productId: v.product_id,
  expiresAt: v.expires_at ? new Date(v.expires_at) : undefined,
});

async function verify(deps: PurchaseSagaDeps, input: PurchaseInput, signal: AbortSignal): Promise<StepResult> {
  if (!deps.products.includes(input.product_id)) return refuse('unknown_product', `product ${input.product_id} is not sold here`);
  const r = await getSubscriptionV2(deps.googlePlay, input.purchase_token, signal);
  if (!r.ok) return { status: 'failed', code: r.error.code, message: r.error.message, retryable: r.error.code === 'store_unavailable' };
  if (!r.value.productIds.includes(input.product_id)) return refuse('product_mismatch', `the purchase is for ${r.value.productIds.join(', ')}`);
  if (!r.value.entitled) return refuse('not_entitled', `the subscription is ${r.value.state}`);
  const out: Verified = { store_id: input.purchase_token, linked_store_id: r.value.linkedPurchaseToken ?? null, product_id: input.product_id, expires_at: r.value.expiresAt?.toISOString() ?? null };
  return { status: 'succeeded', output: { ...out } };
}

/** Whether the member may have it: refused (with a case) when another member owns it; otherwise start or renew. */
async function checkOwner(deps: PurchaseSagaDeps, input: PurchaseInput, v: Verified): Promise<StepResult> {
  const ids = [v.store_id, ...(v.linked_store_id ? [v.linked_store_id] : [])];
  for (const id of ids) {
    const sub = await subscriptionOfStoreId(deps.pool, 'google_play', id);
    if (!sub) continue;
    if (sub.member_id !== input.member_id) {
      await reportClaimConflict(deps.pool, claimOf(input, v), { code: 'claimed_by_another_member', subscriptionId: sub.id, ownerMemberId: sub.member_id });
      return refuse('claimed_by_another_member', `the store subscription belongs to another member (subscription ${sub.id})`);
    }
    return { status: 'succeeded', output: { subscription_id: sub.id, billing: 'renew' } };
  }
  return { status: 'succeeded', output: { subscription_id: null, billing: 'start' } };
}

async function persist(deps: PurchaseSagaDeps, input: PurchaseInput, v: Verified): Promise<StepResult> {
  const claim = claimOf(input, v);
  const r = await withTx(deps.pool, (tx) => claimStoreSubscription(tx, claim));
  if (!r.ok) {
    await reportClaimConflict(deps.pool, claim, r.error);
    return refuse('claimed_by_another_member', `claimed meanwhile by another member (subscription ${r.error.subscriptionId})`);
  }
  return { status: 'succeeded', output: { subscription_id: r.value.subscription.id, created: r.value.created } };
}

export function purchaseSaga(deps: PurchaseSagaDeps): SagaDefinition<PurchaseInput> {
  const verified = (outputs: Readonly<Record<string, Record<string, unknown>>>) => outputs.verify as unknown as Verified;
  const retry = { maxAttempts: 3, delaysMs: [500, 2_000], maxInquiries: 5 };
  return {
    name: PURCHASE_SAGA,
    steps: [
      { id: 'verify', retry, timeoutMs: 10_000, invoke: (ctx) => verify(deps, ctx.input, ctx.signal) },
      { id: 'check-owner', retry, invoke: (ctx) => checkOwner(deps, ctx.input, verified(ctx.outputs)) },
      operationStep<PurchaseInput>({ pool: deps.pool, operations: deps.operations }, {
        id: 'billing', provider: deps.billingProvider, retry, timeoutMs: 30_000,
        invoke: {
          kind: (ctx) => (ctx.outputs['check-owner']?.billing === 'renew' ? 'billing.renew' : 'billing.start'),
          request: (ctx) => ({ member_id: ctx.input.member_id, product_id: ctx.input.product_id, expires_at: verified(ctx.outputs).expires_at, reference: ctx.sagaId }),
        },
        compensate: { kind: 'billing.cancel', request: (ctx) => ({ member_id: ctx.input.member_id }) },
        entity: (ctx) => ({ type: 'member', id: ctx.input.member_id }),
      }),
      { id: 'persist', retry, invoke: (ctx) => persist(deps, ctx.input, verified(ctx.outputs)) },
    ],
  };
}
