// A saga that drives the billing-system simulator through operations, with its faults on (500s and
// timeouts after success, seeded): every saga ends completed or compensated, and the billing
// system agrees with it member by member: started once for a completed saga, cancelled after a
// compensated one, never started twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { BillingSimulator, billingAdapter } from '../providers/billing/index.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { operationStep, sagaHistory, type SagaStatus } from './index.ts';

const sim = new BillingSimulator({ apiKey: 'bk_test_saga', seed: 42 });
const agent = new Agent({ keepAliveTimeout: 1_000 });
let t: TestEngine;

beforeAll(async () => {
  const { url } = await sim.start();
  t = await startTestEngine({
    providers: [billingAdapter({ name: 'billing', apiBase: url, apiKey: 'bk_test_saga', dispatcher: agent })],
    config: {
      endpoints: { billing: { timeoutMs: 300, maxAttempts: 1, breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 1_000 } } },
      operations: { inquirySchedule: ['10min'], unknownDeadlineMs: '1d' },
    },
  });
});

afterAll(async () => {
  await t?.close();
  await sim.stop();
  await agent.close();
});

describe('a saga over the billing system with faults', () => {
  it('ends every saga completed or compensated, and the billing system agrees member by member', async () => {
    type Input = { member: string; refuse: boolean };
    const retry = { delaysMs: [0], maxAttempts: 5, maxInquiries: 8 };
    const def = t.engine.sagas.define<Input>({
      name: 'test.subscribe',
      steps: [
        operationStep<Input>({ pool: t.tdb.db.pool, operations: t.engine.operations }, {
          id: 'billing', provider: 'billing', retry, timeoutMs: 5_000,
          invoke: { kind: 'billing.start', request: (ctx) => ({ member_id: ctx.input.member, product_id: 'gold', expires_at: '2099-01-01T00:00:00Z', reference: ctx.sagaId }) },
          compensate: { kind: 'billing.cancel', request: (ctx) => ({ member_id: ctx.input.member }) },
          entity: (ctx) => ({ type: 'member', id: ctx.input.member }),
        }),
        {
          id: 'persist', retry,
          invoke: async (ctx) => (ctx.input.refuse ? { status: 'failed', code: 'mapping_conflict', message: 'claimed by another member', retryable: false } : { status: 'succeeded' }),
        },
      ],
    });
    sim.setFaults({ error500: 0.2, timeoutAfterSuccess: 0.2, latencyMs: 3, seed: 42 });
    const outcomes: { member: string; refuse: boolean; status: SagaStatus; id: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const input = { member: `m-${i}`, refuse: i % 4 === 3 };
      const { id } = await t.engine.sagas.start(t.tdb.db.pool, def, input);
      let status: SagaStatus = 'running';
      for (let k = 0; k < 20 && (status === 'running' || status === 'compensating'); k++) status = (await t.engine.sagas.run(id))!.status;
      outcomes.push({ ...input, status, id });
    }
    sim.setFaults({});
    expect(sim.counters.error500 + sim.counters.timeouts).toBeGreaterThan(0);
    for (const o of outcomes) {
      expect([o.member, o.status]).toEqual([o.member, o.refuse ? 'compensated' : 'completed']);
      const b = sim.subscription(o.member);
      expect([o.member, b?.status, b?.renewals]).toEqual([o.member, o.refuse ? 'cancelled' : 'active', 0]);
      const h = (await sagaHistory(t.tdb.db.pool, o.id))!;
      // A start the billing system refused as already active would mean the saga started it twice.
      expect(h.attempts.filter((a) => a.error_code === 'already_active')).toEqual([]);
    }
  });
});
