// Stripe through seigo's own paths: a charge as an outbound operation, its webhook through intake,
// and a timeout after success resolved by the janitor's inquiry. Real HTTP on loopback, real
// signatures, the simulator playing Stripe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../../kernel/db.ts';
import { eventually, startTestEngine, type TestEngine } from '../../../test/helpers/engine.ts';
import { StripeSimulator, type StripeSimulatorOptions } from './simulator.ts';

const WEBHOOK_SECRET = 'whsec_test_seigo_stripe';
let sim: StripeSimulator;
let simOpts: StripeSimulatorOptions;
let t: TestEngine;

beforeAll(async () => {
  simOpts = { seed: 7, secretKey: 'sk_test_seigo', webhookSecret: WEBHOOK_SECRET };
  sim = new StripeSimulator(simOpts);
  const { url } = await sim.start();
  t = await startTestEngine({
    config: {
      providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [WEBHOOK_SECRET], apiBase: url, searchLagSeconds: 0 } },
      endpoints: { stripe: { timeoutMs: 1_000, maxAttempts: 1 } },
    },
  });
  // The simulator sends its webhooks to this engine, as Stripe would to a registered endpoint.
  simOpts.webhookUrl = `${t.url}/webhooks/stripe`;
});
afterAll(async () => {
  await t?.close();
  await sim?.stop();
});

async function charge(key: string, paymentMethod = 'pm_card_visa') {
  const ops = t.engine.operations;
  const { operation } = await withTx(t.tdb.db.pool, (tx) => ops.record(tx, {
    provider: 'stripe', kind: 'charge', idempotencyKey: key, entity: { type: 'deposit', id: key },
    request: { amount: 5000, currency: 'jpy', payment_method: paymentMethod },
  }));
  return ops.execute(operation.id);
}

describe('stripe through seigo', () => {
  it('charges, records the result, and takes the signed webhook into the inbox as payment.succeeded', async () => {
    const op = await charge('dep_ok_1');
    expect(op.status).toBe('succeeded');
    expect(op.response).toMatchObject({ object: 'payment_intent', status: 'succeeded', amount: 5000 });
    await sim.idle();
    await t.engine.inbox.runOnce(100);
    const rows = await t.tdb.db.pool.query(`SELECT status, event_type, entity_id FROM inbox WHERE provider = 'stripe'`);
    expect(rows.rows).toContainEqual({ status: 'processed', event_type: 'payment.succeeded', entity_id: (op.response as { id: string }).id });
  });

  it('records a decline as failed with the decline code', async () => {
    const op = await charge('dep_declined_1', 'pm_card_chargeDeclined');
    expect(op).toMatchObject({ status: 'failed', error_code: 'generic_decline' });
  });

  it('leaves a timeout after success unknown, then the janitor learns from Stripe that it succeeded', async () => {
    sim.setFaults({ timeoutAfterSuccess: 1 });
    const op = await charge('dep_timeout_1');
    sim.setFaults({ timeoutAfterSuccess: 0 });
    expect(op.status).toBe('unknown');
    await t.tdb.db.pool.query(`UPDATE operations SET next_inquiry_at = now() WHERE id = $1`, [op.id]);
    await t.engine.operations.janitorOnce();
    const after = await eventually(async () => {
      const o = await t.engine.operations.get(op.id);
      return o?.status === 'succeeded' ? o : null;
    });
    expect(after.response).toMatchObject({ status: 'succeeded', metadata: { seigo_operation_id: op.id } });
    // Exactly one PaymentIntent for that operation: the inquiry did not charge again.
    expect(sim.paymentIntents().filter((p) => (p.metadata as Record<string, string>).seigo_operation_id === op.id)).toHaveLength(1);
  });
});
