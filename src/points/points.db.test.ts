// Points on real PostgreSQL: card events in any order, duplicated, end in the same balances as in
// order (property test over permutations, invariants after every step); the whole path from signed
// card-network webhooks through intake and the outbox to GET /v1/points; spending oldest lots
// first with Idempotency-Key; expiry.
import fc from 'fast-check';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { eventually, OPERATOR_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { CardNetworkSimulator, normalizeCardEvent } from '../providers/card-network/index.ts';
import type { NetworkEvent, Purchase } from '../providers/card-network/simulator.ts';
import { CARD_SCENARIOS } from '../providers/card-network/simulator.ts';
import { applyCardMessage, expireLots, pointsBalance, pointsFor, type PointsConfig } from './index.ts';

const SECRET = 'whsec_Y2FyZC1uZXR3b3JrLXRlc3Qtc2VjcmV0LTAxMjM0NTY3';
const API_KEY = 'points-test-api-key-0123456789abcdef';
const CONFIG: PointsConfig = {
  rules: [{ name: 'restaurants-3x', merchantCategories: ['5812'], rateBasisPoints: 300 }],
  defaultRateBasisPoints: 100, expiryMonths: 12, expiringSoonDays: 30,
};

/** The card.* message intake would publish for a network event, its ids prefixed so runs do not meet. */
function messageOf(e: NetworkEvent, prefix: string): { topic: string; payload: unknown } {
  const r = normalizeCardEvent(e.type, e.timestamp, e.data);
  if (!r.ok || !r.value[0]) throw new Error(`not a card event: ${e.type}`);
  const ev = r.value[0];
  const d = ev.data as Record<string, string | null>;
  const p = (v: string | null | undefined) => (v == null ? null : `${prefix}${v}`);
  return {
    topic: ev.type,
    payload: {
      provider: 'visa', event_id: `${prefix}${e.id}`, type: ev.type,
      data: { ...d, authorization_id: p(d.authorization_id), clearing_id: p(d.clearing_id), refund_id: p(d.refund_id), user_id: `${prefix}${d.user_id}` },
    },
  };
}

describe('points from card events', () => {
  let t: TestEngine;
  const now = () => new Date();
  beforeAll(async () => {
    t = await startTestEngine({ config: { points: CONFIG, providers: { visa: { kind: 'card-network', secrets: [SECRET] } }, apiClients: [{ name: 'wallet', key: API_KEY }] } });
  });
  afterAll(async () => { await t?.close(); });

  const apply = (m: { topic: string; payload: unknown }) => withTx(t.tdb.db.pool, (tx) => applyCardMessage(tx, { config: CONFIG, now }, m));
  const balance = async (user: string) => {
    const b = await pointsBalance(t.tdb.db.pool, user, now(), 30);
    return { provisional: b.provisional, confirmed: b.confirmed };
  };
  const invariants = async (users: readonly string[]) => {
    const sum = await t.tdb.db.pool.query<{ n: string }>(`SELECT coalesce(sum(posted), 0)::text AS n FROM ledger_balances WHERE currency = 'PTS'`);
    expect(sum.rows[0]!.n).toBe('0');
    for (const u of users) {
      const b = await balance(u);
      expect(b.provisional >= 0n && b.confirmed >= 0n).toBe(true);
      const lots = await t.tdb.db.pool.query<{ n: string }>(`SELECT coalesce(sum(remaining), 0)::text AS n FROM points_lots WHERE user_id = $1`, [u]);
      expect(BigInt(lots.rows[0]!.n)).toBe(b.confirmed);
    }
  };

  it('awards provisionally at authorization, confirms on the cleared amount by the category\'s rule, takes back on reversal, expiry and refund', async () => {
    const sim = new CardNetworkSimulator({ secret: SECRET, seed: 5 });
    const buy = (scenario: Purchase['scenario'], mcc = '5812') => sim.purchase({ user: 'alice', amount: 10_000n, currency: 'JPY', mcc, country: 'JP', scenario });
    const step = async (e: NetworkEvent) => { await apply(messageOf(e, 'ex:')); return balance('ex:alice'); };
    const [auth, clear] = buy('exact');
    expect(await step(auth!)).toEqual({ provisional: 300n, confirmed: 0n });
    expect(await step(clear!)).toEqual({ provisional: 0n, confirmed: 300n });
    const [auth2, partialClear] = buy('partial', '5411');
    expect(await step(auth2!)).toEqual({ provisional: 100n, confirmed: 300n });
    // The authorization's uncleared ¥3,000 stays provisional until it is reversed or expires.
    expect(await step(partialClear!)).toEqual({ provisional: 30n, confirmed: 370n });
    const [auth3, reversal] = buy('reversed');
    expect(await step(auth3!)).toEqual({ provisional: 330n, confirmed: 370n });
    expect(await step(reversal!)).toEqual({ provisional: 30n, confirmed: 370n });
    const [auth4, expiry] = buy('expired');
    await step(auth4!);
    expect(await step(expiry!)).toEqual({ provisional: 30n, confirmed: 370n });
    const [auth5, clear5, refund5] = buy('partial_refund');
    await step(auth5!);
    expect(await step(clear5!)).toEqual({ provisional: 30n, confirmed: 670n });
    // ¥3,333 of ¥10,000 refunded: the confirmed points follow the amount kept, ¥6,667 at 3%.
    expect(await step(refund5!)).toEqual({ provisional: 30n, confirmed: 370n + pointsFor(6_667n, 300) });
    await step(refund5!);
    expect(await balance('ex:alice')).toEqual({ provisional: 30n, confirmed: 370n + 200n });
    const rules = await t.tdb.db.pool.query<{ rule: string; n: number }>(
      `SELECT rule, count(*)::int AS n FROM points_history WHERE user_id = 'ex:alice' GROUP BY rule ORDER BY rule`);
    expect(rules.rows).toEqual([{ rule: 'default', n: 2 }, { rule: 'restaurants-3x', n: 9 }]);
    await invariants(['ex:alice']);
  });

  it('any order of events, with duplicates, ends in the state that events in order reach (invariants after every step)', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.constantFrom(...CARD_SCENARIOS), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.array(fc.nat(), { minLength: 0, maxLength: 4 }),
      async (scenarios, seed, dupes) => {
        run++;
        const sim = new CardNetworkSimulator({ secret: SECRET, seed });
        const events = scenarios.flatMap((scenario, i) => sim.purchase({
          user: `u${i % 2}`, amount: BigInt(1 + (seed % 50_000)), currency: i % 3 === 0 ? 'USD' : 'JPY', mcc: i % 2 ? '5812' : '5411', country: 'JP', scenario,
        }));
        // The same events shuffled by the seed, some sent twice.
        const shuffled = fc.sample(fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }), { seed, numRuns: 1 })[0]!;
        for (const d of dupes) shuffled.splice(d % (shuffled.length + 1), 0, shuffled[d % shuffled.length]!);
        const [inOrder, anyOrder] = [`p${run}a:`, `p${run}b:`];
        const users = (p: string) => [`${p}u0`, `${p}u1`];
        for (const e of events) { await apply(messageOf(e, inOrder)); await invariants(users(inOrder)); }
        for (const e of shuffled) { await apply(messageOf(e, anyOrder)); await invariants(users(anyOrder)); }
        for (const u of ['u0', 'u1']) expect(await balance(`${anyOrder}${u}`)).toEqual(await balance(`${inOrder}${u}`));
      },
    ), { numRuns: 100, seed: 20261203 });
  }, 600_000); // 100 cases of up to 16 events each, with invariants after every step: minutes on a loaded machine

  it('from signed network webhooks through intake to GET /v1/points, spending oldest lots first once per Idempotency-Key, and expiry', async () => {
    await t.startWorker();
    const sim = new CardNetworkSimulator({ secret: SECRET, seed: 99 });
    const events = [
      ...sim.purchase({ user: 'bob', amount: 20_000n, currency: 'JPY', mcc: '5411', country: 'JP', scenario: 'exact' }),
      ...sim.purchase({ user: 'bob', amount: 5_000n, currency: 'USD', mcc: '5812', country: 'US', scenario: 'split' }),
      ...sim.purchase({ user: 'bob', amount: 3_000n, currency: 'JPY', mcc: '5411', country: 'JP', scenario: 'exact' }).slice(0, 1),
    ];
    // Duplicates and a clearing before its authorization, as the network does.
    for (const e of [events[1]!, ...events, events[3]!]) expect(await sim.send(`${t.url}/webhooks/visa`, e)).toBe(200);
    const api = async (method: 'GET' | 'POST', path: string, body?: unknown, key?: string) => {
      const res = await request(`${t.url}${path}`, {
        method, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
    };
    // ¥20,000 at 1% = 200; $50.00 = ¥7,513 at 3% = 225 (two clearings: 112 + 113 on ¥3,756 and ¥3,757); ¥3,000 authorized = 30 provisional.
    const b = await eventually(async () => {
      const r = await api('GET', '/v1/points/bob');
      return r.json.confirmed === '425' && r.json.provisional === '30' && r;
    });
    expect(b.json).toMatchObject({ user_id: 'bob', expiring_soon: '0' });
    const spend = () => api('POST', '/v1/points/spend', { user_id: 'bob', points: '250' }, 'spend-1');
    const first = await spend();
    expect(first).toMatchObject({ status: 201, json: { spent: '250', confirmed: '175' } });
    expect((await spend()).json).toEqual(first.json);
    expect((await api('GET', '/v1/points/bob')).json).toMatchObject({ confirmed: '175' });
    const refused = await api('POST', '/v1/points/spend', { user_id: 'bob', points: '176' }, 'spend-2');
    expect(refused).toMatchObject({ status: 409, json: { code: 'insufficient_points' } });
    // Oldest lot first: the ¥20,000 purchase's 200 went first, then 50 of the next.
    const lots = await t.tdb.db.pool.query<{ amount: string; remaining: string }>(`SELECT amount::text, remaining::text FROM points_lots WHERE user_id = 'bob' ORDER BY expires_at, id`);
    expect(lots.rows.map((l) => l.remaining).reduce((a, x) => a + BigInt(x), 0n)).toBe(175n);
    expect(lots.rows[0]).toEqual({ amount: '200', remaining: '0' });
    const history = await api('GET', '/v1/points/bob/history');
    expect((history.json.data as { kind: string; rule: string | null }[]).map((h) => h.kind)).toContain('spend');
    // A year and a day later every lot has expired.
    expect(await expireLots(t.tdb.db.pool, new Date(Date.now() + 366 * 86_400_000))).toBeGreaterThan(0);
    expect((await api('GET', '/v1/points/bob')).json).toMatchObject({ confirmed: '0', provisional: '30' });
    await invariants(['bob']);
  });
});

