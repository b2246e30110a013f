// Publish: a message is written in the caller's transaction together with one delivery row per
// matching subscription, so a message exists if and only if the change that caused it committed.
import type { Queryable } from '../kernel/db.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { wakeAfterCommit } from '../kernel/wake.ts';
import { currentTraceparent } from '../kernel/tracing.ts';

export interface PublishOptions {
  /** Ordering / grouping key, e.g. the entity id. */
  key?: string | undefined;
  /** Matched against each subscription's filter by jsonb containment (`attributes @> filter`). */
  attributes?: Record<string, string | number | boolean> | undefined;
  /** A fixed id makes publishing idempotent: a second publish with the same id does nothing. */
  id?: string | undefined;
  /** The record this message is about, for its integration status. */
  entity?: { type: string; id: string } | undefined;
  /** The trace its deliveries join (default: the active span's). */
  traceparent?: string | null | undefined;
}

export interface OutboxMessage {
  topic: string;
  payload: unknown;
  key?: string | undefined;
  attributes?: Record<string, string | number | boolean> | undefined;
  id?: string | undefined;
  entity?: { type: string; id: string } | undefined;
  traceparent?: string | null | undefined;
}

// Subscriptions match an exact topic, a prefix ending in '*' ("deposit.*"), or '*' for everything.
const FANOUT = `
INSERT INTO deliveries (message_id, subscription_id, target_type)
SELECT m.id, s.id, s.target_type
FROM m JOIN subscriptions s
  ON s.status IN ('active', 'paused')
 AND (s.topic = m.topic OR (right(s.topic, 1) = '*' AND starts_with(m.topic, left(s.topic, -1))))
 AND m.attributes @> s.filter`;

const PUBLISH_MANY = `
WITH m AS (
  INSERT INTO outbox_messages (id, topic, key, attributes, payload, entity_type, entity_id, traceparent)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[], $8::text[])
  ON CONFLICT (id) DO NOTHING
  RETURNING id, topic, attributes
)${FANOUT}`;

/** Money is bigint minor units: in a message it travels as a decimal string, never a lossy number. */
function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** Publishes one message in `tx`; returns its id. */
export async function publish(tx: Queryable, topic: string, payload: unknown, opts: PublishOptions = {}): Promise<string> {
  const [id] = await publishMany(tx, [{ topic, payload, key: opts.key, attributes: opts.attributes, id: opts.id, entity: opts.entity, traceparent: opts.traceparent }]);
  return id!;
}

/** Publishes many messages in one statement (one round trip). */
export async function publishMany(tx: Queryable, messages: readonly OutboxMessage[]): Promise<string[]> {
  if (messages.length === 0) return [];
  const ids = messages.map((m) => m.id ?? uuidv7());
  const active = currentTraceparent();
  // Workers are woken once the caller's transaction commits (through withTx or a worker batch);
  // a transaction managed elsewhere is picked up by polling.
  wakeAfterCommit(tx, 'deliveries');
  await tx.query({
    name: 'outbox_publish_many',
    text: PUBLISH_MANY,
    values: [
      ids,
      messages.map((m) => m.topic),
      messages.map((m) => m.key ?? null),
      messages.map((m) => JSON.stringify(m.attributes ?? {})),
      messages.map((m) => JSON.stringify(m.payload ?? null, jsonReplacer)),
      messages.map((m) => m.entity?.type ?? null),
      messages.map((m) => m.entity?.id ?? null),
      messages.map((m) => (m.traceparent === undefined ? active : m.traceparent)),
    ],
  });
  return ids;
}
