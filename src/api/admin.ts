// The admin API under /admin/v1: what operators need to see one record's integration status,
// inspect and replay notifications, manage subscriptions, redrive deliveries and watch operations.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { durationSchema } from '../kernel/config.ts';
import { NotFoundError } from '../kernel/errors.ts';
import type { Engine } from '../engine/engine.ts';
import { replayInbox, replayInboxSince } from '../intake/index.ts';
import { backfill, getSubscription, listSubscriptions, publish, redrive, upsertSubscription } from '../outbox/index.ts';
import { withTx } from '../kernel/db.ts';
import { integrationStatus } from '../status/integration-status.ts';
import { listOf, listQuery, pageOf, wholeList } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';
import { subscriptionView, targetBody } from './subscriptions.ts';

const uuid = z.string().uuid();
const paging = listQuery({ max: 500, default: 50 });
// Bounded to what PostgreSQL's timestamptz holds (JS dates reach 271821 BC); out of range would fail in SQL as a 500.
const isoDate = z.coerce.date()
  .min(new Date('0001-01-01T00:00:00Z'), 'must be a date from 0001-01-01')
  .max(new Date('9999-12-31T23:59:59.999Z'), 'must be a date until 9999-12-31');
// Response shapes, for /openapi.json and the console's generated types (the rows are the SELECTs below).
const when = z.string().describe('ISO 8601 time');
const statusResponse = z.object({
  entity_type: z.string(), entity_id: z.string(), state: z.enum(['waiting', 'done', 'failed', 'none']),
  items: z.array(z.object({
    kind: z.enum(['inbox', 'operation', 'delivery', 'case']), id: z.string(), state: z.enum(['waiting', 'done', 'failed']),
    status: z.string(), detail: z.string(), cause: z.string().nullable(), updated_at: when,
  })),
});
const inboxRow = z.object({
  id: z.string(), provider: z.string(), event_id: z.string(), source: z.string(), status: z.string(), event_type: z.string().nullable(),
  entity_type: z.string().nullable(), entity_id: z.string().nullable(), attempts: z.number(), next_attempt_at: when.nullable(),
  last_error: z.string().nullable(), received_at: when, processed_at: when.nullable(), replays: z.number(),
});
const deliveryRow = z.object({
  id: z.string(), subscription: z.string(), topic: z.string(), key: z.string().nullable(), status: z.string(), attempts: z.number(),
  next_attempt_at: when.nullable(), last_error: z.string().nullable(), last_status_code: z.number().nullable(), created_at: when,
  updated_at: when, delivered_at: when.nullable(), redrives: z.number(),
});

// Lists page by keyset: `starting_after` names the last row seen; a row it does not name gives an empty page.
const LIST_INBOX = `
  SELECT id, provider, event_id, source, status, event_type, entity_type, entity_id, attempts, next_attempt_at, last_error, received_at, processed_at, replays
  FROM inbox WHERE ($1::text IS NULL OR provider = $1) AND ($2::text IS NULL OR status = $2) AND ($3::timestamptz IS NULL OR received_at < $3)
    AND ($4::uuid IS NULL OR (received_at, id) < (SELECT received_at, id FROM inbox WHERE id = $4))
  ORDER BY received_at DESC, id DESC LIMIT $5`;
const LIST_DELIVERIES = `
  SELECT d.id, s.name AS subscription, m.topic, m.key, d.status, d.attempts, d.next_attempt_at, d.last_error, d.last_status_code,
         d.created_at, d.updated_at, d.delivered_at, d.redrives
  FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id JOIN outbox_messages m ON m.id = d.message_id
  WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR d.status = $2) AND ($3::timestamptz IS NULL OR d.created_at < $3)
    AND ($4::uuid IS NULL OR (d.created_at, d.id) < (SELECT created_at, id FROM deliveries WHERE id = $4))
  ORDER BY d.created_at DESC, d.id DESC LIMIT $5`;
