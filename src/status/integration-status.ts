// Integration status of one record (連携ステータス): waiting / done / failed with the cause,
// across the inbox rows, outbound operations, deliveries and sagas that concern it, and the cases
// about it (an open case is a failure waiting for a person).
import type { Queryable } from '../kernel/db.ts';

export type IntegrationState = 'waiting' | 'done' | 'failed';

export interface StatusItem {
  kind: 'inbox' | 'operation' | 'delivery' | 'saga' | 'case';
  id: string;
  state: IntegrationState;
  status: string;
  detail: string;
  cause: string | null;
  updatedAt: Date;
}

export interface IntegrationStatus {
  entityType: string;
  entityId: string;
  state: IntegrationState | 'none';
  items: StatusItem[];
}

const STATUS_SQL = `
SELECT 'inbox' AS kind, id::text, status, provider || ' ' || COALESCE(event_type, event_id) AS detail, last_error AS cause,
       COALESCE(processed_at, received_at) AS updated_at,
       CASE status WHEN 'pending' THEN 'waiting' WHEN 'failed' THEN 'failed' ELSE 'done' END AS state
  FROM inbox WHERE entity_type = $1 AND entity_id = $2
UNION ALL
SELECT 'operation', id::text, status, provider || ' ' || kind, COALESCE(error_code || ': ' || error_message, error_message), updated_at,
       CASE status WHEN 'succeeded' THEN 'done' WHEN 'failed' THEN 'failed' ELSE 'waiting' END
  FROM operations WHERE entity_type = $1 AND entity_id = $2
UNION ALL
SELECT 'delivery', d.id::text, d.status, s.name || ' ← ' || m.topic, d.last_error, d.updated_at,
       CASE d.status WHEN 'delivered' THEN 'done' WHEN 'cancelled' THEN 'done' WHEN 'dead' THEN 'failed' ELSE 'waiting' END
  FROM outbox_messages m JOIN deliveries d ON d.message_id = m.id JOIN subscriptions s ON s.id = d.subscription_id
  WHERE m.entity_type = $1 AND m.entity_id = $2
UNION ALL
SELECT 'saga', id::text, status, name || COALESCE(' at ' || current_step, ''), last_error, updated_at,
       CASE status WHEN 'completed' THEN 'done' WHEN 'compensated' THEN 'failed' WHEN 'failed' THEN 'failed' ELSE 'waiting' END
  FROM sagas WHERE entity_type = $1 AND entity_id = $2
UNION ALL
SELECT 'case', id::text, status, kind || ': ' || cause, summary, updated_at,
       CASE WHEN status IN ('open', 'investigating') THEN 'failed' ELSE 'done' END
  FROM cases WHERE (subject_type = $1 AND subject_id = $2) OR related @> jsonb_build_array(jsonb_build_object('type', $1::text, 'id', $2::text))
ORDER BY updated_at DESC
LIMIT 500`;

export async function integrationStatus(db: Queryable, entityType: string, entityId: string): Promise<IntegrationStatus> {
  const { rows } = await db.query<{ kind: StatusItem['kind']; id: string; status: string; detail: string; cause: string | null; updated_at: Date; state: IntegrationState }>(
    STATUS_SQL, [entityType, entityId]);
  const items = rows.map((r) => ({ kind: r.kind, id: r.id, state: r.state, status: r.status, detail: r.detail, cause: r.cause, updatedAt: r.updated_at }));
  // Failed wins over waiting wins over done: an operator must see a failure even while other work goes on.
  const state = items.length === 0 ? 'none'
    : items.some((i) => i.state === 'failed') ? 'failed'
      : items.some((i) => i.state === 'waiting') ? 'waiting' : 'done';
  return { entityType, entityId, state, items };
}
