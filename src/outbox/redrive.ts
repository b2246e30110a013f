// Redrive: dead (or any unfinished) deliveries back to pending, one, many or by filter; and
// backfill: hand a subscription the messages published before it existed, when asked to.
import type { Queryable } from '../kernel/db.ts';
import { wakeWhenVisible } from '../kernel/wake.ts';

export interface RedriveFilter {
  ids?: string[] | undefined;
  subscription?: string | undefined;
  topic?: string | undefined;
  /** Which deliveries to move back; default only dead ones. */
  statuses?: ('dead' | 'pending' | 'cancelled')[] | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
}

/** Returns the number of deliveries put back in the queue. */
export async function redrive(db: Queryable, f: RedriveFilter): Promise<number> {
  const where: string[] = ['d.status = ANY($1::text[])'];
  const values: unknown[] = [f.statuses ?? ['dead']];
  const add = (sql: string, v: unknown) => { values.push(v); where.push(sql.replace('?', `$${values.length}`)); };
  // A given but empty filter matches nothing: `ids: []` must never mean "every dead delivery".
  if (f.ids !== undefined) add('d.id = ANY(?::uuid[])', f.ids);
  if (f.subscription !== undefined) add('d.subscription_id = (SELECT id FROM subscriptions WHERE name = ?)', f.subscription);
  if (f.topic !== undefined) add('m.topic = ?', f.topic);
  if (f.since) add('d.created_at >= ?', f.since);
  if (f.until) add('d.created_at < ?', f.until);
  const r = await db.query(
    `UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), attempts = 0, locked_until = NULL,
       redrives = d.redrives + 1, updated_at = now()
     FROM outbox_messages m WHERE m.id = d.message_id AND ${where.join(' AND ')}`, values);
  if (r.rowCount) wakeWhenVisible(db, 'deliveries');
  return r.rowCount ?? 0;
}

/** Creates deliveries for a subscription from messages published since `since` that it matches. */
export async function backfill(db: Queryable, subscription: string, since: Date): Promise<number> {
  const r = await db.query(
    `INSERT INTO deliveries (message_id, subscription_id, target_type)
     SELECT m.id, s.id, s.target_type FROM subscriptions s JOIN outbox_messages m
       ON m.created_at >= $2
      AND (s.topic = m.topic OR (right(s.topic, 1) = '*' AND starts_with(m.topic, left(s.topic, -1))))
      AND m.attributes @> s.filter
     WHERE s.name = $1
     ON CONFLICT (message_id, subscription_id) DO NOTHING`, [subscription, since]);
  if (r.rowCount) wakeWhenVisible(db, 'deliveries');
  return r.rowCount ?? 0;
}
