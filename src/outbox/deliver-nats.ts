// Delivery to NATS JetStream targets: a batch is claimed with row locks (FOR UPDATE SKIP LOCKED), published
// with `Nats-Msg-Id` = the message id, and its outcomes recorded in the same transaction, on the stream's
// acknowledgement. No lease is written first: the stream's dedupe makes a publish repeated after a crash
// harmless, so the row lock is the lease and each delivery costs one row write, not two (the fan-out bench).
import { nextDelay } from '../kernel/backoff.ts';
import { withTx, type Queryable } from '../kernel/db.ts';
import type { DeliveryDeps, DeliveryOutcome } from './deliver.ts';
import { webhookBody } from './deliver.ts';
import type { JetStreamPublish, NatsLink, PublishOutcome } from './nats-link.ts';

interface NatsClaimRow {
  id: string; attempts: number; name: string; subject: string; stream: string; timeout_ms: string;
  retry_schedule_ms: string[]; message_id: string; topic: string; key: string | null; payload: unknown; created_at: Date;
}

// Due deliveries, and ones a lease-taking version of seigo left `sending` past their lease.
// The due ids are chosen and locked first, and only those 500 rows joined to their messages: a single
// SELECT joining outbox_messages was planned as a join of the whole queue, then a sort (826 ms at 50,000).
const CLAIM_NATS = `
WITH c AS (
  SELECT d.id, d.attempts, d.subscription_id, d.message_id, d.next_attempt_at
  FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
  WHERE d.target_type = 'nats' AND s.status = 'active'
    AND ((d.status = 'pending' AND d.next_attempt_at <= now()) OR (d.status = 'sending' AND d.locked_until < now()))
  ORDER BY d.next_attempt_at
  LIMIT $1
  FOR UPDATE OF d SKIP LOCKED
)
SELECT c.id, c.attempts, s.name, s.target->>'subject' AS subject, s.target->>'stream' AS stream,
  s.target->>'timeoutMs' AS timeout_ms, s.retry_schedule_ms, m.id AS message_id, m.topic, m.key, m.payload, m.created_at
FROM c JOIN subscriptions s ON s.id = c.subscription_id JOIN outbox_messages m ON m.id = c.message_id
ORDER BY c.next_attempt_at`;
const ASYNC_COMMIT = 'SET LOCAL synchronous_commit = off';
const NATS_DELIVERED = `
UPDATE deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL, last_status_code = NULL,
  locked_until = NULL, updated_at = now()
WHERE id = ANY($1::uuid[])`;
const NATS_FAILED = `
UPDATE deliveries d SET attempts = d.attempts + 1, last_error = x.error, last_status_code = NULL, locked_until = NULL, updated_at = now(),
  status = CASE WHEN x.delay IS NULL THEN 'dead' ELSE 'pending' END,
  next_attempt_at = CASE WHEN x.delay IS NULL THEN d.next_attempt_at ELSE now() + x.delay * interval '1 millisecond' END
FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS x(id, error, delay)
WHERE d.id = x.id`;

export interface NatsDeliveryOptions {
  link: NatsLink;
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

  /**
   * Claims up to `limit` due deliveries, publishes them all in flight at once, records the outcomes, and
   * commits. The transaction stays open for at most the targets' ack timeout; a crash rolls it back and the
   * batch is published again, which the stream drops as duplicates.
   */
  async runOnce(limit: number): Promise<number> {
    const done = await withTx(this.deps.pool, async (tx) => {
      // A 'delivered' mark lost in a crash only means publishing again, which the stream drops as a
      // duplicate: this commit need not wait for its WAL flush (PostgreSQL loses at most ~3 × wal_writer_delay).
      await tx.query(ASYNC_COMMIT);
      const { rows } = await tx.query<NatsClaimRow>({ name: 'deliveries_claim_nats_locked', text: CLAIM_NATS, values: [limit] });
      if (rows.length === 0) return null;
      const started = performance.now();
      const outcomes = await this.opts.link.publishAll(rows.map(natsPublishOf));
      const seconds = (performance.now() - started) / 1000;
      return { rows, outcomes, seconds, recorded: await recordOutcomes(tx, rows, outcomes) };
    });
    if (!done) return 0;
    const { rows, outcomes, seconds, recorded } = done;
    for (const [i, r] of rows.entries()) this.deps.onOutcome?.(r.name, recorded[i]!, seconds);
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length > 0) this.deps.log.warn({ failed: failed.length, of: rows.length, cause: failed[0]!.ok ? '' : failed[0]!.cause }, 'NATS deliveries failed');
    return rows.length;
  }
}

/** Records a batch's outcomes in (at most) two statements: the acknowledged ones, and the failed ones with their causes. */
export async function recordOutcomes(tx: Queryable, rows: readonly NatsClaimRow[], outcomes: readonly PublishOutcome[]): Promise<DeliveryOutcome[]> {
  const recorded: DeliveryOutcome[] = [];
  const done: string[] = [];
  const failed = { ids: [] as string[], errors: [] as string[], delays: [] as (number | null)[] };
  for (const [i, r] of rows.entries()) {
    const o = outcomes[i]!;
    if (o.ok) {
      done.push(r.id);
      recorded.push('delivered');
    } else {
      // This attempt counts: the schedule's entry is the one after `attempts + 1` failures.
      const delay = nextDelay(r.retry_schedule_ms.map(Number), r.attempts + 1);
      failed.ids.push(r.id);
      failed.errors.push(o.cause);
      failed.delays.push(delay);
      recorded.push(delay === null ? 'dead' : 'retry');
    }
  }
  if (done.length) await tx.query({ name: 'deliveries_nats_delivered_locked', text: NATS_DELIVERED, values: [done] });
  if (failed.ids.length) {
    await tx.query({ name: 'deliveries_nats_failed_locked', text: NATS_FAILED, values: [failed.ids, failed.errors, failed.delays] });
  }
  return recorded;
}
