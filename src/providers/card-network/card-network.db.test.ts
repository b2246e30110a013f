// Card network events through intake on real PostgreSQL and loopback HTTP: signed requests from the
// simulator, stored raw once however often sent, normalised to card.* with attributes that
// subscription filters select on; unknown types stored, ignored and counted, never refused.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestEngine, type TestEngine } from '../../../test/helpers/engine.ts';
import { upsertSubscription, type DeliveredMessage } from '../../outbox/index.ts';
import { CardNetworkSimulator } from './index.ts';

const SECRET = 'whsec_Y2FyZC1uZXR3b3JrLXRlc3Qtc2VjcmV0LTAxMjM0NTY3';

describe('card network events through intake', () => {
  let t: TestEngine;
  const sim = new CardNetworkSimulator({ secret: SECRET, seed: 11 });
  const restaurants: DeliveredMessage[] = [];
  const everything: DeliveredMessage[] = [];

  beforeAll(async () => {
    t = await startTestEngine({ config: { providers: { visa: { kind: 'card-network', secrets: [SECRET] } } } });
    t.engine.consumers.register('restaurants', { async handle(_c, m) { restaurants.push(m); } });
    t.engine.consumers.register('everything', { async handle(_c, m) { everything.push(m); } });
    await upsertSubscription(t.tdb.db.pool, { name: 'restaurants', topic: 'card.*', filter: { merchant_category: '5812', country: 'JP' }, target: { type: 'handler', handler: 'restaurants' } });
    await upsertSubscription(t.tdb.db.pool, { name: 'everything', topic: 'card.*', target: { type: 'handler', handler: 'everything' } });
    await t.startWorker();
  });
  afterAll(async () => { await t?.close(); });

  it('stores each event once, publishes its topic with attributes, and filters deliver by them', async () => {
    const sushi = sim.purchase({ user: 'u1', amount: 4_800n, currency: 'JPY', mcc: '5812', country: 'JP', scenario: 'split' });
    const grocery = sim.purchase({ user: 'u2', amount: 2_500n, currency: 'USD', mcc: '5411', country: 'US', scenario: 'reversed' });
    const sent = [...sushi, sushi[1]!, ...grocery, grocery[0]!];
    const url = `${t.url}/webhooks/visa`;
    for (const e of sent) expect(await sim.send(url, e)).toBe(200);
    const pool = t.tdb.db.pool;
    const inbox = await eventually(async () => {
      const r = await pool.query<{ event_id: string; status: string; event_type: string }>(`SELECT event_id, status, event_type FROM inbox WHERE provider = 'visa' ORDER BY received_at`);
      return r.rows.length === 5 && r.rows.every((x) => x.status === 'processed') && r.rows;
    });
    expect(inbox.map((r) => r.event_type)).toEqual(['card.authorized', 'card.cleared', 'card.cleared', 'card.authorized', 'card.reversed']);
    const raw = await pool.query<{ body: Buffer }>(`SELECT body FROM inbox WHERE event_id = $1`, [sushi[0]!.id]);
    expect(JSON.parse(raw.rows[0]!.body.toString())).toEqual({ type: 'authorization', timestamp: sushi[0]!.timestamp, data: sushi[0]!.data });
    await eventually(async () => everything.length === 5 && restaurants.length === 3);
    expect(restaurants.map((m) => m.topic)).toEqual(['card.authorized', 'card.cleared', 'card.cleared']);
    expect(restaurants[0]!.attributes).toEqual({ merchant_category: '5812', country: 'JP', user: 'u1', provider: 'visa', source: 'webhook' });
    expect(restaurants[0]!.key).toBe(sushi[0]!.data.authorization_id);
    expect(restaurants[1]!.payload).toMatchObject({ data: { amount: '2400', currency: 'JPY', amount_jpy: '2400', authorization_id: sushi[0]!.data.authorization_id } });
    const reversal = everything.find((m) => m.topic === 'card.reversed')!;
    expect(reversal.payload).toMatchObject({ data: { amount: '2500', currency: 'USD', amount_jpy: '3756', user_id: 'u2' } });
  });

  it('an unknown event type is stored and ignored, counted, never refused; a bad signature is refused', async () => {
    const unknown = { id: 'evt_unknown_1', type: 'authorization.advice', timestamp: new Date().toISOString(), data: { whatever: true } };
    expect(await sim.send(`${t.url}/webhooks/visa`, unknown)).toBe(200);
    const row = await eventually(async () => {
      const r = await t.tdb.db.pool.query<{ status: string; body: Buffer }>(`SELECT status, body FROM inbox WHERE event_id = 'evt_unknown_1'`);
      return r.rows[0]?.status === 'ignored' && r.rows[0];
    });
    expect(JSON.parse(row.body.toString()).type).toBe('authorization.advice');
    const metrics = await (await request(`${t.url}/metrics`)).body.text();
    expect(metrics).toMatch(/seigo_inbox_processed_total\{provider="visa",outcome="ignored"\} 1/);
    const forged = new CardNetworkSimulator({ secret: 'whsec_bm90LXRoZS1uZXR3b3JrJ3Mtc2VjcmV0LXJlYWxseQ==' });
    expect(await forged.send(`${t.url}/webhooks/visa`, unknown)).toBe(401);
  });
});