const LIST_OPERATIONS = `
  SELECT id, provider, kind, entity_type, entity_id, idempotency_key, status, error_code, error_message, attempts, inquiries,
         next_inquiry_at, deadline_at, created_at, sent_at, completed_at, updated_at,
         (status = 'unknown' AND deadline_at < now()) AS overdue
  FROM operations WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR provider = $2)
    AND ($3::boolean IS NOT TRUE OR (status = 'unknown' AND deadline_at < now()))
    AND ($4::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM operations WHERE id = $4))
  ORDER BY created_at DESC, id DESC LIMIT $5`;

/** The integration status with snake_case fields, as every answer has them. */
const statusJson = (s: Awaited<ReturnType<typeof integrationStatus>>) => ({
  entity_type: s.entityType, entity_id: s.entityId, state: s.state,
  items: s.items.map((i) => ({ kind: i.kind, id: i.id, state: i.state, status: i.status, detail: i.detail, cause: i.cause, updated_at: i.updatedAt })),
});

// A subscription on the wire: the configuration file's camelCase keys (timeoutMs, retrySchedule) are snake_case here.
const subscriptionBody = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/),
  topic: z.string().min(1).max(200),
  filter: z.record(z.string(), z.unknown()).default({}),
  target: targetBody,
  retry_schedule: z.array(durationSchema()).max(50).optional(),
}).strict();

const SIGNATURE_HEADERS = new Set(['webhook-signature', 'stripe-signature', 'x-komoju-signature', 'authorization']);

function redactHeaders(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, SIGNATURE_HEADERS.has(k) ? `${v.slice(0, 12)}…[redacted]` : v]));
}

