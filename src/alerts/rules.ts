// The alert rules: each reads seigo's own tables (health buckets, deliveries, operations, breaks,
// cases, breakers) and returns what currently breaks its threshold, one finding per subject.
import type { Queryable } from '../kernel/db.ts';
import type { Config } from '../kernel/config.ts';
import { ALERTS_SUBSCRIPTION } from '../kernel/config.ts';
import { BREAKER_STALE_MS, quantileMs } from '../health/index.ts';

export type AlertsConfig = Config['alerts'];
export const RULES = ['error_rate', 'p95_latency', 'dlq_growth', 'unknown_operations', 'reconciliation_breaks', 'cases_overdue', 'breaker_open'] as const;
export type RuleName = typeof RULES[number];

export interface Finding { rule: RuleName; subject: string; value: number; threshold: number; summary: string }

const TRAFFIC = `
SELECT source, name, requests::int AS requests, errors::int AS errors, latency_counts::int[] AS counts
FROM health_buckets WHERE bucket_at >= $1`;
const DLQ_GROWTH = `
SELECT s.name AS subject, count(*)::int AS n FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.status = 'dead' AND d.updated_at >= $1 AND s.name <> $3 GROUP BY s.name HAVING count(*) >= $2 ORDER BY s.name`;
const UNKNOWN_OPERATIONS = `
SELECT provider AS subject, count(*)::int AS n, EXTRACT(EPOCH FROM $2::timestamptz - min(COALESCE(sent_at, created_at)))::float8 AS age_s
FROM operations WHERE status = 'unknown' AND COALESCE(sent_at, created_at) < $1 GROUP BY provider ORDER BY provider`;
const OPEN_BREAKS = `
SELECT scope AS subject, count(*)::int AS n FROM reconcile_breaks WHERE status = 'open'
GROUP BY scope HAVING count(*) >= $1 ORDER BY scope`;
const CASES_OVERDUE = `
SELECT kind AS subject, count(*)::int AS n, EXTRACT(EPOCH FROM $2::timestamptz - min(opened_at))::float8 AS age_s
FROM cases WHERE status IN ('open', 'investigating') AND opened_at < $1 GROUP BY kind ORDER BY kind`;
const BREAKERS_OPEN = `
SELECT endpoint AS subject, count(*)::int AS n FROM breaker_states
WHERE state = 'open' AND reported_at >= $1 GROUP BY endpoint ORDER BY endpoint`;

const ago = (now: Date, ms: number) => new Date(now.getTime() - ms);
const minutes = (s: number) => `${Math.round(s / 60)} min`;
const pct = (x: number) => `${(Math.round(x * 1000) / 10).toString()}%`;

interface Traffic { requests: number; errors: number; counts: number[] }

/** Requests, errors and the latency histogram per `source:name` over the window. */
export async function trafficSince(q: Queryable, since: Date): Promise<Map<string, Traffic>> {
  const r = await q.query<{ source: string; name: string; requests: number; errors: number; counts: number[] }>(TRAFFIC, [since]);
  const out = new Map<string, Traffic>();
  for (const row of r.rows) {
    const key = `${row.source}:${row.name}`;
    const t = out.get(key) ?? { requests: 0, errors: 0, counts: row.counts.map(() => 0) };
    t.requests += row.requests;
    t.errors += row.errors;
    row.counts.forEach((n, i) => { t.counts[i] = (t.counts[i] ?? 0) + n; });
    out.set(key, t);
  }
  return out;
}

/** Error rate and p95 latency per route / provider / subscription over the window. */
export function trafficFindings(traffic: Map<string, Traffic>, c: AlertsConfig): Finding[] {
  const out: Finding[] = [];
  for (const [subject, t] of [...traffic].sort(([a], [b]) => a.localeCompare(b))) {
    const rate = t.errors / t.requests;
    if (c.errorRate.enabled && t.requests >= c.errorRate.minRequests && rate >= c.errorRate.threshold) {
      out.push({ rule: 'error_rate', subject, value: rate, threshold: c.errorRate.threshold,
        summary: `${pct(rate)} errors (${t.errors} of ${t.requests}), threshold ${pct(c.errorRate.threshold)}` });
    }
    const p95 = quantileMs(t.counts, 0.95);
    if (c.p95Latency.enabled && p95 !== null && t.requests >= c.p95Latency.minRequests && p95 > c.p95Latency.thresholdMs) {
      const shown = Number.isFinite(p95) ? `≤ ${p95} ms` : '> 30 s';
      out.push({ rule: 'p95_latency', subject, value: Number.isFinite(p95) ? p95 : 1e9, threshold: c.p95Latency.thresholdMs,
        summary: `p95 ${shown} over ${t.requests} requests, threshold ${c.p95Latency.thresholdMs} ms` });
    }
  }
  return out;
}

/** Every enabled rule's findings at `now`. */
export async function evaluateRules(q: Queryable, c: AlertsConfig, now: Date): Promise<Finding[]> {
  const out: Finding[] = [];
  if (c.errorRate.enabled || c.p95Latency.enabled) out.push(...trafficFindings(await trafficSince(q, ago(now, c.windowMs)), c));
  if (c.dlqGrowth.enabled) {
    const r = await q.query<{ subject: string; n: number }>(DLQ_GROWTH, [ago(now, c.windowMs), c.dlqGrowth.threshold, ALERTS_SUBSCRIPTION]);
    for (const x of r.rows) {
      out.push({ rule: 'dlq_growth', subject: x.subject, value: x.n, threshold: c.dlqGrowth.threshold,
        summary: `${x.n} deliveries dead in the last ${minutes(c.windowMs / 1000)}` });
    }
  }
  if (c.unknownOperations.enabled) {
    const r = await q.query<{ subject: string; n: number; age_s: number }>(UNKNOWN_OPERATIONS, [ago(now, c.unknownOperations.olderThanMs), now]);
    for (const x of r.rows) {
      out.push({ rule: 'unknown_operations', subject: x.subject, value: x.n, threshold: c.unknownOperations.olderThanMs,
        summary: `${x.n} operations unknown for over ${minutes(c.unknownOperations.olderThanMs / 1000)}, oldest ${minutes(x.age_s)}` });
    }
  }
  if (c.reconciliationBreaks.enabled) {
    const r = await q.query<{ subject: string; n: number }>(OPEN_BREAKS, [c.reconciliationBreaks.threshold]);
    for (const x of r.rows) {
      out.push({ rule: 'reconciliation_breaks', subject: x.subject, value: x.n, threshold: c.reconciliationBreaks.threshold, summary: `${x.n} open breaks` });
    }
  }
  if (c.casesOverdue.enabled) {
    const r = await q.query<{ subject: string; n: number; age_s: number }>(CASES_OVERDUE, [ago(now, c.casesOverdue.olderThanMs), now]);
    for (const x of r.rows) {
      out.push({ rule: 'cases_overdue', subject: x.subject, value: x.n, threshold: c.casesOverdue.olderThanMs,
        summary: `${x.n} cases open for over ${Math.round(c.casesOverdue.olderThanMs / 3_600_000)} h, oldest ${Math.round(x.age_s / 3600)} h` });
    }
  }
  if (c.breakerOpen.enabled) {
    const r = await q.query<{ subject: string; n: number }>(BREAKERS_OPEN, [ago(now, BREAKER_STALE_MS)]);
    for (const x of r.rows) {
      out.push({ rule: 'breaker_open', subject: x.subject, value: x.n, threshold: 1, summary: `circuit breaker open in ${x.n} process${x.n === 1 ? '' : 'es'}` });
    }
  }
  return out;
}
