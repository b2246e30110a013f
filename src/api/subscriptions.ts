// Subscriptions as Svix and Convoy users manage them (/admin/v1): change one, delete one, rotate its signing
// secret with an overlap, send it a test message, and read each HTTP delivery's attempt log. snake_case JSON;
// the attempt log pages as every list does (`limit`, `starting_after`; `{object, data, has_more, next_cursor}`).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { durationSchema, subscriptionTargetSchema } from '../kernel/config.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import {
  deleteSubscription, listDeliveryAttempts, rotateSubscriptionSecret, sendTestMessage, updateSubscription,
  type DeliveryAttempt, type Subscription, type SubscriptionRefusal,
} from '../outbox/index.ts';
import { route, type OpenApiRegistry } from './route.ts';

const P = '/admin/v1';
const when = z.string().describe('ISO 8601 time');
const nameParam = z.object({ name: z.string().max(100) });
/** How long a rotated-out secret keeps signing, unless the request says: a day, as for partner keys. */
const DEFAULT_OVERLAP_SECONDS = 86_400;

// A target on the wire: the configuration's camelCase timeoutMs is timeout_ms here.
const [httpTarget, handlerTarget, natsTarget] = subscriptionTargetSchema.options;
export const targetBody = z.discriminatedUnion('type', [
  httpTarget.omit({ timeoutMs: true }).extend({ timeout_ms: httpTarget.shape.timeoutMs }),
  handlerTarget,
  natsTarget.omit({ timeoutMs: true }).extend({ timeout_ms: natsTarget.shape.timeoutMs }),
]).transform((t) => {
  if (t.type === 'handler') return t;
  const { timeout_ms: timeoutMs, ...rest } = t;
  return { ...rest, timeoutMs };
});

const subscriptionResponse = z.object({
  id: z.string(), name: z.string(), topic: z.string(), filter: z.record(z.string(), z.unknown()),
  target: z.union([
    z.object({ type: z.literal('http'), url: z.string(), timeout_ms: z.number(), body: z.enum(['envelope', 'payload']) }),
    z.object({ type: z.literal('handler'), handler: z.string() }),
    z.object({ type: z.literal('nats'), subject: z.string(), stream: z.string(), timeout_ms: z.number() }),
  ]),
  retry_schedule_ms: z.array(z.number()), status: z.enum(['active', 'paused', 'disabled']), status_reason: z.string().nullable(),
  source: z.enum(['config', 'api']), created_at: when, updated_at: when,
});

export function subscriptionView(s: Subscription): z.input<typeof subscriptionResponse> {
  const t = s.target;
  const target = t.type === 'handler' ? t
    : t.type === 'http' ? { type: t.type, url: t.url, timeout_ms: t.timeoutMs, body: t.body }
      : { type: t.type, subject: t.subject, stream: t.stream, timeout_ms: t.timeoutMs };
  return {
    id: s.id, name: s.name, topic: s.topic, filter: s.filter, target, retry_schedule_ms: s.retryScheduleMs, status: s.status,
    status_reason: s.statusReason, source: s.source, created_at: s.createdAt.toISOString(), updated_at: s.updatedAt.toISOString(),
  };
}

const attemptResponse = z.object({
  id: z.string(), attempt: z.number().int(), started_at: when, latency_ms: z.number().int(), status_code: z.number().int().nullable(),
  outcome: z.enum(['delivered', 'retry', 'dead', 'disabled']), error: z.string().nullable(),
  response_excerpt: z.string().nullable().describe('the start of what the endpoint answered, at most 1024 characters'),
});
const attemptView = (a: DeliveryAttempt): z.input<typeof attemptResponse> => ({
  id: a.id, attempt: a.attempt, started_at: a.startedAt.toISOString(), latency_ms: a.latencyMs, status_code: a.statusCode,
  outcome: a.outcome, error: a.error, response_excerpt: a.responseExcerpt,
});

/** A refusal as the problem a client reads. */
export function refusalError(name: string, r: SubscriptionRefusal): SeigoError {
  switch (r.code) {
    case 'subscription_not_found':
      return new NotFoundError(r.code, `no subscription ${name}`);
    case 'subscription_from_config':
      return new SeigoError(r.code, `the subscription ${name} comes from the configuration file: change or remove it there (it is applied at start)`, 409);
    case 'not_http_target':
      return new SeigoError(r.code, `the subscription ${name} has a ${r.targetType} target: only HTTP and NATS targets take test messages, only HTTP ones have a secret`, 422);
  }
}

