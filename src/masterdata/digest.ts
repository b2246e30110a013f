// The morning digest per partner: what its master changes did in the window (applied, applied
// by which rule, rejected), what still waits and for how long, and the pulls that failed and why.
// An outbox message (topic digest.masterdata) per partner, sent to Slack like the daily digest.
import type { Queryable } from '../kernel/db.ts';
import { MASTERDATA_DIGEST_TOPIC } from '../kernel/config.ts';
import { publish } from '../outbox/publish.ts';

export interface MasterDigest {
  partner: string; from: string; to: string;
  applied: number; approved: number; rejected: number; superseded: number;
  /** Changes a rule applied, by rule. */
  byRule: Record<string, number>;
  waiting: { count: number; oldestHours: number | null; byField: Record<string, number> };
  failedPulls: { id: string; at: string; error: string }[];
}

const DECIDED = `
SELECT status, coalesce(rule, '') AS rule, count(*)::int AS n FROM masterdata_changes
WHERE partner_id = $1 AND status <> 'waiting' AND coalesce(decided_at, created_at) >= $2 AND coalesce(decided_at, created_at) < $3
GROUP BY status, rule`;
const WAITING = `
SELECT field, count(*)::int AS n, floor(extract(epoch FROM ($2::timestamptz - min(created_at))) / 3600)::int AS oldest_hours
FROM masterdata_changes WHERE partner_id = $1 AND status = 'waiting' GROUP BY field ORDER BY field`;
const FAILED = `
SELECT id, started_at, error FROM masterdata_pulls WHERE partner_id = $1 AND status = 'failed' AND started_at >= $2 AND started_at < $3
ORDER BY started_at LIMIT 20`;
const PARTNERS = `SELECT p.id, p.name FROM masterdata_sources s JOIN partners p ON p.id = s.partner_id ORDER BY p.name`;

export async function buildMasterDigest(q: Queryable, partner: { id: string; name: string }, from: Date, to: Date): Promise<MasterDigest> {
  const [decided, waiting, failed] = await Promise.all([
    q.query<{ status: string; rule: string; n: number }>(DECIDED, [partner.id, from, to]),
    q.query<{ field: string; n: number; oldest_hours: number }>(WAITING, [partner.id, to]),
    q.query<{ id: string; started_at: Date; error: string | null }>(FAILED, [partner.id, from, to]),
  ]);
  const sum = (status: string) => decided.rows.filter((r) => r.status === status).reduce((a, r) => a + r.n, 0);
  const byRule = Object.fromEntries(decided.rows.filter((r) => r.status === 'applied_by_rule').map((r) => [r.rule, r.n]));
  const w = waiting.rows;
  return {
    partner: partner.name, from: from.toISOString(), to: to.toISOString(),
    applied: sum('applied'), approved: sum('approved'), rejected: sum('rejected'), superseded: sum('superseded'), byRule,
    waiting: {
      count: w.reduce((a, r) => a + r.n, 0), oldestHours: w.length === 0 ? null : Math.max(...w.map((r) => r.oldest_hours)),
      byField: Object.fromEntries(w.map((r) => [r.field, r.n])),
    },
    failedPulls: failed.rows.map((r) => ({ id: r.id, at: r.started_at.toISOString(), error: r.error ?? '' })),
  };
}

const list = (c: Record<string, number>) => Object.entries(c).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';

export function masterSlackMessage(d: MasterDigest): { text: string; blocks: unknown[] } {
  const ruled = Object.values(d.byRule).reduce((a, n) => a + n, 0);
  const text = `${d.partner} master data: ${d.applied} applied, ${ruled} by rule, ${d.approved} approved, ${d.rejected} rejected, `
    + `${d.waiting.count} waiting${d.waiting.oldestHours !== null ? ` (oldest ${d.waiting.oldestHours} h)` : ''}, ${d.failedPulls.length} failed pulls`;
  const field = (title: string, value: string) => ({ type: 'mrkdwn', text: `*${title}*\n${value}` });
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: `${d.partner}: master data` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${d.from} – ${d.to}` }] },
      {
        type: 'section',
        fields: [
          field('Applied at once', String(d.applied)),
          field('Applied by rule', `${ruled}: ${list(d.byRule)}`),
          field('Approved / rejected', `${d.approved} / ${d.rejected}`),
          field('Waiting', `${d.waiting.count}${d.waiting.oldestHours !== null ? `, oldest ${d.waiting.oldestHours} h` : ''}: ${list(d.waiting.byField)}`),
          field('Failed pulls', d.failedPulls.length === 0 ? 'none' : d.failedPulls.map((f) => `${f.at}: ${f.error}`).join('\n').slice(0, 1900)),
        ],
      },
    ],
  };
}

/** One message per partner with a master source, for the `windowMs` before `now` (keyed by partner and window end). */
export async function publishMasterDigests(q: Queryable, now: Date, windowMs: number): Promise<MasterDigest[]> {
  const from = new Date(now.getTime() - windowMs);
  const out: MasterDigest[] = [];
  for (const p of (await q.query<{ id: string; name: string }>(PARTNERS)).rows) {
    const d = await buildMasterDigest(q, p, from, now);
    await publish(q, MASTERDATA_DIGEST_TOPIC, masterSlackMessage(d), { key: `${p.name}:${d.to}` });
    out.push(d);
  }
  return out;
}
