// The inbox worker: claims stored notifications, normalizes them through the provider's adapter,
// runs the handlers for each canonical event and publishes it to the outbox, all in one
// transaction with marking the row processed.
import type pg from 'pg';
import type { Tx } from '../kernel/db.ts';
import { nameBasedId } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import { PermanentFailure, causeOf, runClaimedBatch, type BatchSteps } from '../kernel/work.ts';
import { nextDelay } from '../kernel/backoff.ts';
import { wake } from '../kernel/wake.ts';
import { contextOf, currentTraceparent, inSpan } from '../kernel/tracing.ts';
import { publishMany, type OutboxMessage } from '../outbox/publish.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import type { CanonicalEvent } from '../providers/types.ts';
import type { EventHandlers, InboxEventMeta } from './handlers.ts';

interface InboxRow {
  id: string;
  provider: string;
  event_id: string;
  source: InboxEventMeta['source'];
  headers: Record<string, string>;
  body: Buffer;
  attempts: number;
  received_at: Date;
  traceparent: string | null;
}

const COLUMNS = 'id, provider, event_id, source, headers, body, attempts, received_at, traceparent';
const CLAIM = `SELECT ${COLUMNS} FROM inbox WHERE status = 'pending' AND next_attempt_at <= now()
ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED`;
const CLAIM_ONE = `SELECT ${COLUMNS} FROM inbox WHERE id = $1 AND status = 'pending' FOR UPDATE SKIP LOCKED`;
const MARK_DONE = `
UPDATE inbox i SET status = d.status, event_type = d.event_type, entity_type = d.entity_type, entity_id = d.entity_id,
  attempts = i.attempts + 1, processed_at = now(), last_error = NULL
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS d(id, status, event_type, entity_type, entity_id)
WHERE i.id = d.id`;
const MARK_FAILED = `
UPDATE inbox SET attempts = attempts + 1, last_error = $2,
  status = CASE WHEN $3::bigint IS NULL THEN 'failed' ELSE 'pending' END,
  next_attempt_at = CASE WHEN $3::bigint IS NULL THEN next_attempt_at ELSE now() + $3::bigint * interval '1 millisecond' END
WHERE id = $1 AND status = 'pending'`;

export interface InboxProcessorDeps {
  pool: pg.Pool;
  providers: ProviderRegistry;
  handlers: EventHandlers;
  log: Logger;
  retryScheduleMs: readonly number[];
  onProcessed?: (provider: string, outcome: 'processed' | 'ignored' | 'retry' | 'failed') => void;
}

export class InboxProcessor {
  private readonly steps: BatchSteps<InboxRow>;

  constructor(private readonly deps: InboxProcessorDeps) {
    this.steps = {
      claim: async (tx, limit) => (await tx.query<InboxRow>({ name: 'inbox_claim', text: CLAIM, values: [limit] })).rows,
      claimOne: async (tx, row) => (await tx.query<InboxRow>({ name: 'inbox_claim_one', text: CLAIM_ONE, values: [row.id] })).rows[0] ?? null,
      apply: (tx, rows) => this.apply(tx, rows),
      fail: (pool, row, e) => this.fail(pool, row, e),
    };
  }

  /** Processes one batch; returns how many rows it claimed. */
  runOnce(limit: number): Promise<number> {
    return runClaimedBatch(this.deps.pool, limit, this.steps);
  }

  private async apply(tx: Tx, rows: InboxRow[]): Promise<void> {
    const done = { id: [] as string[], status: [] as string[], type: [] as (string | null)[], entityType: [] as (string | null)[], entityId: [] as (string | null)[] };
    const messages: OutboxMessage[] = [];
    for (const row of rows) {
      // One span per notification, in the trace it arrived in: handlers' operations and messages join it.
      const applied = await inSpan('inbox.process', {
        parent: contextOf(row.traceparent), attributes: { 'seigo.provider': row.provider, 'seigo.inbox_id': row.id, 'seigo.event_id': row.event_id },
      }, () => this.applyOne(tx, row, messages));
      done.id.push(row.id);
      done.status.push(applied.first ? 'processed' : 'ignored');
      done.type.push(applied.first?.type ?? null);
      done.entityType.push(applied.first?.entityType ?? null);
      done.entityId.push(applied.first?.entityId ?? null);
    }
    await publishMany(tx, messages);
    await tx.query({ name: 'inbox_mark_done', text: MARK_DONE, values: [done.id, done.status, done.type, done.entityType, done.entityId] });
    for (const [i, provider] of rows.map((r) => r.provider).entries()) {
      this.deps.onProcessed?.(provider, done.status[i] === 'ignored' ? 'ignored' : 'processed');
    }
  }

