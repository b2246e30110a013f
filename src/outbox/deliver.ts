// Delivery workers. In-process consumers run in the same transaction that marks the delivery
// delivered (exactly once). HTTP targets are claimed with a lease, called outside any transaction,
// signed with Standard Webhooks (webhook-id = delivery id, so receivers can dedupe), and the
// outcome recorded only if the lease is still ours.
import type pg from 'pg';
import { request, type Dispatcher } from 'undici';
import { nextDelay } from '../kernel/backoff.ts';
import type { Tx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';
import { causeOf, runClaimedBatch, type BatchSteps } from '../kernel/work.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { SpanKind, SpanStatusCode, contextOf, currentTraceparent, inSpan } from '../kernel/tracing.ts';
import { signedHeaders } from '../providers/standard-webhooks/signature.ts';
import type { Consumers, DeliveredMessage } from './consumers.ts';

export type DeliveryOutcome = 'delivered' | 'retry' | 'dead' | 'disabled';

interface HandlerDeliveryRow {
  id: string; attempts: number; message_id: string; handler: string; retry_schedule_ms: string[];
  topic: string; key: string | null; attributes: Record<string, unknown>; payload: unknown; created_at: Date; traceparent: string | null;
}

const CLAIM_HANDLER = `
SELECT d.id, d.attempts, d.message_id, s.target->>'handler' AS handler, s.retry_schedule_ms,
       m.topic, m.key, m.attributes, m.payload, m.created_at, m.traceparent
FROM deliveries d
JOIN subscriptions s ON s.id = d.subscription_id
JOIN outbox_messages m ON m.id = d.message_id
WHERE d.target_type = 'handler' AND d.status = 'pending' AND d.next_attempt_at <= now()
  AND s.status = 'active' AND s.target->>'handler' = ANY($2::text[])
ORDER BY d.next_attempt_at
LIMIT $1
FOR UPDATE OF d SKIP LOCKED`;
const CLAIM_HANDLER_ONE = CLAIM_HANDLER.replace("d.target_type = 'handler'", "d.id = $3 AND d.target_type = 'handler'");
const MARK_DELIVERED = `UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), updated_at = now(), last_error = NULL
WHERE id = ANY($1::uuid[])`;
const MARK_FAILED = `
UPDATE deliveries SET attempts = $2, last_error = $3, last_status_code = $4, locked_until = NULL, updated_at = now(),
  status = CASE WHEN $5::bigint IS NULL THEN 'dead' ELSE 'pending' END,
  next_attempt_at = CASE WHEN $5::bigint IS NULL THEN next_attempt_at ELSE now() + $5::bigint * interval '1 millisecond' END
WHERE id = $1 AND status = $6 AND attempts = $7`;

export interface DeliveryDeps {
  pool: pg.Pool;
  log: Logger;
  onOutcome?: (subscriptionOrHandler: string, outcome: DeliveryOutcome, seconds?: number) => void;
}

function toMessage(r: HandlerDeliveryRow): DeliveredMessage {
  return { deliveryId: r.id, messageId: r.message_id, topic: r.topic, key: r.key, attributes: r.attributes, payload: r.payload, publishedAt: r.created_at, attempt: r.attempts + 1 };
}

export class HandlerDeliveryProcessor {
  private readonly steps: BatchSteps<HandlerDeliveryRow>;

  constructor(private readonly deps: DeliveryDeps, private readonly consumers: Consumers) {
    this.steps = {
      claim: async (tx, limit) => (await tx.query<HandlerDeliveryRow>({ name: 'deliveries_claim_handler', text: CLAIM_HANDLER, values: [limit, this.consumers.names()] })).rows,
      claimOne: async (tx, row) => (await tx.query<HandlerDeliveryRow>({ name: 'deliveries_claim_handler_one', text: CLAIM_HANDLER_ONE, values: [1, this.consumers.names(), row.id] })).rows[0] ?? null,
      apply: (tx, rows) => this.apply(tx, rows),
      fail: (pool, row, e) => this.fail(pool, row, e),
    };
  }

  runOnce(limit: number): Promise<number> {
    if (this.consumers.names().length === 0) return Promise.resolve(0);
    return runClaimedBatch(this.deps.pool, limit, this.steps);
  }

  private async apply(tx: Tx, rows: HandlerDeliveryRow[]): Promise<void> {
    const byHandler = new Map<string, HandlerDeliveryRow[]>();
    for (const r of rows) byHandler.set(r.handler, [...(byHandler.get(r.handler) ?? []), r]);
    for (const [name, list] of byHandler) {
      const consumer = this.consumers.get(name);
      if (!consumer) throw new Error(`no consumer named "${name}" in this process`);
      const ctx = { tx, log: this.deps.log };
      if ('handleBatch' in consumer) {
        await inSpan('delivery.handler', { attributes: { 'seigo.handler': name, 'seigo.messages': list.length } },
          () => consumer.handleBatch(ctx, list.map(toMessage)));
      } else {
        // Each message's span joins the trace that published it.
        for (const r of list) {
          await inSpan('delivery.handler', { parent: contextOf(r.traceparent), attributes: deliveryAttributes(r.id, r.topic, name) },
            () => consumer.handle(ctx, toMessage(r)));
        }
      }
    }
    await tx.query({ name: 'deliveries_mark_delivered', text: MARK_DELIVERED, values: [rows.map((r) => r.id)] });
    for (const r of rows) this.deps.onOutcome?.(r.handler, 'delivered');
  }

  private async fail(pool: pg.Pool, row: HandlerDeliveryRow, e: Error): Promise<void> {
    const attempts = row.attempts + 1;
    const delay = nextDelay(row.retry_schedule_ms.map(Number), attempts);
    await pool.query({ name: 'deliveries_mark_failed', text: MARK_FAILED, values: [row.id, attempts, causeOf(e), null, delay, 'pending', row.attempts] });
    this.deps.onOutcome?.(row.handler, delay === null ? 'dead' : 'retry');
    this.deps.log.warn({ deliveryId: row.id, handler: row.handler, attempts, cause: causeOf(e), dead: delay === null }, 'delivery failed');
  }
}

interface HttpClaimRow {
  id: string; attempts: number; subscription_id: string; name: string; url: string; timeout_ms: string; body_format: string | null; secret: string;
  previous_secret: string | null; retry_schedule_ms: string[]; message_id: string; topic: string; payload: unknown; created_at: Date; traceparent: string | null;
}

/**
 * The claim of a leased target type (HTTP, NATS): due deliveries, and ones whose lease ran out (a
 * worker died mid-call), moved to 'sending' with a lease that outlasts the target's timeoutMs, so a
 * live call is never taken over. `returning` names the columns the deliverer needs (d, s, m).
 */
export function leasedClaim(targetType: 'http' | 'nats', returning: string): string {
  return `
WITH c AS (
  SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
  WHERE d.target_type = '${targetType}' AND s.status = 'active'
    AND ((d.status = 'pending' AND d.next_attempt_at <= now()) OR (d.status = 'sending' AND d.locked_until < now()))
  ORDER BY d.next_attempt_at LIMIT $1
  FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1, updated_at = now(),
  locked_until = now() + greatest($2::bigint, (s.target->>'timeoutMs')::bigint + 5000) * interval '1 millisecond'
FROM c, subscriptions s, outbox_messages m
WHERE d.id = c.id AND s.id = d.subscription_id AND m.id = d.message_id
RETURNING ${returning}`;
}

const CLAIM_HTTP = leasedClaim('http', `d.id, d.attempts, d.subscription_id, s.name, s.target->>'url' AS url, s.target->>'timeoutMs' AS timeout_ms,
  s.target->>'body' AS body_format, s.secret, CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
  s.retry_schedule_ms, m.id AS message_id, m.topic, m.payload, m.created_at, m.traceparent`);
const HTTP_DELIVERED = `UPDATE deliveries SET status = 'delivered', delivered_at = now(), last_status_code = $3, last_error = NULL,
  locked_until = NULL, updated_at = now() WHERE id = $1 AND status = 'sending' AND attempts = $2`;
const HTTP_GONE = `
WITH d AS (
  UPDATE deliveries SET status = 'pending', next_attempt_at = now(), last_status_code = 410, locked_until = NULL, updated_at = now(),
    last_error = 'endpoint answered 410 Gone: subscription disabled' WHERE id = $1 AND status = 'sending' AND attempts = $2 RETURNING subscription_id
)
UPDATE subscriptions SET status = 'disabled', status_reason = 'endpoint answered 410 Gone', updated_at = now()
WHERE id IN (SELECT subscription_id FROM d)`;

/**
 * Each HTTP attempt is logged with its outcome in the same statement: `withAttempt` puts the insert in front of
 * an outcome statement whose own parameters end at $last - 1 (the attempt's columns follow).
 */
function withAttempt(outcomeSql: string, first: number): string {
  const p = (i: number) => `$${first + i}`;
  const insert = `attempt AS (INSERT INTO delivery_attempts (id, delivery_id, attempt, started_at, latency_ms, status_code, outcome, error, response_excerpt)
  VALUES (${p(0)}, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)}))`;
  const sql = outcomeSql.trimStart();
  return sql.startsWith('WITH ') ? `WITH ${insert}, ${sql.slice(5)}` : `WITH ${insert}\n${sql}`;
}
const HTTP_DELIVERED_LOGGED = withAttempt(HTTP_DELIVERED, 4);
const HTTP_GONE_LOGGED = withAttempt(HTTP_GONE, 3);
const HTTP_FAILED_LOGGED = withAttempt(MARK_FAILED, 8);

/** What an endpoint answered, at most this many characters of it, kept in the attempt log. */
export const RESPONSE_EXCERPT_CHARS = 1024;
/** Bytes read from an answer's body: enough for the excerpt; the rest is never read. */
const RESPONSE_READ_BYTES = 4 * RESPONSE_EXCERPT_CHARS;

/** The start of a response body, read up to RESPONSE_READ_BYTES (a huge or endless answer costs nothing more). */
export async function readExcerpt(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    n += chunk.length;
    if (n >= RESPONSE_READ_BYTES) break;
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, RESPONSE_EXCERPT_CHARS);
}

