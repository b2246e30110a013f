// What an operator does to a subscription beyond creating it, as Svix and Convoy users expect: change it,
// delete it, rotate its signing secret with an overlap, send it a test message, and read the attempt log
// of any of its HTTP deliveries. Subscriptions from the configuration are changed in the configuration.
import type pg from 'pg';
import { withTx, type Queryable } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { wakeWhenVisible } from '../kernel/wake.ts';
import {
  getSubscription, newWebhookSecret, setSubscriptionStatus, upsertSubscription,
  type Subscription, type SubscriptionStatus, type UpsertSubscription,
} from './subscriptions.ts';

export type SubscriptionRefusal =
  | { code: 'subscription_not_found' }
  /** A configuration subscription would be put back as the file says at the next start. */
  | { code: 'subscription_from_config' }
  /** Only an HTTP target has a signing secret; a handler's test message would run business code. */
  | { code: 'not_http_target'; targetType: string };

export interface SubscriptionChange {
  topic?: string | undefined;
  filter?: Record<string, unknown> | undefined;
  target?: UpsertSubscription['target'] | undefined;
  retrySchedule?: number[] | undefined;
  status?: SubscriptionStatus | undefined;
  reason?: string | null | undefined;
}

async function changeable(db: Queryable, name: string): Promise<Result<Subscription, SubscriptionRefusal>> {
  const s = await getSubscription(db, name);
  if (!s) return err({ code: 'subscription_not_found' });
  if (s.source === 'config') return err({ code: 'subscription_from_config' });
  return ok(s);
}

/** The target as upsertSubscription takes it (the secret stays: it changes only by rotation). */
function asUpsertTarget(t: Subscription['target']): UpsertSubscription['target'] {
  return t.type === 'http' ? { type: 'http', url: t.url, timeoutMs: t.timeoutMs, body: t.body } : t;
}

/**
 * Changes what is given (topic, filter, target, retry schedule, status); the rest stays. A status alone may
 * change on a configuration subscription too (pausing one is an operator's call); anything else may not.
 */
export async function updateSubscription(pool: pg.Pool, name: string, c: SubscriptionChange): Promise<Result<Subscription, SubscriptionRefusal>> {
  return withTx(pool, async (tx) => {
    const shape = c.topic !== undefined || c.filter !== undefined || c.target !== undefined || c.retrySchedule !== undefined;
    const found = shape ? await changeable(tx, name) : await getSubscription(tx, name).then((s) => (s ? ok(s) : err({ code: 'subscription_not_found' as const })));
    if (!found.ok) return found;
    const s = found.value;
    if (shape) {
      await upsertSubscription(tx, {
        name: s.name, topic: c.topic ?? s.topic, filter: c.filter ?? s.filter, target: c.target ?? asUpsertTarget(s.target),
        retrySchedule: c.retrySchedule ?? s.retryScheduleMs, source: s.source,
      });
    }
    if (c.status !== undefined) await setSubscriptionStatus(tx, s.id, c.status, c.reason ?? null);
    return ok((await getSubscription(tx, s.id))!);
  });
}

const DELETE_DELIVERIES = 'DELETE FROM deliveries WHERE subscription_id = $1';
const DELETE_SUBSCRIPTION = 'DELETE FROM subscriptions WHERE id = $1';

/** Deletes a subscription with its deliveries and their attempt logs; returns how many deliveries went with it. */
export async function deleteSubscription(pool: pg.Pool, name: string): Promise<Result<{ id: string; deliveries: number }, SubscriptionRefusal>> {
  return withTx(pool, async (tx) => {
    const found = await changeable(tx, name);
    if (!found.ok) return found;
    // Locked first, so a worker's claim (which joins the subscription) waits, then finds nothing.
    await tx.query('SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE', [found.value.id]);
    const d = await tx.query(DELETE_DELIVERIES, [found.value.id]);
    await tx.query(DELETE_SUBSCRIPTION, [found.value.id]);
    return ok({ id: found.value.id, deliveries: d.rowCount ?? 0 });
  });
}

const ROTATE_SECRET = `
UPDATE subscriptions SET
  previous_secret = CASE WHEN $3::bigint > 0 THEN secret END,
  previous_secret_expires_at = CASE WHEN $3::bigint > 0 THEN now() + $3::bigint * interval '1 millisecond' END,
  secret = $2, updated_at = now()
WHERE id = $1
RETURNING previous_secret_expires_at`;

