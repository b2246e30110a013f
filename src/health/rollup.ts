// The health rollup: each process counts requests, errors and latencies per minute in memory and adds
// them to `health_buckets` when it flushes, so the console's Health screen and the alert rules read
// every process's traffic from seigo's own database, with no Prometheus in between.
import type { Queryable } from '../kernel/db.ts';

/** Upper bounds of the latency histogram's buckets (ms); one more bucket counts everything slower. */
export const LATENCY_BOUNDS_MS = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000] as const;
export const BUCKET_MS = 60_000;

export type HealthSource = 'route' | 'webhook' | 'provider' | 'delivery';

interface Cell { bucketAt: number; source: HealthSource; name: string; requests: number; errors: number; counts: number[] }

// Adds this flush's counts to whatever other processes already wrote for the same minute.
const UPSERT = `
INSERT INTO health_buckets AS h (bucket_at, source, name, requests, errors, latency_counts)
SELECT to_timestamp(b / 1000.0), s, n, r, e, ARRAY(SELECT jsonb_array_elements_text(c)::bigint)
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::jsonb[]) AS t(b, s, n, r, e, c)
ON CONFLICT (bucket_at, source, name) DO UPDATE SET
  requests = h.requests + EXCLUDED.requests,
  errors = h.errors + EXCLUDED.errors,
  latency_counts = ARRAY(SELECT a + x FROM unnest(h.latency_counts, EXCLUDED.latency_counts) WITH ORDINALITY AS u(a, x, i) ORDER BY i)`;

/** The histogram bucket a latency falls in. */
export function latencyBucket(ms: number): number {
  const i = LATENCY_BOUNDS_MS.findIndex((b) => ms <= b);
  return i === -1 ? LATENCY_BOUNDS_MS.length : i;
}

/** The latency under which `q` (0..1) of the counted requests fall: a bucket's upper bound, or null when none. */
export function quantileMs(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, n) => a + n, 0);
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] ?? 0;
    if (seen >= rank) return LATENCY_BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

export class HealthRollup {
  private cells = new Map<string, Cell>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Counts one request (an HTTP route, a webhook, an outbound call, a delivery attempt). */
  record(source: HealthSource, name: string, ms: number, error: boolean): void {
    const bucketAt = Math.floor(this.now() / BUCKET_MS) * BUCKET_MS;
    const key = `${bucketAt}|${source}|${name}`;
    let c = this.cells.get(key);
    if (!c) {
      c = { bucketAt, source, name: name.slice(0, 200), requests: 0, errors: 0, counts: new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0) };
      this.cells.set(key, c);
    }
    c.requests++;
    if (error) c.errors++;
    c.counts[latencyBucket(ms)]!++;
  }

  /** Adds what was counted since the last flush to `health_buckets`; on failure keeps it for the next. */
  async flush(q: Queryable): Promise<number> {
    if (this.cells.size === 0) return 0;
    const cells = [...this.cells.values()];
    this.cells = new Map();
    try {
      await q.query(UPSERT, [
        cells.map((c) => c.bucketAt), cells.map((c) => c.source), cells.map((c) => c.name),
        cells.map((c) => c.requests), cells.map((c) => c.errors), cells.map((c) => JSON.stringify(c.counts)),
      ]);
    } catch (e) {
      for (const c of cells) this.merge(c);
      throw e;
    }
    return cells.length;
  }

  private merge(c: Cell): void {
    const key = `${c.bucketAt}|${c.source}|${c.name}`;
    const have = this.cells.get(key);
    if (!have) { this.cells.set(key, c); return; }
    have.requests += c.requests;
    have.errors += c.errors;
    c.counts.forEach((n, i) => { have.counts[i]! += n; });
  }
}