export async function adminRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const P = '/admin/v1';

  route(app, registry, {
    method: 'GET', url: `${P}/status/:entity_type/:entity_id`, tags: ['status'], role: 'viewer',
    summary: 'Integration status of one record (waiting / done / failed, with causes) across inbox, operations and deliveries',
    params: z.object({ entity_type: z.string().min(1).max(100), entity_id: z.string().min(1).max(255) }), response: statusResponse,
  }, async ({ params }) => statusJson(await integrationStatus(pool, params.entity_type, params.entity_id)));

  // ---- inbox
  route(app, registry, {
    method: 'GET', url: `${P}/inbox`, tags: ['inbox'], role: 'viewer', summary: 'List stored notifications, newest first (received_before: only older ones)',
    query: z.object({
      provider: z.string().max(100).optional(), status: z.enum(['pending', 'processed', 'failed', 'ignored']).optional(), received_before: isoDate.optional(), ...paging,
    }),
    response: listOf(inboxRow),
  }, async ({ query }) => {
    const r = await pool.query<{ id: string }>(LIST_INBOX,
      [query.provider ?? null, query.status ?? null, query.received_before ?? null, query.starting_after ?? null, query.limit + 1]);
    return pageOf(r.rows, query.limit, (x) => x.id, (x) => x);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/inbox/:id`, tags: ['inbox'], role: 'viewer', errors: { 404: ['not_found'] }, summary: 'One stored notification with its raw body',
    params: z.object({ id: uuid }),
  }, async ({ params }) => {
    const r = await pool.query<{ headers: Record<string, string>; body: Buffer } & Record<string, unknown>>('SELECT * FROM inbox WHERE id = $1', [params.id]);
    const row = r.rows[0];
    if (!row) throw new NotFoundError('not_found', `no inbox row ${params.id}`);
    return { ...row, headers: redactHeaders(row.headers), body: row.body.toString('utf8'), body_bytes: row.body.length };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/inbox/:id/replay`, tags: ['inbox'], role: 'operator', errors: { 404: ['not_found'] }, summary: 'Process a stored notification again (idempotent)',
    params: z.object({ id: uuid }), responseStatus: 202, response: z.object({ id: z.string(), replayed: z.boolean() }),
  }, async ({ params }) => {
    if (!(await replayInbox(pool, params.id))) throw new NotFoundError('not_found', `no inbox row ${params.id}`);
    return { id: params.id, replayed: true };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/inbox/replay`, tags: ['inbox'], role: 'operator', summary: 'Replay every notification of a provider received in a time range',
    body: z.object({ provider: z.string().min(1), since: isoDate, until: isoDate.optional() }).strict(), responseStatus: 202,
  }, async ({ body }) => ({ replayed: await replayInboxSince(pool, body.provider, body.since, body.until) }));

  // ---- subscriptions
  route(app, registry, { method: 'GET', url: `${P}/subscriptions`, tags: ['outbox'], role: 'viewer', summary: 'List subscriptions' },
    async () => wholeList((await listSubscriptions(pool)).map(subscriptionView)));

  route(app, registry, {
    method: 'POST', url: `${P}/subscriptions`, tags: ['outbox'], role: 'operator', responseStatus: 201,
    summary: 'Create or update a subscription by name; an HTTP target gets a signing secret, returned here',
    body: subscriptionBody,
  }, async ({ body }) => {
    const s = await upsertSubscription(pool, { name: body.name, topic: body.topic, filter: body.filter, target: body.target, retrySchedule: body.retry_schedule, source: 'api' });
    return { ...subscriptionView(s), secret: s.secret };
  });

  route(app, registry, {
    method: 'GET', url: `${P}/subscriptions/:name`, tags: ['outbox'], role: 'viewer', errors: { 404: ['not_found'] }, summary: 'One subscription with its delivery counts',
    params: z.object({ name: z.string().max(100) }),
  }, async ({ params }) => {
    const s = await getSubscription(pool, params.name);
    if (!s) throw new NotFoundError('not_found', `no subscription ${params.name}`);
    const c = await pool.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM deliveries WHERE subscription_id = $1 GROUP BY status', [s.id]);
    return { ...subscriptionView(s), deliveries: Object.fromEntries(c.rows.map((r) => [r.status, Number(r.n)])) };
  });

  // PATCH and DELETE of a subscription, its secret, test messages and attempt logs: subscriptions.ts.

  route(app, registry, {
    method: 'POST', url: `${P}/subscriptions/:name/backfill`, tags: ['outbox'], role: 'operator', errors: { 404: ['not_found'] }, responseStatus: 202,
    summary: 'Deliver to this subscription the matching messages published since a time (before it existed)',
    params: z.object({ name: z.string().max(100) }), body: z.object({ since: isoDate }).strict(),
  }, async ({ params, body }) => {
    if (!(await getSubscription(pool, params.name))) throw new NotFoundError('not_found', `no subscription ${params.name}`);
    return { created: await backfill(pool, params.name, body.since) };
  });

  // ---- messages and deliveries
  route(app, registry, {
    method: 'POST', url: `${P}/messages`, tags: ['outbox'], role: 'operator', responseStatus: 201, summary: 'Publish a message by hand',
    body: z.object({
      topic: z.string().min(1).max(200), payload: z.unknown(), key: z.string().max(255).optional(),
      attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    }).strict(),
  }, async ({ body }) => ({ id: await withTx(pool, (tx) => publish(tx, body.topic, body.payload ?? null, { key: body.key, attributes: body.attributes })) }));

  route(app, registry, {
    method: 'GET', url: `${P}/deliveries`, tags: ['outbox'], role: 'viewer', summary: 'List deliveries (status=dead is the DLQ)',
    query: z.object({
      subscription: z.string().max(100).optional(), status: z.enum(['pending', 'sending', 'delivered', 'dead', 'cancelled']).optional(),
      created_before: isoDate.optional(), ...paging,
    }),
    response: listOf(deliveryRow),
  }, async ({ query }) => {
    const r = await pool.query<{ id: string }>(LIST_DELIVERIES,
      [query.subscription ?? null, query.status ?? null, query.created_before ?? null, query.starting_after ?? null, query.limit + 1]);
    return pageOf(r.rows, query.limit, (x) => x.id, (x) => x);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/deliveries/:id`, tags: ['outbox'], role: 'viewer', errors: { 404: ['not_found'] }, summary: 'One delivery with its message', params: z.object({ id: uuid }),
  }, async ({ params }) => {
    const r = await pool.query(
      `SELECT d.*, s.name AS subscription, m.topic, m.key, m.attributes, m.payload FROM deliveries d
       JOIN subscriptions s ON s.id = d.subscription_id JOIN outbox_messages m ON m.id = d.message_id WHERE d.id = $1`, [params.id]);
    if (!r.rows[0]) throw new NotFoundError('not_found', `no delivery ${params.id}`);
    return r.rows[0];
  });

  route(app, registry, {
    method: 'POST', url: `${P}/deliveries/:id/redrive`, tags: ['outbox'], role: 'operator', errors: { 404: ['not_found'] }, responseStatus: 202, summary: 'Redrive one delivery',
    params: z.object({ id: uuid }), response: z.object({ redriven: z.number() }),
  }, async ({ params }) => {
    const n = await redrive(pool, { ids: [params.id], statuses: ['dead', 'cancelled', 'pending'] });
    if (n === 0) throw new NotFoundError('not_found', `no dead, cancelled or pending delivery ${params.id}`);
    return { redriven: n };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/deliveries/redrive`, tags: ['outbox'], role: 'operator', responseStatus: 202,
    summary: 'Redrive many deliveries: by ids, or by subscription, topic and time range (dead ones by default)',
    body: z.object({
      ids: z.array(uuid).max(10_000).optional(), subscription: z.string().max(100).optional(), topic: z.string().max(200).optional(),
      statuses: z.array(z.enum(['dead', 'pending', 'cancelled'])).min(1).optional(), since: isoDate.optional(), until: isoDate.optional(),
    }).strict(), response: z.object({ redriven: z.number() }),
  }, async ({ body }) => ({ redriven: await redrive(pool, body) }));

  // ---- operations
  route(app, registry, {
    method: 'GET', url: `${P}/operations`, tags: ['operations'], role: 'viewer',
    summary: 'List outbound operations; overdue=true lists the ones still unknown past their deadline',
    query: z.object({
      status: z.enum(['pending', 'sending', 'succeeded', 'failed', 'unknown']).optional(), provider: z.string().max(100).optional(),
      overdue: z.enum(['true', 'false']).optional(), ...paging,
    }),
  }, async ({ query }) => {
    const r = await pool.query<{ id: string }>(LIST_OPERATIONS,
      [query.status ?? null, query.provider ?? null, query.overdue === 'true', query.starting_after ?? null, query.limit + 1]);
    return pageOf(r.rows, query.limit, (x) => x.id, (x) => x);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/operations/:id`, tags: ['operations'], role: 'viewer', errors: { 404: ['not_found'] }, summary: 'One operation with its history of transitions',
    params: z.object({ id: uuid }),
  }, async ({ params }) => {
    const op = await engine.operations.get(params.id);
    if (!op) throw new NotFoundError('not_found', `no operation ${params.id}`);
    const ev = await pool.query('SELECT at, from_status, to_status, cause FROM operation_events WHERE operation_id = $1 ORDER BY id', [params.id]);
    return { ...op, events: ev.rows };
  });

  // ---- processes and periodic jobs
  route(app, registry, { method: 'GET', url: `${P}/processes`, tags: ['operations'], role: 'viewer', summary: 'Live api and worker processes and periodic jobs' },
    async () => ({
      processes: (await pool.query('SELECT * FROM processes ORDER BY started_at')).rows,
      periodic_jobs: (await pool.query('SELECT * FROM periodic_jobs ORDER BY name')).rows,
    }));
}