  /** Normalizes one row, runs its handlers and adds its messages; returns its first canonical event. */
  private async applyOne(tx: Tx, row: InboxRow, messages: OutboxMessage[]): Promise<{ first: CanonicalEvent | undefined }> {
    const adapter = this.deps.providers.get(row.provider);
    if (!adapter) throw new PermanentFailure(`provider "${row.provider}" is not configured`);
    const normalized = adapter.normalize({ headers: row.headers, body: row.body });
    if (!normalized.ok) throw new PermanentFailure(`cannot normalize: ${normalized.error}`);
    const meta: InboxEventMeta = { inboxId: row.id, provider: row.provider, eventId: row.event_id, source: row.source, receivedAt: row.received_at };
    const events = normalized.value;
    for (const [index, event] of events.entries()) {
      for (const handler of this.deps.handlers.for(event.type)) {
        await handler({ tx, log: this.deps.log }, event, meta);
      }
      // Every canonical event is also published, so consumers subscribe without touching intake.
      // The id is derived from the inbox row: replaying a processed row publishes nothing twice.
      messages.push({
        id: nameBasedId('inbox', row.id, String(index)),
        topic: event.type,
        key: event.entityId,
        entity: event.entityId !== undefined ? { type: event.entityType ?? 'unknown', id: event.entityId } : undefined,
        attributes: { ...event.attributes, provider: row.provider, source: row.source },
        payload: {
          inbox_id: row.id, provider: row.provider, event_id: row.event_id, type: event.type,
          entity_type: event.entityType ?? null, entity_id: event.entityId ?? null, occurred_at: event.occurredAt ?? null, data: event.data,
        },
        traceparent: currentTraceparent(),
      });
    }
    return { first: events[0] };
  }

  private async fail(pool: pg.Pool, row: InboxRow, e: Error): Promise<void> {
    const delay = e instanceof PermanentFailure ? null : nextDelay(this.deps.retryScheduleMs, row.attempts + 1);
    await pool.query({ name: 'inbox_mark_failed', text: MARK_FAILED, values: [row.id, causeOf(e), delay] });
    this.deps.onProcessed?.(row.provider, delay === null ? 'failed' : 'retry');
    this.deps.log.warn({ inboxId: row.id, provider: row.provider, attempts: row.attempts + 1, cause: causeOf(e), final: delay === null }, 'inbox row failed');
  }
}

/** Replays one stored notification: it is processed again, idempotently. */
export async function replayInbox(pool: pg.Pool, id: string): Promise<boolean> {
  const r = await pool.query(`UPDATE inbox SET status = 'pending', next_attempt_at = now(), attempts = 0, replays = replays + 1, last_error = NULL WHERE id = $1`, [id]);
  if (r.rowCount) wake(pool, 'inbox');
  return (r.rowCount ?? 0) > 0;
}

/** Replays every notification of a provider received since `since`; returns how many. */
export async function replayInboxSince(pool: pg.Pool, provider: string, since: Date, until = new Date('9999-12-31')): Promise<number> {
  const r = await pool.query(
    `UPDATE inbox SET status = 'pending', next_attempt_at = now(), attempts = 0, replays = replays + 1, last_error = NULL
     WHERE provider = $1 AND received_at >= $2 AND received_at < $3`, [provider, since, until]);
  if (r.rowCount) wake(pool, 'inbox');
  return r.rowCount ?? 0;
}