export async function subscriptionRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;

  route(app, registry, {
    method: 'PATCH', url: `${P}/subscriptions/:name`, tags: ['outbox'], role: 'operator',
    summary: 'Change a subscription: pause, resume or disable it, or change its topic, filter, target or retry schedule (what is not given stays)',
    params: nameParam, response: subscriptionResponse,
    body: z.object({
      status: z.enum(['active', 'paused', 'disabled']).optional(), reason: z.string().max(500).optional(),
      topic: z.string().min(1).max(200).optional(), filter: z.record(z.string(), z.unknown()).optional(), target: targetBody.optional(),
      retry_schedule: z.array(durationSchema()).min(1).max(50).optional(),
    }).strict(),
  }, async ({ params, body }) => {
    const r = await updateSubscription(pool, params.name, {
      status: body.status, reason: body.reason, topic: body.topic, filter: body.filter, target: body.target, retrySchedule: body.retry_schedule,
    });
    if (!r.ok) throw refusalError(params.name, r.error);
    return subscriptionView(r.value);
  });

  route(app, registry, {
    method: 'DELETE', url: `${P}/subscriptions/:name`, tags: ['outbox'], role: 'operator',
    summary: 'Delete a subscription with its deliveries and their attempt logs (configuration subscriptions are removed from the file)',
    params: nameParam, response: z.object({ id: z.string(), name: z.string(), deleted: z.literal(true), deliveries_deleted: z.number().int() }),
  }, async ({ params }) => {
    const r = await deleteSubscription(pool, params.name);
    if (!r.ok) throw refusalError(params.name, r.error);
    return { id: r.value.id, name: params.name, deleted: true as const, deliveries_deleted: r.value.deliveries };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/subscriptions/:name/secret/rotate`, tags: ['outbox'], role: 'operator',
    summary: 'A new signing secret (returned once); the old one keeps signing beside it for overlap_seconds (default a day; 0: stops now)',
    params: nameParam,
    body: z.object({ overlap_seconds: z.number().int().min(0).max(30 * 86_400).default(DEFAULT_OVERLAP_SECONDS) }).strict().optional(),
    response: z.object({ name: z.string(), secret: z.string(), previous_secret_expires_at: when.nullable() }),
  }, async ({ params, body }) => {
    const r = await rotateSubscriptionSecret(pool, params.name, (body?.overlap_seconds ?? DEFAULT_OVERLAP_SECONDS) * 1000);
    if (!r.ok) throw refusalError(params.name, r.error);
    return { name: params.name, secret: r.value.secret, previous_secret_expires_at: r.value.previousSecretExpiresAt?.toISOString() ?? null };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/subscriptions/:name/test`, tags: ['outbox'], role: 'operator', responseStatus: 202,
    summary: 'Send a test message (topic seigo.test) to this subscription alone; follow it with GET /admin/v1/deliveries/{id}/attempts',
    params: nameParam,
    body: z.object({ payload: z.record(z.string(), z.unknown()).optional() }).strict().optional(),
    response: z.object({ message_id: z.string(), delivery_id: z.string(), topic: z.string() }),
  }, async ({ params, body }) => {
    const r = await sendTestMessage(pool, params.name, body?.payload);
    if (!r.ok) throw refusalError(params.name, r.error);
    return { message_id: r.value.messageId, delivery_id: r.value.deliveryId, topic: r.value.topic };
  });

  route(app, registry, {
    method: 'GET', url: `${P}/deliveries/:id/attempts`, tags: ['outbox'], role: 'viewer',
    summary: 'The attempt log of an HTTP delivery, oldest first: status, latency, a bounded excerpt of the answer, or why there was none',
    params: z.object({ id: z.string().uuid() }),
    query: z.object({
      limit: z.coerce.number().int().min(1).max(100).default(20),
      starting_after: z.string().uuid().optional().describe('the next_cursor of the previous page'),
    }),
    response: z.object({ object: z.literal('list'), data: z.array(attemptResponse), has_more: z.boolean(), next_cursor: z.string().nullable() }),
  }, async ({ params, query }) => {
    const rows = await listDeliveryAttempts(pool, params.id, { limit: query.limit, startingAfter: query.starting_after });
    if (!rows) throw new NotFoundError('not_found', `no delivery ${params.id}`);
    const kept = rows.slice(0, query.limit);
    const hasMore = rows.length > query.limit;
    return { object: 'list' as const, data: kept.map(attemptView), has_more: hasMore, next_cursor: hasMore ? kept[kept.length - 1]!.id : null };
  });
}
