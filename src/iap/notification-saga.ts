// Store notifications applied to a subscription: a saga per notification (keyed by provider and
// event id) started in the inbox worker's transaction, so the notification is acknowledged and
// processed whatever billing does later. Steps: resolve the mapping, drive the billing system, record the state.
import type pg from 'pg';
import type { EventHandlers } from '../intake/index.ts';
import type { Operations } from '../operations/index.ts';
import { IAP_CHANGES, type IapChange } from '../providers/app-store/index.ts';
import type { CanonicalEvent } from '../providers/types.ts';
import { operationStep, type SagaDefinition, type Sagas, type StepResult } from '../sagas/index.ts';
import { subscriptionOfStoreId, type IapPlatform } from './mapping.ts';

export const NOTIFICATION_SAGA = 'iap.notification';

export interface NotificationInput extends Record<string, unknown> {
  platform: IapPlatform;
  store_id: string;
  change: IapChange;
  product_id: string | null;
  expires_at: string | null;
}

/** Data: what each change asks of the billing system (none: the member keeps access until the store says otherwise). */
export const BILLING_ACTION: Readonly<Record<IapChange, 'billing.renew' | 'billing.cancel' | null>> = {
  subscribed: 'billing.renew', renewed: 'billing.renew', recovered: 'billing.renew', product_changed: 'billing.renew', refund_reversed: 'billing.renew',
  auto_renew_on: null, auto_renew_off: null, grace_period: null, renewal_failed: null,
  expired: 'billing.cancel', refunded: 'billing.cancel', revoked: 'billing.cancel',
};

/** Data: the subscription's state and auto-renew after each change (undefined: unchanged). */
const STATE_AFTER: Readonly<Record<IapChange, { state?: string; autoRenew?: boolean }>> = {
  subscribed: { state: 'active', autoRenew: true }, renewed: { state: 'active' }, recovered: { state: 'active' }, product_changed: { state: 'active' },
  refund_reversed: { state: 'active' }, auto_renew_on: { autoRenew: true }, auto_renew_off: { autoRenew: false },
  grace_period: { state: 'grace_period' }, renewal_failed: { state: 'billing_retry' },
  expired: { state: 'expired', autoRenew: false }, refunded: { state: 'refunded', autoRenew: false }, revoked: { state: 'revoked', autoRenew: false },
};

const RECORD = `UPDATE iap_subscriptions SET state = COALESCE($2, state), auto_renew = COALESCE($3, auto_renew),
  expires_at = COALESCE($4, expires_at), product_id = COALESCE($5, product_id), updated_at = now() WHERE id = $1`;

async function resolve(pool: pg.Pool, input: NotificationInput): Promise<StepResult> {
  const sub = await subscriptionOfStoreId(pool, input.platform, input.store_id);
  // Not ours yet (its purchase has not reached POST /v1/iap/purchases): nothing to apply, and visible as such.
  if (!sub) return { status: 'failed', code: 'unmapped', message: `no subscription maps ${input.platform} ${input.store_id}`, retryable: false };
  return { status: 'succeeded', output: { subscription_id: sub.id, member_id: sub.member_id, product_id: sub.product_id } };
}

export function notificationSaga(deps: { pool: pg.Pool; operations: Operations; billingProvider: string }): SagaDefinition<NotificationInput> {
  const retry = { maxAttempts: 5, delaysMs: [1_000, 5_000, 30_000], maxInquiries: 5 };
  const member = (o: Readonly<Record<string, Record<string, unknown>>>) => String(o.resolve?.member_id ?? '');
  const billing = operationStep<NotificationInput>({ pool: deps.pool, operations: deps.operations }, {
    id: 'billing', provider: deps.billingProvider, retry, timeoutMs: 30_000,
    invoke: {
      kind: (ctx) => BILLING_ACTION[ctx.input.change] ?? 'billing.renew',
      request: (ctx) => ({
        member_id: member(ctx.outputs), product_id: ctx.input.product_id ?? ctx.outputs.resolve?.product_id, expires_at: ctx.input.expires_at, reference: ctx.sagaId,
      }),
    },
    entity: (ctx) => ({ type: 'member', id: member(ctx.outputs) }),
  });
  return {
    name: NOTIFICATION_SAGA,
    steps: [
      { id: 'resolve', retry, invoke: (ctx) => resolve(deps.pool, ctx.input) },
      { ...billing, invoke: (ctx) => (BILLING_ACTION[ctx.input.change] ? billing.invoke(ctx) : Promise.resolve({ status: 'succeeded', output: { billing: 'none' } })) },
      {
        id: 'record', retry,
        invoke: async (ctx) => {
          const after = STATE_AFTER[ctx.input.change];
          await deps.pool.query(RECORD, [ctx.outputs.resolve?.subscription_id, after.state ?? null, after.autoRenew ?? null, ctx.input.expires_at, ctx.input.product_id]);
          return { status: 'succeeded', output: { state: after.state ?? null } };
        },
      },
    ],
  };
}

/** Starts the notification's saga in the inbox transaction for every `iap.<change>` event. */
export function registerNotificationHandlers(handlers: EventHandlers, sagas: Sagas, def: SagaDefinition<NotificationInput>): void {
  for (const change of IAP_CHANGES) {
    handlers.on(`iap.${change}`, async ({ tx }, event: CanonicalEvent, meta) => {
      const d = event.data as { platform: IapPlatform; store_id: string; product_id?: string | null; expires_at?: string | null };
      await sagas.start(tx, def, { platform: d.platform, store_id: d.store_id, change, product_id: d.product_id ?? null, expires_at: d.expires_at ?? null }, {
        key: `${meta.provider}:${meta.eventId}`, entity: { type: 'iap_store_subscription', id: `${d.platform}:${d.store_id}` },
      });
    });
  }
}
