// POST /v1/deposits retried after the process that ran it died (found by `seigo sim chaos`): the
// first run recorded the deposit and charged the card, then the process was killed before the
// Idempotency-Key was completed; once the key is free (its owner gone) the retry runs the handler again. It
// must find the first run's deposit, not make and charge a second one.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StripeSimulator } from '../providers/stripe/simulator.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const API_KEY = 'wallet-backend-key-0123456789abcdef';
const WEBHOOK_SECRET = 'whsec_test_seigo_retry';
let sim: StripeSimulator;
let t: TestEngine;

beforeAll(async () => {
  sim = new StripeSimulator({ seed: 3, secretKey: 'sk_test_seigo', webhookSecret: WEBHOOK_SECRET });
  const { url } = await sim.start();
  t = await startTestEngine({
    worker: true,
    config: {
      providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [WEBHOOK_SECRET], apiBase: url, searchLagSeconds: 0 } },
      apiClients: [{ name: 'wallet', key: API_KEY }],
    },
  });
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

async function post(key: string, payload: Record<string, unknown>) {
  const res = await request(`${t.url}/v1/deposits`, {
    method: 'POST', body: JSON.stringify(payload),
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
  });
  return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> };
}

/** What a SIGKILL between the deposit's commit and the stored response leaves: the key in progress, its lock lapsed. */
async function crashAfterRecording(key: string): Promise<void> {
  await t.tdb.db.pool.query(
    `UPDATE idempotency_keys SET status = 'in_progress', locked_by = gen_random_uuid(), locked_until = now() - interval '1 second',
       response_status = NULL, response_type = NULL, response_body = NULL, completed_at = NULL
     WHERE key = $1`, [key]);
}

describe('POST /v1/deposits after a crash', () => {
  it('returns the deposit the crashed run made and charges the card once', async () => {
    const payload = { method: 'card', user_id: 'retry-u1', amount: 4_000, payment_method: 'pm_card_visa' };
    const first = await post('retry-key-1', payload);
    expect(first.status).toBe(201);
    await crashAfterRecording('retry-key-1');

    const again = await post('retry-key-1', payload);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    const rows = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM deposits WHERE user_id = 'retry-u1'`);
    expect(rows.rows[0].n).toBe(1);
    await eventually(async () => sim.paymentIntents().length === 1);
    expect(sim.paymentIntents().filter((p) => p.status === 'succeeded')).toHaveLength(1);
  });

  it('keeps an explicit client_key as the deposit key', async () => {
    const payload = { method: 'card', user_id: 'retry-u2', amount: 1_500, payment_method: 'pm_card_visa', client_key: 'order-77' };
    const first = await post('retry-key-2', payload);
    const other = await post('retry-key-3', payload);
    expect(other.body.id).toBe(first.body.id);
  });
});
