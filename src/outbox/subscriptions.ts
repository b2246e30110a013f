// Subscriptions: a topic (exact, "prefix.*" or "*"), an attribute filter and a target. Added at
// any time through config or the admin API; producers never change for a new consumer.
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { DEFAULT_DELIVERY_SCHEDULE, parseDuration } from '../kernel/backoff.ts';
import type { SubscriptionConfig } from '../kernel/config.ts';
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';

export type SubscriptionStatus = 'active' | 'paused' | 'disabled';

export interface Subscription {
  id: string;
  name: string;
  topic: string;
  filter: Record<string, unknown>;
  target:
    | { type: 'handler'; handler: string }
    | { type: 'http'; url: string; timeoutMs: number; body: 'envelope' | 'payload' }
    | { type: 'nats'; subject: string; stream: string; timeoutMs: number };
  retryScheduleMs: number[];
  status: SubscriptionStatus;
  statusReason: string | null;
  source: 'config' | 'api';
  createdAt: Date;
  updatedAt: Date;
}

interface SubscriptionRow {
  id: string; name: string; topic: string; filter: Record<string, unknown>; target_type: Subscription['target']['type'];
  target: Record<string, unknown>; retry_schedule_ms: string[]; status: SubscriptionStatus; status_reason: string | null;
  source: 'config' | 'api'; created_at: Date; updated_at: Date;
}

export const DEFAULT_SCHEDULE_MS = DEFAULT_DELIVERY_SCHEDULE.map(parseDuration);

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

function targetOf(r: SubscriptionRow): Subscription['target'] {
  const t = r.target;
  switch (r.target_type) {
    case 'http': return { type: 'http', url: String(t.url), timeoutMs: Number(t.timeoutMs ?? 10_000), body: t.body === 'payload' ? 'payload' : 'envelope' };
    case 'nats': return { type: 'nats', subject: String(t.subject), stream: String(t.stream), timeoutMs: Number(t.timeoutMs ?? 5_000) };
    case 'handler': return { type: 'handler', handler: String(t.handler) };
  }
}

/** What the `target` column holds for a target (the type has its own column; an HTTP secret too). */
function targetColumn(t: UpsertSubscription['target']): Record<string, unknown> {
  switch (t.type) {
    case 'http': return { url: t.url, timeoutMs: t.timeoutMs, body: t.body ?? 'envelope' };
    case 'nats': return { subject: t.subject, stream: t.stream, timeoutMs: t.timeoutMs ?? 5_000 };
    case 'handler': return { handler: t.handler };
  }
}

function fromRow(r: SubscriptionRow): Subscription {
  const target = targetOf(r);
  return {
    id: r.id, name: r.name, topic: r.topic, filter: r.filter, target, retryScheduleMs: r.retry_schedule_ms.map(Number),
    status: r.status, statusReason: r.status_reason, source: r.source, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

type TargetConfig = SubscriptionConfig['target'];

export interface UpsertSubscription {
  name: string;
  topic: string;
  filter?: Record<string, unknown>;
  /** An HTTP target's body is the Standard Webhooks envelope unless it says otherwise. */
  target:
    | Extract<TargetConfig, { type: 'handler' }>
    | (Omit<Extract<TargetConfig, { type: 'http' }>, 'body'> & { body?: 'envelope' | 'payload' })
    | (Omit<Extract<TargetConfig, { type: 'nats' }>, 'timeoutMs'> & { timeoutMs?: number });
  retrySchedule?: number[] | undefined;
  source?: 'config' | 'api';
}

/** Creates or updates a subscription by name; a NATS target's ack timeout defaults to 5 s; an HTTP target without a secret gets a new one. Returns it with its secret. */
export async function upsertSubscription(db: Queryable, s: UpsertSubscription): Promise<Subscription & { secret: string | null }> {
  const target = targetColumn(s.target);
  const secret = s.target.type === 'http' ? (s.target.secret ?? null) : null;
  // Deliveries carry their target type (the claim queries' index); when the target type changes,
  // the ones not yet delivered and not in flight follow it, or no worker would ever claim them.
  const { rows } = await db.query<SubscriptionRow & { secret: string | null }>(
    `WITH s AS (
       INSERT INTO subscriptions (id, name, topic, filter, target_type, target, secret, retry_schedule_ms, source)
       VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, CASE WHEN $5 = 'http' THEN $8 END), $9, $10)
       ON CONFLICT (name) DO UPDATE SET topic = EXCLUDED.topic, filter = EXCLUDED.filter, target_type = EXCLUDED.target_type,
         target = EXCLUDED.target, secret = COALESCE($7, subscriptions.secret, EXCLUDED.secret),
         retry_schedule_ms = EXCLUDED.retry_schedule_ms, updated_at = now()
       RETURNING *
     ), retyped AS (
       UPDATE deliveries d SET target_type = s.target_type, updated_at = now() FROM s
       WHERE d.subscription_id = s.id AND d.target_type <> s.target_type AND d.status IN ('pending', 'dead', 'cancelled')
     )
     SELECT * FROM s`,
    [uuidv7(), s.name, s.topic, JSON.stringify(s.filter ?? {}), s.target.type, JSON.stringify(target), secret, newWebhookSecret(),
      s.retrySchedule ?? DEFAULT_SCHEDULE_MS, s.source ?? 'api'],
  );
  const row = rows[0]!;
  return { ...fromRow(row), secret: row.secret };
}

export async function listSubscriptions(db: Queryable): Promise<Subscription[]> {
  const { rows } = await db.query<SubscriptionRow>('SELECT * FROM subscriptions ORDER BY name');
  return rows.map(fromRow);
}

export async function getSubscription(db: Queryable, idOrName: string): Promise<Subscription | null> {
  const { rows } = await db.query<SubscriptionRow>(
    'SELECT * FROM subscriptions WHERE name = $1 OR id::text = $1', [idOrName]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Moves a subscription to a status; 'active' re-enables one that a 410 disabled. */
export async function setSubscriptionStatus(db: Queryable, idOrName: string, status: SubscriptionStatus, reason: string | null): Promise<boolean> {
  const r = await db.query(
    'UPDATE subscriptions SET status = $2, status_reason = $3, updated_at = now() WHERE name = $1 OR id::text = $1',
    [idOrName, status, reason]);
  return (r.rowCount ?? 0) > 0;
}

const REMOVED_FROM_CONFIG = 'removed from configuration';

/**
 * Config subscriptions are applied at start; ones removed from config are paused, never deleted,
 * and resume when they come back (ones paused or disabled for another reason stay as they are).
 */
export async function syncConfigSubscriptions(pool: pg.Pool, subs: readonly SubscriptionConfig[]): Promise<void> {
  for (const s of subs) {
    await upsertSubscription(pool, { name: s.name, topic: s.topic, filter: s.filter, target: s.target, retrySchedule: s.retrySchedule, source: 'config' });
  }
  const names = subs.map((s) => s.name);
  await pool.query(
    `UPDATE subscriptions SET status = 'active', status_reason = NULL, updated_at = now()
     WHERE source = 'config' AND status = 'paused' AND status_reason = $2 AND name = ANY($1::text[])`, [names, REMOVED_FROM_CONFIG]);
  await pool.query(
    `UPDATE subscriptions SET status = 'paused', status_reason = $2, updated_at = now()
     WHERE source = 'config' AND status = 'active' AND NOT (name = ANY($1::text[]))`, [names, REMOVED_FROM_CONFIG]);
}
