import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver, type Receiver } from '../../test/helpers/receiver.ts';
import { createPartner } from '../partners/index.ts';
import { decideChange, initialCatalog, publishMasterDigests, pullMaster, setRule, setSource, startMasterSimulator, type MasterSimulator } from './index.ts';

let slack: Receiver;
let sim: MasterSimulator;
let t: TestEngine;
beforeAll(async () => {
  slack = await startReceiver(() => ({ status: 200, body: 'ok' }));
  sim = await startMasterSimulator();
  t = await startTestEngine({ worker: true, config: { digest: { slackWebhookUrl: slack.url }, reconcile: { schedule: false } } });
});
afterAll(async () => {
  await t.close();
  await sim.close();
  await slack.close();
});

describe('the master-data morning digest', () => {
  it('tells Slack, per partner, what applied (and by which rule), what waits and how long, what was rejected, and which pulls failed', async () => {
    const pool = t.engine.db.pool;
    const p = await createPartner(pool, 'museum');
    if (!p.ok) throw new Error('partner');
    sim.partners.set('museum', { name: 'museum', items: initialCatalog('museum', 3, 5), faults: [] });
    await setSource(pool, p.value.id, { kind: 'http', url: sim.feedUrl('museum') });
    const deps = { pool, dispatcher: t.engine.egress };
    await pullMaster(deps, { partnerId: p.value.id, trigger: 'manual', actor: 'importer' });
    const added = await pool.query<{ id: string }>(`SELECT id FROM masterdata_changes WHERE status = 'waiting' ORDER BY product_code`);
    for (const [i, c] of added.rows.entries()) {
      await withTx(pool, (tx) => decideChange(tx, c.id, i === 2 ? 'rejected' : 'approved', 'checker', i === 2 ? 'not in the contract' : null));
    }
    await setRule(pool, p.value.id, 'capacity_change', {}, true, 'boss');
    const items = sim.partners.get('museum')!.items;
    items[0]!.capacity = 7;
    items[0]!.description = 'renovated';
    items[1]!.price = '99990';
    await pullMaster(deps, { partnerId: p.value.id, trigger: 'schedule', actor: 'schedule' });
    sim.partners.get('museum')!.faults = ['outage'];
    await pullMaster(deps, { partnerId: p.value.id, trigger: 'schedule', actor: 'schedule' });

    const [d] = await withTx(pool, (tx) => publishMasterDigests(tx, new Date(Date.now() + 1000), 24 * 3_600_000));
    expect(d).toMatchObject({
      partner: 'museum', applied: 1, approved: 2, rejected: 1, byRule: { capacity_change: 1 },
      waiting: { count: 2, oldestHours: 0, byField: { '*': 1, price: 1 } },
      failedPulls: [{ error: expect.stringContaining('HTTP 503') }],
    });
    // (The worker's own masterdata.digest job may have sent an earlier one.)
    const ours = () => slack.requests.map((r) => JSON.parse(r.body.toString()) as { text: string }).filter((b) => b.text.includes(', 1 failed pulls'));
    await eventually(async () => ours().length > 0, 15_000);
    expect(ours()[0]!.text).toBe('museum master data: 1 applied, 1 by rule, 2 approved, 1 rejected, 2 waiting (oldest 0 h), 1 failed pulls');
  });
});
