// Delivery to NATS JetStream targets: claimed with a lease like HTTP deliveries, published outside
// any transaction with `Nats-Msg-Id` = the message id (the stream drops a retried publish it already
// stored), and recorded only on the stream's acknowledgement. Failures retry, die, and are redriven as HTTP ones.
import type pg from 'pg';
import { nextDelay } from '../kernel/backoff.ts';
import type { DeliveryDeps, DeliveryOutcome } from './deliver.ts';
import { leasedClaim, webhookBody } from './deliver.ts';
import type { JetStreamPublish, NatsLink, PublishOutcome } from './nats-link.ts';

interface NatsClaimRow {
  id: string; attempts: number; name: string; subject: string; stream: string; timeout_ms: string;
  retry_schedule_ms: string[]; message_id: string; topic: string; key: string | null; payload: unknown; created_at: Date;
}

const CLAIM_NATS = leasedClaim('nats', `d.id, d.attempts, s.name, s.target->>'subject' AS subject, s.target->>'stream' AS stream,
  s.target->>'timeoutMs' AS timeout_ms, s.retry_schedule_ms, m.id AS message_id, m.topic, m.key, m.payload, m.created_at`);
// Outcomes are recorded only if the lease is still ours (same attempt, still sending).
const NATS_DELIVERED = `
UPDATE deliveries d SET status = 'delivered', delivered_at = now(), last_error = NULL, last_status_code = NULL,
  locked_until = NULL, updated_at = now()
FROM unnest($1::uuid[], $2::int[]) AS x(id, attempts)
WHERE d.id = x.id AND d.status = 'sending' AND d.attempts = x.attempts`;
const NATS_FAILED = `
UPDATE deliveries d SET last_error = x.error, last_status_code = NULL, locked_until = NULL, updated_at = now(),
  status = CASE WHEN x.delay IS NULL THEN 'dead' ELSE 'pending' END,
  next_attempt_at = CASE WHEN x.delay IS NULL THEN d.next_attempt_at ELSE now() + x.delay * interval '1 millisecond' END
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::bigint[]) AS x(id, attempts, error, delay)
WHERE d.id = x.id AND d.status = 'sending' AND d.attempts = x.attempts`;

export interface NatsDeliveryOptions {
  link: NatsLink;
  leaseMs: number;
}

/** What goes to the stream for one delivery: the Standard Webhooks-shaped envelope, ids in headers. */
export function natsPublishOf(r: NatsClaimRow): JetStreamPublish {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json', 'Seigo-Topic': r.topic, 'Seigo-Message-Id': r.message_id, 'Seigo-Delivery-Id': r.id,
  };
  if (r.key !== null) headers['Seigo-Key'] = r.key;
  return {
    subject: r.subject, stream: r.stream, msgId: r.message_id, headers,
    body: webhookBody(r.topic, r.created_at, r.payload), timeoutMs: Number(r.timeout_ms),
  };
}

export class NatsDeliveryProcessor {
  constructor(private readonly deps: DeliveryDeps, private readonly opts: NatsDeliveryOptions) {}

  /** Claims up to `limit` due deliveries, publishes them all in flight at once, records the outcomes. */
  async runOnce(limit: number): Promise<number> {
    const { rows } = await this.deps.pool.query<NatsClaimRow>({ name: 'deliveries_claim_nats', text: CLAIM_NATS, values: [limit, this.opts.leaseMs] });
    if (rows.length === 0) return 0;
    const started = performance.now();
    const outcomes = await this.opts.link.publishAll(rows.map(natsPublishOf));
    const seconds = (performance.now() - started) / 1000;
    const recorded = await recordOutcomes(this.deps.pool, rows, outcomes);
    for (const [i, r] of rows.entries()) this.deps.onOutcome?.(r.name, recorded[i]!, seconds);
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length > 0) this.deps.log.warn({ failed: failed.length, of: rows.length, cause: failed[0]!.ok ? '' : failed[0]!.cause }, 'NATS deliveries failed');
    return rows.length;
  }
}

/** Records a batch's outcomes in (at most) two statements: the acknowledged ones, and the failed ones with their causes. */
export async function recordOutcomes(pool: pg.Pool, rows: readonly NatsClaimRow[], outcomes: readonly PublishOutcome[]): Promise<DeliveryOutcome[]> {
  const recorded: DeliveryOutcome[] = [];
  const done = { ids: [] as string[], attempts: [] as number[] };
  const failed = { ids: [] as string[], attempts: [] as number[], errors: [] as string[], delays: [] as (number | null)[] };
  for (const [i, r] of rows.entries()) {
    const o = outcomes[i]!;
    if (o.ok) {
      done.ids.push(r.id);
      done.attempts.push(r.attempts);
      recorded.push('delivered');
    } else {
      const delay = nextDelay(r.retry_schedule_ms.map(Number), r.attempts);
      failed.ids.push(r.id);
      failed.attempts.push(r.attempts);
      failed.errors.push(o.cause);
      failed.delays.push(delay);
      recorded.push(delay === null ? 'dead' : 'retry');
    }
  }
  if (done.ids.length) await pool.query({ name: 'deliveries_nats_delivered', text: NATS_DELIVERED, values: [done.ids, done.attempts] });
  if (failed.ids.length) {
    await pool.query({ name: 'deliveries_nats_failed', text: NATS_FAILED, values: [failed.ids, failed.attempts, failed.errors, failed.delays] });
  }
  return recorded;
}
