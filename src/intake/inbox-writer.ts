// Group commit for the inbox (src/kernel/batcher.ts): concurrent webhook requests are written in
// micro-batches, so many requests share one INSERT and one commit. A request's promise settles
// only after that commit, so "acknowledged" always means durable.
import type pg from 'pg';
import { uuidv7 } from '../kernel/ids.ts';
import { wake } from '../kernel/wake.ts';
import { Batcher, type BatcherOptions } from '../kernel/batcher.ts';
import { currentTraceparent } from '../kernel/tracing.ts';

export interface InboxRowInput {
  provider: string;
  eventId: string;
  headers: Record<string, string>;
  body: Buffer;
  source?: 'webhook' | 'reconciliation' | 'manual';
  /** The trace the notification arrived in (default: the active span's, taken when write is called). */
  traceparent?: string | null;
}
export interface InboxWriteResult { id: string; duplicate: boolean }

// The batch INSERT returns the rows it stored; the duplicates (rows that already existed) are
// looked up by a second statement, only when a batch has any. A single statement that also read
// the duplicates back needed a join on inbox, whose plan, made while the table was small, kept
// scanning the whole table as it grew. One parameter per field (not arrays): bodies go as binary
// and nothing is escaped into array literals. Prepared once per batch size and connection.
const FIELDS = 7;
const insertSql = new Map<number, string>();
function insertStatement(rows: number): string {
  let sql = insertSql.get(rows);
  if (!sql) {
    const values = Array.from({ length: rows }, (_, r) => {
      const b = r * FIELDS;
      return `($${b + 1}::uuid, $${b + 2}::text, $${b + 3}::text, $${b + 4}::text, $${b + 5}::jsonb, $${b + 6}::bytea, $${b + 7}::text)`;
    }).join(', ');
    sql = `
WITH input (id, provider, event_id, source, headers, body, traceparent) AS (VALUES ${values}),
ins AS (
  INSERT INTO inbox (id, provider, event_id, source, headers, body, traceparent)
  SELECT id, provider, event_id, source, headers, body, traceparent FROM input
  ON CONFLICT (provider, event_id) DO NOTHING
  RETURNING id, provider, event_id
)
SELECT id, provider, event_id, true AS inserted FROM ins`;
    insertSql.set(rows, sql);
  }
  return sql;
}

// The rows a batch did not insert: they existed already, or a concurrent batch committed them
// (a new statement, so a new snapshot, sees those too).
const EXISTING = `
SELECT i.id, i.provider, i.event_id FROM inbox i
JOIN unnest($1::text[], $2::text[]) AS k(provider, event_id) ON i.provider = k.provider AND i.event_id = k.event_id`;

export interface InboxWriterOptions extends Omit<BatcherOptions, 'keyOf'> {
  /** Called after each batch commits, with its size (metrics). */
  onBatch?: (rows: number) => void;
}

export class InboxWriter {
  private readonly batcher: Batcher<InboxRowInput, InboxWriteResult>;

  constructor(private readonly pool: pg.Pool, private readonly opts: InboxWriterOptions = {}) {
    this.batcher = new Batcher((rows) => this.flush(rows), opts);
  }

  write(row: InboxRowInput): Promise<InboxWriteResult> {
    // The batch is written from another async context: the caller's span is taken here.
    return this.batcher.submit(row.traceparent !== undefined ? row : { ...row, traceparent: currentTraceparent() });
  }

  private async flush(batch: readonly InboxRowInput[]): Promise<(InboxWriteResult | Error)[]> {
    // Within a batch the first request for a key inserts; later ones are duplicates of it.
    const keyOf = (provider: string, eventId: string) => `${provider}\u0000${eventId}`;
    const firstByKey = new Map<string, { id: string; index: number }>();
    const rows: { id: string; row: InboxRowInput }[] = [];
    batch.forEach((row, index) => {
      const key = keyOf(row.provider, row.eventId);
      if (!firstByKey.has(key)) {
        const id = uuidv7();
        firstByKey.set(key, { id, index });
        rows.push({ id, row });
      }
    });
    const values: unknown[] = [];
    for (const r of rows) values.push(r.id, r.row.provider, r.row.eventId, r.row.source ?? 'webhook', JSON.stringify(r.row.headers), r.row.body, r.row.traceparent ?? null);
    const res = await this.pool.query<{ id: string; provider: string; event_id: string; inserted: boolean }>({
      name: `inbox_insert_${rows.length}`,
      text: insertStatement(rows.length),
      values,
    });
    const inserted = new Set<string>();
    const existing = new Map<string, string>();
    for (const r of res.rows) {
      if (r.inserted) inserted.add(r.id);
      else existing.set(keyOf(r.provider, r.event_id), r.id);
    }
    this.opts.onBatch?.(inserted.size);
    if (inserted.size > 0) wake(this.pool, 'inbox');
    const missing = rows.filter((r) => !inserted.has(r.id) && !existing.has(keyOf(r.row.provider, r.row.eventId)));
    if (missing.length > 0) {
      const ex = await this.pool.query<{ id: string; provider: string; event_id: string }>({
        name: 'inbox_existing_batch',
        text: EXISTING,
        values: [missing.map((r) => r.row.provider), missing.map((r) => r.row.eventId)],
      });
      for (const r of ex.rows) existing.set(keyOf(r.provider, r.event_id), r.id);
    }
    return batch.map((row, index) => {
      const key = keyOf(row.provider, row.eventId);
      const first = firstByKey.get(key)!;
      if (inserted.has(first.id)) return { id: first.id, duplicate: index !== first.index };
      const id = existing.get(key);
      return id ? { id, duplicate: true } : new Error(`inbox row for ${row.provider}/${row.eventId} was neither inserted nor found`);
    });
  }
}
