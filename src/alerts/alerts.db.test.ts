// Alert rules end to end: findings from seigo's own tables, alert_states, and the grouped Slack
// messages delivered through the outbox to a real HTTP receiver on loopback.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openCase } from '../cases/index.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { ALERTS_SUBSCRIPTION } from '../kernel/config.ts';
import { publish } from '../outbox/index.ts';
import { HealthRollup, reportBreakers } from '../health/index.ts';
import { Resilience } from '../operations/index.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type Receiver } from '../../test/helpers/receiver.ts';
import { evaluateAlerts, MAX_SUBJECTS } from './index.ts';

let slack: Receiver;
let t: TestEngine;
const MIN = 60_000;
const T0 = new Date('2026-12-03T10:00:00Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

beforeAll(async () => {
  slack = await startReceiver(() => ({ status: 200, body: 'ok' }));
  t = await startTestEngine({
    config: {
      alerts: { slackWebhookUrl: slack.url, windowMs: '15min', repeatIntervalMs: '4h', errorRate: { threshold: 0.1, minRequests: 20 } },
      reconcile: { schedule: false },
      subscriptions: [{ name: 'ledger-sync', topic: 'thing.*', target: { type: 'http', url: 'http://127.0.0.1:9/nowhere' } }],
    },
  });
});
afterAll(async () => {
  await t.close();
  await slack.close();
});
beforeEach(async () => {
  const pool = t.engine.db.pool;
  await pool.query('TRUNCATE health_buckets, breaker_states, alert_states');
});

/** Evaluates, delivers what was published, and returns the Slack bodies that arrived. */
async function evaluate(now: Date): Promise<{ text: string; blocks: { type: string; text?: { text: string } }[] }[]> {
  const before = slack.requests.length;
  await evaluateAlerts(t.engine.db.pool, t.engine.config.alerts, now);
  while ((await t.engine.httpDeliveries.runOnce(50)) > 0) { /* until nothing is due */ }
  return slack.requests.slice(before).map((r) => JSON.parse(r.body.toString()) as never);
}

/** `requests` calls to `name` at `when`, `errors` of them failed, through the real rollup and its flush. */
async function traffic(when: Date, name: string, requests: number, errors: number, ms = 20): Promise<void> {
  const rollup = new HealthRollup(() => when.getTime());
  for (let i = 0; i < requests; i++) rollup.record('route', name, ms, i < errors);
  await rollup.flush(t.engine.db.pool);
}

describe('alert rules to Slack', () => {
  it('the config subscription posts the bare Slack message', async () => {
    const r = await t.engine.db.pool.query<{ topic: string; target_type: string; target: { url: string; body: string } }>(
      'SELECT topic, target_type, target FROM subscriptions WHERE name = $1', [ALERTS_SUBSCRIPTION]);
    expect(r.rows[0]).toMatchObject({ topic: 'alerts.slack', target_type: 'http', target: { url: slack.url, body: 'payload' } });
  });

  it('one message when an error rate fires, none while it keeps firing, one per repeat interval, one on resolve', async () => {
    await traffic(at(0), 'POST /v1/deposits', 40, 8);
    // Below minRequests: a bad ratio over few requests does not fire.
    await traffic(at(0), 'GET /v1/quiet', 10, 9);

    const fired = await evaluate(at(MIN));
    expect(fired).toHaveLength(1);
    expect(fired[0]!.text).toBe(':rotating_light: seigo alert firing: error_rate (1)');
    expect(fired[0]!.blocks[1]!.text!.text).toContain('`route:POST /v1/deposits`: 20% errors (8 of 40), threshold 10%');
    expect(JSON.stringify(fired[0])).not.toContain('GET /v1/quiet');

    expect(await evaluate(at(2 * MIN))).toEqual([]);
    expect(await evaluate(at(10 * MIN))).toEqual([]);
    // Still within the window four hours later only because traffic keeps coming.
    await traffic(at(4 * 60 * MIN - 5 * MIN), 'POST /v1/deposits', 40, 10);
    const repeated = await evaluate(at(4 * 60 * MIN + MIN));
    expect(repeated.map((m) => m.text)).toEqual([':warning: seigo alert still firing: error_rate (1)']);

    const resolved = await evaluate(at(5 * 60 * MIN));
    expect(resolved.map((m) => m.text)).toEqual([':white_check_mark: seigo alert resolved: error_rate (1)']);
    expect(await evaluate(at(5 * 60 * MIN + MIN))).toEqual([]);
    const s = await t.engine.db.pool.query('SELECT rule, subject, status, notifications FROM alert_states');
    expect(s.rows).toEqual([{ rule: 'error_rate', subject: 'route:POST /v1/deposits', status: 'resolved', notifications: 2 }]);
  });

  it('p95 latency fires per subject over the threshold', async () => {
    await traffic(at(0), 'POST /v1/slow', 30, 0, 4_000);
    await traffic(at(0), 'POST /v1/fast', 30, 0, 40);
    const m = await evaluate(at(MIN));
    expect(m.map((x) => x.text)).toEqual([':rotating_light: seigo alert firing: p95_latency (1)']);
    expect(m[0]!.blocks[1]!.text!.text).toContain('`route:POST /v1/slow`: p95 ≤ 5000 ms over 30 requests, threshold 2500 ms');
    await evaluate(at(60 * MIN)); // resolved: the traffic left the window
  });

  it('every other rule fires at once in one grouped message, and resolves in one', async () => {
    const pool = t.engine.db.pool;
    const now = new Date();
    // A dead delivery in the window.
    await publish(pool, 'thing.happened', { n: 1 });
    await pool.query(`UPDATE deliveries d SET status = 'dead', updated_at = now() FROM subscriptions s
                      WHERE s.id = d.subscription_id AND s.name = 'ledger-sync'`);
    // An operation unknown for an hour.
    const op = uuidv7();
    await pool.query(`INSERT INTO operations (id, provider, kind, idempotency_key, request, status, sent_at)
                      VALUES ($1, 'stripe', 'charge', $2, '{}', 'unknown', now() - interval '1 hour')`, [op, `k-${op}`]);
    // An open reconciliation break.
    const run = uuidv7();
    await pool.query(`INSERT INTO reconcile_runs (id, source, scope, provider, status, finished_at) VALUES ($1, 'provider', 'provider:stripe', 'stripe', 'succeeded', now())`, [run]);
    await pool.query(`INSERT INTO reconcile_breaks (scope, provider, class, match_key, run_id, first_run_id) VALUES ('provider:stripe', 'stripe', 'missing_here', 'pi_9', $1, $1)`, [run]);
    // A case open for two days.
    const c = await openCase(pool, { kind: 'deposit', cause: 'deposit_suspense', subject: { type: 'deposit', id: uuidv7() }, summary: 'in suspense' });
    await pool.query(`UPDATE cases SET opened_at = now() - interval '2 days' WHERE id = $1`, [c.id]);
    // A breaker that really opened: one failed call with a breaker of one failure.
    const resilience = new Resilience({ komoju: { timeoutMs: 1_000, maxAttempts: 1, concurrency: 1, breaker: { consecutiveFailures: 1, halfOpenAfterMs: 3_600_000 } } });
    await expect(resilience.execute('komoju', false, () => Promise.reject(new Error('socket hang up')))).rejects.toThrow();
    expect(resilience.breakers().map((b) => [b.endpoint, b.state])).toEqual([['komoju', 'open']]);
    await reportBreakers(pool, 'test-process', resilience.breakers());

    const fired = await evaluate(now);
    expect(fired).toHaveLength(1);
    expect(fired[0]!.text).toBe(':rotating_light: seigo alert firing: dlq_growth (1), unknown_operations (1), '
      + 'reconciliation_breaks (1), cases_overdue (1), breaker_open (1)');
    const body = fired[0]!.blocks.map((b) => b.text?.text ?? '').join('\n');
    expect(body).toContain('`ledger-sync`: 1 deliveries dead in the last 15 min');
    expect(body).toContain('`stripe`: 1 operations unknown for over 30 min, oldest 60 min');
    expect(body).toContain('`provider:stripe`: 1 open breaks');
    expect(body).toContain('`deposit`: 1 cases open for over 24 h, oldest 48 h');
    expect(body).toContain('`komoju`: circuit breaker open in 1 process');

    // Everything is dealt with: one message says so.
    await pool.query(`UPDATE operations SET status = 'succeeded', completed_at = now() WHERE id = $1`, [op]);
    await pool.query(`UPDATE reconcile_breaks SET status = 'resolved', resolved_at = now()`);
    await pool.query(`UPDATE cases SET status = 'resolved', closed_at = now() WHERE id = $1`, [c.id]);
    await pool.query(`UPDATE deliveries SET status = 'delivered', delivered_at = now() WHERE status = 'dead'`);
    await reportBreakers(pool, 'test-process', [{ endpoint: 'komoju', state: 'closed', changedAt: new Date() }]);
    const resolved = await evaluate(new Date(now.getTime() + MIN));
    expect(resolved.map((m) => m.text)).toEqual([':white_check_mark: seigo alert resolved: dlq_growth (1), unknown_operations (1), '
      + 'reconciliation_breaks (1), cases_overdue (1), breaker_open (1)']);
  });

  it('never a storm: two hundred routes failing at once are one message, the list cut short', async () => {
    for (let i = 0; i < 200; i++) await traffic(at(0), `GET /v1/r${String(i).padStart(3, '0')}`, 20, 20);
    const m = await evaluate(at(MIN));
    expect(m).toHaveLength(1);
    expect(m[0]!.text).toBe(':rotating_light: seigo alert firing: error_rate (200)');
    const lines = m[0]!.blocks[1]!.text!.text.split('\n');
    expect(lines).toHaveLength(1 + MAX_SUBJECTS + 1);
    expect(lines.at(-1)).toBe(`…and ${200 - MAX_SUBJECTS} more`);
    expect(await evaluate(at(2 * MIN))).toEqual([]);
  });
});