describe('points failing on every message', () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine({ config: {
      points: CONFIG, providers: { visa: { kind: 'card-network', secrets: [SECRET] } },
      subscriptions: [{ name: 'points', topic: 'card.*', filter: {}, target: { type: 'handler', handler: 'points' }, retrySchedule: [0, 0] }],
    } });
    await t.startWorker();
  });
  afterAll(async () => { await t?.close(); });

  it('leaves card events processed, dead-letters its deliveries with the cause, and a redrive by filter awards once', async () => {
    const pool = t.tdb.db.pool;
    // A real failure of the points store: its events table is gone.
    await pool.query('ALTER TABLE points_card_events RENAME TO points_card_events_away');
    const sim = new CardNetworkSimulator({ secret: SECRET, seed: 42 });
    const events = sim.purchase({ user: 'carol', amount: 10_000n, currency: 'JPY', mcc: '5812', country: 'JP', scenario: 'exact' });
    for (const e of events) expect(await sim.send(`${t.url}/webhooks/visa`, e)).toBe(200);
    const dead = await eventually(async () => {
      const r = await pool.query<{ status: string; attempts: number; last_error: string }>(
        `SELECT d.status, d.attempts, d.last_error FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = 'points'`);
      return r.rows.length === 2 && r.rows.every((x) => x.status === 'dead') && r.rows;
    });
    for (const d of dead) expect(d).toMatchObject({ attempts: 3, last_error: expect.stringMatching(/points_card_events/) });
    const inbox = await pool.query<{ status: string }>(`SELECT status FROM inbox WHERE provider = 'visa'`);
    expect(inbox.rows.map((r) => r.status)).toEqual(['processed', 'processed']);
    await pool.query('ALTER TABLE points_card_events_away RENAME TO points_card_events');
    const res = await request(`${t.url}/admin/v1/deliveries/redrive`, {
      method: 'POST', headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ subscription: 'points' }),
    });
    expect(await res.body.json()).toEqual({ redriven: 2 });
    const b = await eventually(async () => {
      const x = await pointsBalance(pool, 'carol', new Date(), 30);
      return x.confirmed === 300n && x;
    });
    expect(b.provisional).toBe(0n);
    // Awarded once: the history adds up to the purchase's points exactly. How many rows it takes depends
    // on the order the redriven pair is applied in (the clearing first makes the authorization a no-op).
    const awards = await pool.query<{ provisional: string; confirmed: string; n: number }>(
      `SELECT sum(provisional)::text AS provisional, sum(confirmed)::text AS confirmed, count(*)::int AS n FROM points_history WHERE user_id = 'carol'`);
    expect(awards.rows[0]).toMatchObject({ provisional: '0', confirmed: '300' });
    expect(awards.rows[0]!.n).toBeGreaterThanOrEqual(1);
  });
});