export interface RotatedSecret { secret: string; previousSecretExpiresAt: Date | null }

/**
 * A new signing secret; the one it replaces keeps signing beside it for `overlapMs` (0: stops at once), so
 * every delivery in that window carries both signatures and a receiver verifies with either secret.
 * A configuration subscription's secret can be rotated here too, unless the file names one (the file would win).
 */
export async function rotateSubscriptionSecret(db: Queryable, name: string, overlapMs: number): Promise<Result<RotatedSecret, SubscriptionRefusal>> {
  const s = await getSubscription(db, name);
  if (!s) return err({ code: 'subscription_not_found' });
  if (s.target.type !== 'http') return err({ code: 'not_http_target', targetType: s.target.type });
  const secret = newWebhookSecret();
  const r = await db.query<{ previous_secret_expires_at: Date | null }>(ROTATE_SECRET, [s.id, secret, overlapMs]);
  return ok({ secret, previousSecretExpiresAt: r.rows[0]?.previous_secret_expires_at ?? null });
}

/** The topic of test messages: a receiver can tell them from real ones. */
export const TEST_TOPIC = 'seigo.test';

const INSERT_TEST_MESSAGE = `
WITH m AS (
  INSERT INTO outbox_messages (id, topic, attributes, payload) VALUES ($1, $2, '{"test": true}', $3) RETURNING id
)
INSERT INTO deliveries (id, message_id, subscription_id, target_type) SELECT $4, m.id, $5, $6 FROM m`;

/**
 * A test message for one subscription only (no fan-out: no other subscription sees it), delivered by the
 * workers like any other, signed, retried and logged; its delivery id is the handle to its attempt log.
 */
export async function sendTestMessage(
  db: Queryable, name: string, payload: unknown,
): Promise<Result<{ messageId: string; deliveryId: string; topic: string }, SubscriptionRefusal>> {
  const s = await getSubscription(db, name);
  if (!s) return err({ code: 'subscription_not_found' });
  if (s.target.type === 'handler') return err({ code: 'not_http_target', targetType: s.target.type });
  const messageId = uuidv7();
  const deliveryId = uuidv7();
  await db.query(INSERT_TEST_MESSAGE, [messageId, TEST_TOPIC, JSON.stringify(payload ?? { message: 'a test message from seigo' }), deliveryId, s.id, s.target.type]);
  wakeWhenVisible(db, 'deliveries');
  return ok({ messageId, deliveryId, topic: TEST_TOPIC });
}

export interface DeliveryAttempt {
  id: string; attempt: number; startedAt: Date; latencyMs: number; statusCode: number | null;
  outcome: 'delivered' | 'retry' | 'dead' | 'disabled'; error: string | null; responseExcerpt: string | null;
}

// Oldest first, keyset-paged on (started_at, id): attempt numbers restart when a delivery is redriven.
const LIST_ATTEMPTS = `
SELECT id, attempt, started_at, latency_ms, status_code, outcome, error, response_excerpt FROM delivery_attempts
WHERE delivery_id = $1 AND ($2::uuid IS NULL OR (started_at, id) > (SELECT started_at, id FROM delivery_attempts WHERE id = $2))
ORDER BY started_at, id LIMIT $3`;

/** A delivery's attempts, oldest first, `limit + 1` of them (the extra one says there are more), or null for no such delivery. */
export async function listDeliveryAttempts(
  db: Queryable, deliveryId: string, page: { limit: number; startingAfter?: string | undefined },
): Promise<DeliveryAttempt[] | null> {
  const exists = await db.query('SELECT 1 FROM deliveries WHERE id = $1', [deliveryId]);
  if (exists.rowCount === 0) return null;
  const r = await db.query<{
    id: string; attempt: number; started_at: Date; latency_ms: number; status_code: number | null;
    outcome: DeliveryAttempt['outcome']; error: string | null; response_excerpt: string | null;
  }>(LIST_ATTEMPTS, [deliveryId, page.startingAfter ?? null, page.limit + 1]);
  return r.rows.map((x) => ({
    id: x.id, attempt: x.attempt, startedAt: x.started_at, latencyMs: x.latency_ms, statusCode: x.status_code,
    outcome: x.outcome, error: x.error, responseExcerpt: x.response_excerpt,
  }));
}
