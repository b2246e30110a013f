// One evaluation of the alert rules: compares what the rules find with what is already firing
// (`alert_states`), and publishes at most three Slack messages in the same transaction: what newly
// fired, what still fires past the repeat interval, and what resolved. Grouping every rule and subject
// into those three messages is what keeps a bad minute from becoming a storm.
import type pg from 'pg';
import { ALERTS_TOPIC } from '../kernel/config.ts';
import { withTx, type Tx } from '../kernel/db.ts';
import { publish } from '../outbox/index.ts';
import { evaluateRules, type AlertsConfig, type Finding } from './rules.ts';
import { slackAlertMessage } from './slack.ts';

export { ALERTS_TOPIC };

// One evaluation at a time, whatever runs it (the periodic job, a test, the CLI).
const LOCK = `SELECT pg_advisory_xact_lock(hashtext('seigo.alerts'))`;
const FIRING = `SELECT rule, subject, last_notified_at FROM alert_states WHERE status = 'firing'`;
const FIRE = `
INSERT INTO alert_states (rule, subject, status, value, threshold, summary, fired_at, last_notified_at)
VALUES ($1, $2, 'firing', $3, $4, $5, $6, $6)
ON CONFLICT (rule, subject) DO UPDATE SET status = 'firing', value = $3, threshold = $4, summary = $5, fired_at = $6,
  resolved_at = NULL, last_notified_at = $6, notifications = alert_states.notifications + 1`;
const STILL_FIRING = `UPDATE alert_states SET value = $3, threshold = $4, summary = $5 WHERE rule = $1 AND subject = $2 AND status = 'firing'`;
const REPEAT = `
UPDATE alert_states SET value = $3, threshold = $4, summary = $5, last_notified_at = $6, notifications = notifications + 1
WHERE rule = $1 AND subject = $2 AND status = 'firing'`;
const RESOLVE = `
UPDATE alert_states SET status = 'resolved', resolved_at = $3 WHERE rule = $1 AND subject = $2 AND status = 'firing'
RETURNING rule, subject, value, threshold, summary`;

export interface Evaluation { fired: Finding[]; repeated: Finding[]; resolved: Finding[]; messages: number }

const keyOf = (f: { rule: string; subject: string }) => `${f.rule}\u0000${f.subject}`;

/** Applies the findings to `alert_states` and publishes the grouped messages, in `tx`. */
export async function applyFindings(tx: Tx, findings: readonly Finding[], c: AlertsConfig, now: Date): Promise<Evaluation> {
  const firing = new Map((await tx.query<{ rule: string; subject: string; last_notified_at: Date }>(FIRING)).rows.map((r) => [keyOf(r), r]));
  const ev: Evaluation = { fired: [], repeated: [], resolved: [], messages: 0 };
  const seen = new Set<string>();
  for (const f of findings) {
    const key = keyOf(f);
    if (seen.has(key)) continue;
    seen.add(key);
    const state = firing.get(key);
    const args = [f.rule, f.subject, f.value, f.threshold, f.summary];
    if (!state) {
      await tx.query(FIRE, [...args, now]);
      ev.fired.push(f);
    } else if (now.getTime() - state.last_notified_at.getTime() >= c.repeatIntervalMs) {
      await tx.query(REPEAT, [...args, now]);
      ev.repeated.push(f);
    } else {
      await tx.query(STILL_FIRING, args);
    }
  }
  for (const [key, s] of firing) {
    if (seen.has(key)) continue;
    const r = await tx.query<Finding>(RESOLVE, [s.rule, s.subject, now]);
    if (r.rows[0]) ev.resolved.push(r.rows[0]);
  }
  for (const [kind, list] of [['firing', ev.fired], ['still_firing', ev.repeated], ['resolved', ev.resolved]] as const) {
    if (list.length === 0) continue;
    await publish(tx, ALERTS_TOPIC, slackAlertMessage(kind, list, now), { key: kind, attributes: { kind } });
    ev.messages++;
  }
  return ev;
}

/** Evaluates every rule at `now` and notifies what changed: the periodic job `alerts.evaluate`. */
export async function evaluateAlerts(pool: pg.Pool, c: AlertsConfig, now: Date): Promise<Evaluation> {
  return withTx(pool, async (tx) => {
    await tx.query(LOCK);
    return applyFindings(tx, await evaluateRules(tx, c, now), c, now);
  });
}