export interface HttpDeliveryOptions {
  dispatcher: Dispatcher;
  leaseMs: number;
  userAgent?: string;
}

/** The body an HTTP subscriber receives: the Standard Webhooks payload shape. */
export function webhookBody(topic: string, publishedAt: Date, payload: unknown): string {
  return JSON.stringify({ type: topic, timestamp: publishedAt.toISOString(), data: payload });
}

export class HttpDeliveryProcessor {
  constructor(private readonly deps: DeliveryDeps, private readonly opts: HttpDeliveryOptions) {}

  async runOnce(limit: number): Promise<number> {
    const { rows } = await this.deps.pool.query<HttpClaimRow>({ name: 'deliveries_claim_http', text: CLAIM_HTTP, values: [limit, this.opts.leaseMs] });
    await Promise.all(rows.map((r) => this.deliver(r)));
    return rows.length;
  }

  /** One attempt, in a span of the trace that published the message; the receiver gets its `traceparent`. */
  private deliver(row: HttpClaimRow): Promise<void> {
    return inSpan('delivery.http', {
      kind: SpanKind.CLIENT, parent: contextOf(row.traceparent),
      attributes: { ...deliveryAttributes(row.id, row.topic, row.name), 'seigo.attempt': row.attempts },
    }, async (span) => {
      const outcome = await this.attempt(row);
      span.setAttribute('seigo.outcome', outcome);
      if (outcome !== 'delivered') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
    });
  }

