// What the console's Health screen shows: traffic per route and provider over the last hours (from
// health_buckets), queue depths, the oldest unknown operation, the DLQ and the breakers, all read from
// seigo's own tables.
import type { Queryable } from '../kernel/db.ts';
import { BREAKER_STALE_MS } from './breakers.ts';
import { BUCKET_MS, quantileMs } from './rollup.ts';

const TRAFFIC = `
SELECT source, name, bucket_at, requests::int AS requests, errors::int AS errors, latency_counts::int[] AS counts
FROM health_buckets WHERE bucket_at >= $1 ORDER BY bucket_at`;
const QUEUES = `
SELECT s.name AS subscription,
  count(d.id) FILTER (WHERE d.status IN ('pending', 'sending'))::int AS pending,
  count(d.id) FILTER (WHERE d.status = 'dead')::int AS dead
FROM subscriptions s LEFT JOIN deliveries d ON d.subscription_id = s.id AND d.status IN ('pending', 'sending', 'dead')
GROUP BY s.name ORDER BY s.name`;
const INBOX = `SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending, count(*) FILTER (WHERE status = 'failed')::int AS failed
FROM inbox WHERE status IN ('pending', 'failed')`;
const OLDEST_UNKNOWN = `SELECT min(COALESCE(sent_at, created_at)) AS at, count(*)::int AS n FROM operations WHERE status = 'unknown'`;
const BREAKERS = `SELECT endpoint, process_id, state, changed_at FROM breaker_states WHERE reported_at >= $1 ORDER BY endpoint, process_id`;

export interface TrafficFigures { requests: number; errors: number; p95_ms: number | null }
export interface HealthReport {
  from: string;
  to: string;
  step_minutes: number;
  subjects: ({ source: string; name: string } & TrafficFigures)[];
  series: ({ at: string } & TrafficFigures)[];
  inbox: { pending: number; failed: number };
  subscriptions: { subscription: string; pending: number; dead: number }[];
  dlq_size: number;
  unknown_operations: { count: number; oldest_at: string | null };
  breakers: { endpoint: string; process_id: string; state: string; changed_at: string }[];
}

interface Acc { requests: number; errors: number; counts: number[] }
const add = (a: Acc | undefined, r: { requests: number; errors: number; counts: number[] }): Acc => {
  const out = a ?? { requests: 0, errors: 0, counts: r.counts.map(() => 0) };
  out.requests += r.requests;
  out.errors += r.errors;
  r.counts.forEach((n, i) => { out.counts[i] = (out.counts[i] ?? 0) + n; });
  return out;
};
const figures = (a: Acc): TrafficFigures => {
  const p95 = quantileMs(a.counts, 0.95);
  return { requests: a.requests, errors: a.errors, p95_ms: p95 === null ? null : Number.isFinite(p95) ? p95 : -1 };
};

/** The Health screen's figures for the `hours` before `now`, traffic in steps of `stepMinutes`. */
export async function healthReport(q: Queryable, now: Date, hours: number, stepMinutes = 10): Promise<HealthReport> {
  const stepMs = Math.max(1, Math.round(stepMinutes)) * BUCKET_MS;
  const from = new Date(Math.floor((now.getTime() - hours * 3_600_000) / stepMs) * stepMs);
  const [traffic, queues, inbox, unknown, breakers] = await Promise.all([
    q.query<{ source: string; name: string; bucket_at: Date; requests: number; errors: number; counts: number[] }>(TRAFFIC, [from]),
    q.query<{ subscription: string; pending: number; dead: number }>(QUEUES),
    q.query<{ pending: number; failed: number }>(INBOX),
    q.query<{ at: Date | null; n: number }>(OLDEST_UNKNOWN),
    q.query<{ endpoint: string; process_id: string; state: string; changed_at: Date }>(BREAKERS, [new Date(now.getTime() - BREAKER_STALE_MS)]),
  ]);
  const bySubject = new Map<string, Acc>();
  const byStep = new Map<number, Acc>();
  for (const r of traffic.rows) {
    const key = `${r.source}\u0000${r.name}`;
    bySubject.set(key, add(bySubject.get(key), r));
    const step = Math.floor(r.bucket_at.getTime() / stepMs) * stepMs;
    byStep.set(step, add(byStep.get(step), r));
  }
  const series: HealthReport['series'] = [];
  for (let at = from.getTime(); at <= now.getTime(); at += stepMs) {
    const a = byStep.get(at);
    series.push({ at: new Date(at).toISOString(), ...(a ? figures(a) : { requests: 0, errors: 0, p95_ms: null }) });
  }
  return {
    from: from.toISOString(), to: now.toISOString(), step_minutes: stepMs / BUCKET_MS,
    subjects: [...bySubject].map(([key, a]) => {
      const [source, name] = key.split('\u0000') as [string, string];
      return { source, name, ...figures(a) };
    }).sort((x, y) => y.requests - x.requests || x.name.localeCompare(y.name)),
    series,
    inbox: inbox.rows[0] ?? { pending: 0, failed: 0 },
    subscriptions: queues.rows,
    dlq_size: queues.rows.reduce((n, r) => n + r.dead, 0),
    unknown_operations: { count: unknown.rows[0]?.n ?? 0, oldest_at: unknown.rows[0]?.at?.toISOString() ?? null },
    breakers: breakers.rows.map((b) => ({ ...b, changed_at: b.changed_at.toISOString() })),
  };
}
