import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCase } from '../cases/index.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type Receiver } from '../../test/helpers/receiver.ts';
import { DIGEST_TOPIC, publishDigest } from './digest.ts';

let slack: Receiver;
let t: TestEngine;
beforeAll(async () => {
  slack = await startReceiver(() => ({ status: 500, body: 'invalid_payload' }));
  // The scheduled reconciliation runs would add runs of their own to the figures checked below.
  t = await startTestEngine({ worker: true, config: { digest: { slackWebhookUrl: slack.url }, reconcile: { schedule: false } } });
});
afterAll(async () => {
  await t.close();
  await slack.close();
});

describe('the daily digest', () => {
  it('is a periodic job, and reaches Slack as a bare Slack message, retried until Slack takes it', async () => {
    const pool = t.engine.db.pool;
    const jobs = await pool.query<{ name: string; interval_ms: string }>(`SELECT name, interval_ms::text FROM periodic_jobs WHERE name = 'digest.daily'`);
    expect(jobs.rows).toEqual([{ name: 'digest.daily', interval_ms: String(24 * 3_600_000) }]);

    // What happened today: a reconciliation run with breaks, and cases (one already resolved).
    const run = uuidv7();
    await pool.query(`INSERT INTO reconcile_runs (id, source, scope, provider, status, finished_at) VALUES ($1, 'provider', 'provider:stripe', 'stripe', 'succeeded', now())`, [run]);
    await pool.query(`INSERT INTO reconcile_runs (id, source, scope, provider, status, error, finished_at) VALUES ($1, 'provider', 'provider:komoju', 'komoju', 'failed', 'HTTP 503', now())`, [uuidv7()]);
    for (const [cls, key] of [['missing_here', 'pi_1'], ['missing_here', 'pi_2'], ['amount_mismatch', 'pi_3']] as const) {
      await pool.query(`INSERT INTO reconcile_breaks (scope, provider, class, match_key, run_id, first_run_id) VALUES ('provider:stripe', 'stripe', $1, $2, $3, $3)`, [cls, key, run]);
    }
    await openCase(pool, { kind: 'operation', cause: 'operation_unknown_overdue', subject: { type: 'operation', id: uuidv7() }, summary: 'unknown past its deadline' });
    await openCase(pool, { kind: 'deposit', cause: 'deposit_suspense', subject: { type: 'deposit', id: uuidv7() }, summary: 'in suspense' });
    const closed = await openCase(pool, { kind: 'deposit', cause: 'deposit_suspense', subject: { type: 'deposit', id: uuidv7() }, summary: 'in suspense' });
    await pool.query(`UPDATE cases SET status = 'resolved', closed_at = now() WHERE id = $1`, [closed.id]);

    const d = await publishDigest(pool, new Date(Date.now() + 1_000), 24 * 3_600_000);
    expect(d.reconciliation).toEqual({ runs: 2, runsFailed: 1, newBreaks: { amount_mismatch: 1, missing_here: 2 }, openBreaks: { amount_mismatch: 1, missing_here: 2 } });
    expect(d.cases).toMatchObject({ opened: 3, openedByCause: { deposit_suspense: 2, operation_unknown_overdue: 1 }, closed: 1, stillOpen: 2 });

    // Slack refuses at first: the outbox retries (the first retry is due after 5 s by default;
    // brought forward here rather than waited for).
    await eventually(async () => slack.requests.length >= 1, 15_000);
    slack.answer(() => ({ status: 200, body: 'ok' }));
    await pool.query(`UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending'`);
    await eventually(async () => {
      const r = await pool.query<{ status: string }>(
        `SELECT d.status FROM deliveries d JOIN outbox_messages m ON m.id = d.message_id WHERE m.topic = $1`, [DIGEST_TOPIC]);
      return r.rows.some((x) => x.status === 'delivered');
    }, 15_000);
    const body = JSON.parse(slack.requests.at(-1)!.body.toString()) as { text: string; blocks: { type: string }[] };
    expect(Object.keys(body).sort()).toEqual(['blocks', 'text']);
    expect(body.text).toBe('seigo daily digest: 2 reconciliation runs (1 failed), 3 new breaks, 3 cases opened, 2 still open');
    expect(body.blocks.map((b) => b.type)).toEqual(['header', 'context', 'section']);
  });
});