  private async attempt(row: HttpClaimRow): Promise<DeliveryOutcome> {
    const body = row.body_format === 'payload' ? JSON.stringify(row.payload) : webhookBody(row.topic, row.created_at, row.payload);
    // During a rotation's overlap the secret it replaced signs too (one more `v1,` signature).
    const secrets = row.previous_secret ? [row.secret, row.previous_secret] : [row.secret];
    const traceparent = currentTraceparent();
    const headers = {
      ...signedHeaders(secrets, row.id, body), 'content-type': 'application/json', 'user-agent': this.opts.userAgent ?? 'seigo',
      ...(traceparent ? { traceparent } : {}),
    };
    const timeout = Number(row.timeout_ms);
    const startedAt = new Date();
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let excerpt: string | null = null;
    try {
      const res = await request(row.url, {
        method: 'POST', body, headers, dispatcher: this.opts.dispatcher,
        headersTimeout: timeout, bodyTimeout: timeout, signal: AbortSignal.timeout(timeout),
      });
      status = res.statusCode;
      excerpt = await readExcerpt(res.body).catch(() => '');
      if (status < 200 || status >= 300) error = `HTTP ${status}${excerpt ? `: ${excerpt.slice(0, 200)}` : ''}`;
    } catch (e) {
      error = causeOf(e as Error).slice(0, 1000);
    }
    const seconds = (performance.now() - started) / 1000;
    const attempt = (outcome: DeliveryOutcome) => [uuidv7(), row.id, row.attempts, startedAt, Math.round(seconds * 1000), status, outcome, error, excerpt];
    const pool = this.deps.pool;
    if (error === null) {
      await pool.query({ name: 'deliveries_http_delivered', text: HTTP_DELIVERED_LOGGED, values: [row.id, row.attempts, status, ...attempt('delivered')] });
      this.deps.onOutcome?.(row.name, 'delivered', seconds);
      return 'delivered';
    }
    if (status === 410) {
      await pool.query({ name: 'deliveries_http_gone', text: HTTP_GONE_LOGGED, values: [row.id, row.attempts, ...attempt('disabled')] });
      this.deps.onOutcome?.(row.name, 'disabled', seconds);
      this.deps.log.warn({ subscription: row.name }, 'subscription disabled: endpoint answered 410 Gone');
      return 'disabled';
    }
    const delay = nextDelay(row.retry_schedule_ms.map(Number), row.attempts);
    const outcome = delay === null ? 'dead' : 'retry';
    await pool.query({
      name: 'deliveries_http_failed', text: HTTP_FAILED_LOGGED,
      values: [row.id, row.attempts, error, status, delay, 'sending', row.attempts, ...attempt(outcome)],
    });
    this.deps.onOutcome?.(row.name, outcome, seconds);
    return outcome;
  }
}

function deliveryAttributes(deliveryId: string, topic: string, subscription: string) {
  return { 'seigo.delivery_id': deliveryId, 'seigo.topic': topic, 'seigo.subscription': subscription };
}
