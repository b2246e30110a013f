// The daily digest: what reconciliation found and what people still have to do,
// posted to a Slack incoming webhook. It is an outbox message (topic `digest.daily`), so when Slack
// fails the delivery is retried on the outbox's schedule like any other, and a subscription with
// `body: "payload"` sends Slack exactly the message below.
import type { Queryable } from '../kernel/db.ts';
import { DIGEST_TOPIC } from '../kernel/config.ts';
import { publish } from '../outbox/publish.ts';

export { DIGEST_TOPIC };

export interface Digest {
  from: string;
  to: string;
  reconciliation: {
    runs: number;
    runsFailed: number;
    /** Breaks first seen in the window, by class. */
    newBreaks: Record<string, number>;
    /** Breaks still open, by class. */
    openBreaks: Record<string, number>;
  };
  cases: {
    opened: number;
    /** Cases opened in the window, by cause. */
    openedByCause: Record<string, number>;
    closed: number;
    /** Open or investigating, whenever opened. */
    stillOpen: number;
    stillOpenByKind: Record<string, number>;
  };
}

const counts = (rows: { k: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.k, r.n]));

/** The figures of the digest for the window [from, to). */
export async function buildDigest(q: Queryable, from: Date, to: Date): Promise<Digest> {
  const w = [from.toISOString(), to.toISOString()];
  const [runs, newBreaks, openBreaks, opened, closed, open] = await Promise.all([
    q.query<{ runs: number; failed: number }>(
      `SELECT count(*)::int AS runs, count(*) FILTER (WHERE status = 'failed')::int AS failed
       FROM reconcile_runs WHERE started_at >= $1 AND started_at < $2`, w),
    q.query<{ k: string; n: number }>(
      `SELECT class AS k, count(*)::int AS n FROM reconcile_breaks WHERE first_seen_at >= $1 AND first_seen_at < $2 GROUP BY class ORDER BY class`, w),
    q.query<{ k: string; n: number }>(`SELECT class AS k, count(*)::int AS n FROM reconcile_breaks WHERE status = 'open' GROUP BY class ORDER BY class`),
    q.query<{ k: string; n: number }>(
      `SELECT cause AS k, count(*)::int AS n FROM cases WHERE opened_at >= $1 AND opened_at < $2 GROUP BY cause ORDER BY n DESC, cause`, w),
    q.query<{ n: number }>(`SELECT count(*)::int AS n FROM cases WHERE closed_at >= $1 AND closed_at < $2`, w),
    q.query<{ k: string; n: number }>(
      `SELECT kind AS k, count(*)::int AS n FROM cases WHERE status IN ('open', 'investigating') GROUP BY kind ORDER BY n DESC, kind`),
  ]);
  const sum = (rows: { n: number }[]) => rows.reduce((a, r) => a + r.n, 0);
  return {
    from: w[0]!, to: w[1]!,
    reconciliation: { runs: runs.rows[0]!.runs, runsFailed: runs.rows[0]!.failed, newBreaks: counts(newBreaks.rows), openBreaks: counts(openBreaks.rows) },
    cases: {
      opened: sum(opened.rows), openedByCause: counts(opened.rows), closed: closed.rows[0]!.n,
      stillOpen: sum(open.rows), stillOpenByKind: counts(open.rows),
    },
  };
}

const list = (c: Record<string, number>) => {
  const parts = Object.entries(c).map(([k, n]) => `${k} ${n}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
};
const total = (c: Record<string, number>) => Object.values(c).reduce((a, n) => a + n, 0);

/** The digest as a Slack incoming-webhook message: `text` for notifications, `blocks` for the channel. */
export function slackMessage(d: Digest): { text: string; blocks: unknown[] } {
  const r = d.reconciliation;
  const text = `seigo daily digest: ${r.runs} reconciliation runs${r.runsFailed ? ` (${r.runsFailed} failed)` : ''}, `
    + `${total(r.newBreaks)} new breaks, ${d.cases.opened} cases opened, ${d.cases.stillOpen} still open`;
  const field = (title: string, value: string) => ({ type: 'mrkdwn', text: `*${title}*\n${value}` });
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: 'seigo daily digest' } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${d.from} – ${d.to}` }] },
      {
        type: 'section',
        fields: [
          field('Reconciliation runs', `${r.runs}${r.runsFailed ? ` (${r.runsFailed} failed)` : ''}`),
          field('New breaks', `${total(r.newBreaks)}: ${list(r.newBreaks)}`),
          field('Breaks still open', `${total(r.openBreaks)}: ${list(r.openBreaks)}`),
          field('Cases opened', `${d.cases.opened}: ${list(d.cases.openedByCause)}`),
          field('Cases closed', String(d.cases.closed)),
          field('Cases still open', `${d.cases.stillOpen}: ${list(d.cases.stillOpenByKind)}`),
        ],
      },
    ],
  };
}

/** Publishes the digest of the `windowMs` before `now` (one message per window end, by its key). */
export async function publishDigest(q: Queryable, now: Date, windowMs: number): Promise<Digest> {
  const d = await buildDigest(q, new Date(now.getTime() - windowMs), now);
  await publish(q, DIGEST_TOPIC, slackMessage(d), { key: d.to });
  return d;
}
