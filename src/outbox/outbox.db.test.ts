// Fan-out on real PostgreSQL: which subscriptions a published message reaches (topic, attribute
// filter, subscriptions added later, backfill), checked against a reference predicate with
// fast-check, and the queue metrics an operator watches.
import fc from 'fast-check';
import { propertyParams } from '../../test/helpers/property.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { withTx, type Queryable } from '../kernel/db.ts';
import { admin } from '../../test/helpers/admin.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { startReceiver } from '../../test/helpers/receiver.ts';
import { backfill, publish, publishMany, redrive, setSubscriptionStatus, syncConfigSubscriptions, upsertSubscription, type SubscriptionStatus } from './index.ts';

let t: TestEngine;
beforeAll(async () => { t = await startTestEngine(); });
afterAll(async () => { await t?.close(); });

/** Names of the subscriptions (starting with `prefix`) that have a delivery for each of these messages. */
async function subscribersOf(db: Queryable, messageIds: readonly string[], prefix = ''): Promise<Map<string, string[]>> {
  const r = await db.query<{ message_id: string; name: string }>(
    `SELECT d.message_id, s.name FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
     WHERE d.message_id = ANY($1::uuid[]) AND starts_with(s.name, $2) ORDER BY s.name`, [messageIds, prefix]);
  const out = new Map<string, string[]>(messageIds.map((id) => [id, []]));
  for (const row of r.rows) out.get(row.message_id)!.push(row.name);
  return out;
}

const handler = (name: string) => ({ type: 'handler' as const, handler: name });

describe('subscriptions added later', () => {
  it('get messages published after they exist, not earlier ones, until backfilled (API and function)', async () => {
    const pool = t.tdb.db.pool;
    const [old1, old2] = await withTx(pool, (tx) => publishMany(tx, [
      { topic: 'late.order.paid', payload: { n: 1 } },
      { topic: 'late.order.paid', payload: { n: 2 } },
    ]));
    // Give the old messages fixed publication times so "since" can fall between them.
    await pool.query(`UPDATE outbox_messages SET created_at = $2 WHERE id = $1`, [old1, '2020-01-01T00:00:00Z']);
    await pool.query(`UPDATE outbox_messages SET created_at = $2 WHERE id = $1`, [old2, '2020-01-02T00:00:00Z']);

    const created = await admin(t.url, 'POST', '/subscriptions', { name: 'late-api', topic: 'late.order.paid', target: handler('late-api') });
    expect(created.status).toBe(201);
    await upsertSubscription(pool, { name: 'late-fn', topic: 'late.*', target: handler('late-fn') });

    const fresh = await withTx(pool, (tx) => publish(tx, 'late.order.paid', { n: 3 }));
    let subs = await subscribersOf(pool, [old1!, old2!, fresh], 'late-');
    expect(subs.get(old1!)).toEqual([]);
    expect(subs.get(old2!)).toEqual([]);
    expect(subs.get(fresh)).toEqual(['late-api', 'late-fn']);

    // Backfill since a time between the two old messages: only the second one, and the fresh one is not doubled.
    const b1 = await admin(t.url, 'POST', '/subscriptions/late-api/backfill', { since: '2020-01-01T12:00:00Z' });
    expect(b1).toEqual({ status: 202, json: { created: 1 } });
    expect(await backfill(pool, 'late-fn', new Date('2019-12-31T00:00:00Z'))).toBe(2);
    subs = await subscribersOf(pool, [old1!, old2!, fresh], 'late-');
    expect(subs.get(old1!)).toEqual(['late-fn']);
    expect(subs.get(old2!)).toEqual(['late-api', 'late-fn']);
    expect(subs.get(fresh)).toEqual(['late-api', 'late-fn']);

    // Backfilling again creates nothing: one delivery per (message, subscription).
    const b2 = await admin(t.url, 'POST', '/subscriptions/late-api/backfill', { since: '2019-01-01T00:00:00Z' });
    expect(b2.json).toEqual({ created: 1 }); // old1 was still missing for late-api
    const b3 = await admin(t.url, 'POST', '/subscriptions/late-api/backfill', { since: '2019-01-01T00:00:00Z' });
    expect(b3.json).toEqual({ created: 0 });
    const unknown = await admin(t.url, 'POST', '/subscriptions/nobody/backfill', { since: '2019-01-01T00:00:00Z' });
    expect(unknown.status).toBe(404);
  });

  it('a backfilled in-process consumer handles old and new messages exactly once each', async () => {
    const pool = t.tdb.db.pool;
    const seen: unknown[] = [];
    t.engine.consumers.register('late-consumer', { async handle(_ctx, m) { seen.push(m.payload); } });
    const old = await withTx(pool, (tx) => publish(tx, 'late.consumer', { n: 'old' }));
    await upsertSubscription(pool, { name: 'late-consumer', topic: 'late.consumer', target: handler('late-consumer') });
    await withTx(pool, (tx) => publish(tx, 'late.consumer', { n: 'new' }));
    while (await t.engine.handlerDeliveries.runOnce(100) > 0);
    expect(seen).toEqual([{ n: 'new' }]);
    const since = (await pool.query<{ created_at: Date }>('SELECT created_at FROM outbox_messages WHERE id = $1', [old])).rows[0]!.created_at;
    expect(await backfill(pool, 'late-consumer', since)).toBe(1);
    while (await t.engine.handlerDeliveries.runOnce(100) > 0);
    expect(seen).toEqual([{ n: 'new' }, { n: 'old' }]);
  });
});

describe('topic and attribute matching', () => {
  it('matches exact topics, "prefix.*" and "*"', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'tm-exact', topic: 'tm.deposit.paid', target: handler('x') });
    await upsertSubscription(pool, { name: 'tm-prefix', topic: 'tm.deposit.*', target: handler('x') });
    await upsertSubscription(pool, { name: 'tm-star', topic: '*', target: handler('x') });
    const topics = ['tm.deposit.paid', 'tm.deposit.reservation.expired', 'tm.deposit', 'tm.depositx.paid', 'tm.order.paid'];
    const ids = await withTx(pool, (tx) => publishMany(tx, topics.map((topic) => ({ topic, payload: {} }))));
    const subs = await subscribersOf(pool, ids, 'tm-');
    const byTopic = Object.fromEntries(topics.map((topic, i) => [topic, subs.get(ids[i]!)]));
    expect(byTopic).toEqual({
      'tm.deposit.paid': ['tm-exact', 'tm-prefix', 'tm-star'],
      'tm.deposit.reservation.expired': ['tm-prefix', 'tm-star'],
      'tm.deposit': ['tm-star'],
      'tm.depositx.paid': ['tm-star'],
      'tm.order.paid': ['tm-star'],
    });
  });

  it('filters on attributes by containment: {provider, region} matches {provider: "acme"}, not {provider: "other"}', async () => {
    const pool = t.tdb.db.pool;
    const filters: Record<string, Record<string, unknown>> = {
      'af-none': {},
      'af-acme': { provider: 'acme' },
      'af-other': { provider: 'other' },
      'af-acme-jp': { provider: 'acme', region: 'jp' },
      'af-acme-us': { provider: 'acme', region: 'us' },
      'af-acme-tier': { provider: 'acme', tier: 'gold' },
    };
    for (const [name, filter] of Object.entries(filters)) {
      await upsertSubscription(pool, { name, topic: 'af.payment', filter, target: handler('x') });
    }
    const [jp, bare, other] = await withTx(pool, (tx) => publishMany(tx, [
      { topic: 'af.payment', payload: {}, attributes: { provider: 'acme', region: 'jp' } },
      { topic: 'af.payment', payload: {} },
      { topic: 'af.payment', payload: {}, attributes: { provider: 'other', region: 'jp' } },
    ]));
    const subs = await subscribersOf(pool, [jp!, bare!, other!], 'af-');
    expect(subs.get(jp!)).toEqual(['af-acme', 'af-acme-jp', 'af-none']);
    expect(subs.get(bare!)).toEqual(['af-none']);
    expect(subs.get(other!)).toEqual(['af-none', 'af-other']);
  });

  it('publishing the same message id twice fans out once', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'idem', topic: 'idem.topic', target: handler('x') });
    const id = '0190a0a0-0000-7000-8000-000000000001';
    await withTx(pool, (tx) => publish(tx, 'idem.topic', { a: 1 }, { id }));
    await withTx(pool, (tx) => publish(tx, 'idem.topic', { a: 2 }, { id }));
    expect((await subscribersOf(pool, [id], 'idem')).get(id)).toEqual(['idem']);
    const m = await pool.query('SELECT payload FROM outbox_messages WHERE id = $1', [id]);
    expect(m.rows).toEqual([{ payload: { a: 1 } }]);
  });

  it('a message published in a rolled-back transaction reaches no one', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'rb', topic: 'rb.topic', target: handler('x') });
    let id = '';
    await expect(withTx(pool, async (tx) => {
      id = await publish(tx, 'rb.topic', {});
      throw new Error('the change that caused it failed');
    })).rejects.toThrow('the change that caused it failed');
    const r = await pool.query('SELECT (SELECT count(*)::int FROM outbox_messages WHERE id = $1) AS m, (SELECT count(*)::int FROM deliveries WHERE message_id = $1) AS d', [id]);
    expect(r.rows[0]).toEqual({ m: 0, d: 0 });
  });
});

// Reference semantics of a subscription, written independently of the SQL.
const ATTR_KEYS = ['provider', 'region', 'tier'] as const;
const ATTR_VALUES = ['acme', 'other', 'jp', 'us', 1, 2, true, false] as const;
type Attrs = Record<string, string | number | boolean>;
interface SubSpec { topic: string; filter: Attrs; status: SubscriptionStatus }
interface MsgSpec { topic: string; attributes: Attrs }

function topicMatches(sub: string, topic: string): boolean {
  if (sub === topic) return true;
  return sub.endsWith('*') && topic.startsWith(sub.slice(0, -1));
}
function expectedMatch(s: SubSpec, m: MsgSpec): boolean {
  // Paused subscriptions keep collecting (they are only not delivered); disabled ones take nothing new.
  return s.status !== 'disabled' && topicMatches(s.topic, m.topic)
    && Object.entries(s.filter).every(([k, v]) => Object.hasOwn(m.attributes, k) && m.attributes[k] === v);
}

describe('fan-out property', () => {
  let tdb: TestDatabase;
  beforeAll(async () => { tdb = await createTestDatabase(); });
  afterAll(async () => { await tdb?.drop(); });

  // Segments include '%' and '_' so that a LIKE-based match would be caught.
  const segment = fc.constantFrom('deposit', 'paid', 'a', 'a_', 'a%', 'ab', 'x');
  const topic = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('.'));
  const subTopic = fc.oneof(
    topic,
    topic.map((s) => `${s}.*`),
    topic.chain((s) => fc.nat({ max: s.length }).map((n) => `${s.slice(0, n)}*`)),
    fc.constant('*'),
  );
  const attrs = fc.dictionary(fc.constantFrom(...ATTR_KEYS), fc.constantFrom(...ATTR_VALUES), { maxKeys: 3 });
  const sub = fc.record({ topic: subTopic, filter: attrs, status: fc.constantFrom<SubscriptionStatus>('active', 'active', 'paused', 'disabled') });
  // Messages are drawn partly from the subscriptions' own topics so that matches (and near misses:
  // "a_" turned into "ab", "a%" into "azz", which only a LIKE pattern would match) are common.
  const nearTopic = (subTopics: string[]) => fc.tuple(fc.constantFrom(...subTopics), fc.constantFrom('', 'paid', '.paid', 'X.a'), fc.boolean())
    .map(([st, suffix, wild]) => {
      const t = st.replace(/\*$/, '') + suffix;
      return wild ? t.replaceAll('_', 'b').replaceAll('%', 'zz') : t;
    });
  const scenario = fc.array(sub, { minLength: 1, maxLength: 6 }).chain((subs) => fc.record({
    subs: fc.constant(subs),
    msgs: fc.array(fc.record({ topic: fc.oneof(topic, nearTopic(subs.map((s) => s.topic))), attributes: attrs }), { minLength: 1, maxLength: 12 }),
  }));

  it('creates exactly the deliveries the reference predicate predicts', async () => {
    const pool = tdb.db.pool;
    await fc.assert(fc.asyncProperty(scenario, async ({ subs, msgs }) => {
      await pool.query('TRUNCATE delivery_attempts, deliveries, outbox_messages, subscriptions');
      for (const [i, s] of subs.entries()) {
        await upsertSubscription(pool, { name: `p${i}`, topic: s.topic, filter: s.filter, target: handler('p') });
        if (s.status !== 'active') await setSubscriptionStatus(pool, `p${i}`, s.status, 'property test');
      }
      const ids = await withTx(pool, (tx) => publishMany(tx, msgs.map((m) => ({ topic: m.topic, payload: null, attributes: m.attributes }))));
      const actual = await subscribersOf(pool, ids);
      for (const [j, m] of msgs.entries()) {
        const expected = subs.flatMap((s, i) => (expectedMatch(s, m) ? [`p${i}`] : [])).sort();
        expect(actual.get(ids[j]!)!.slice().sort(), `message ${JSON.stringify(m)}`).toEqual(expected);
      }
    }), propertyParams('fan-out matches the reference predicate'));
  });
});

describe('queue metrics', () => {
  async function metric(name: string, subscription: string): Promise<number | undefined> {
    const res = await request(`${t.url}/metrics`);
    const text = await res.body.text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{subscription="${subscription}"} `));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }

  it('GET /metrics shows seigo_queue_depth and seigo_dead_deliveries per subscription', async () => {
    const pool = t.tdb.db.pool;
    // One subscription nobody consumes in this process (its queue grows), one whose consumer always fails at once.
    await upsertSubscription(pool, { name: 'mx-waiting', topic: 'mx.waiting', target: handler('mx-nobody') });
    await upsertSubscription(pool, { name: 'mx-failing', topic: 'mx.failing', target: handler('mx-failing'), retrySchedule: [] });
    await upsertSubscription(pool, { name: 'mx-fine', topic: 'mx.fine', target: handler('mx-fine') });
    t.engine.consumers.register('mx-failing', { async handle() { throw new Error('refused by consumer'); } });
    t.engine.consumers.register('mx-fine', { async handle() { /* accepts */ } });
    expect(await metric('seigo_queue_depth', 'mx-waiting')).toBe(0);
    expect(await metric('seigo_dead_deliveries', 'mx-failing')).toBe(0);

    await withTx(pool, (tx) => publishMany(tx, [
      ...Array.from({ length: 3 }, () => ({ topic: 'mx.waiting', payload: {} })),
      ...Array.from({ length: 2 }, () => ({ topic: 'mx.failing', payload: {} })),
      ...Array.from({ length: 4 }, () => ({ topic: 'mx.fine', payload: {} })),
    ]));
    expect(await metric('seigo_queue_depth', 'mx-failing')).toBe(2);
    while (await t.engine.handlerDeliveries.runOnce(100) > 0);

    expect(await metric('seigo_queue_depth', 'mx-waiting')).toBe(3);
    expect(await metric('seigo_dead_deliveries', 'mx-waiting')).toBe(0);
    expect(await metric('seigo_queue_depth', 'mx-failing')).toBe(0);
    expect(await metric('seigo_dead_deliveries', 'mx-failing')).toBe(2);
    expect(await metric('seigo_queue_depth', 'mx-fine')).toBe(0);
    expect(await metric('seigo_dead_deliveries', 'mx-fine')).toBe(0);

    // A redriven dead delivery leaves the DLQ and is back in the queue.
    const one = await pool.query<{ id: string }>(`SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = 'mx-failing' LIMIT 1`);
    expect(await redrive(pool, { ids: [one.rows[0]!.id] })).toBe(1);
    expect(await metric('seigo_dead_deliveries', 'mx-failing')).toBe(1);
    expect(await metric('seigo_queue_depth', 'mx-failing')).toBe(1);
  });
});

describe('subscription changes', () => {
  it('a subscription moved from a handler to an HTTP target (and back) takes its waiting deliveries along', async () => {
    const pool = t.tdb.db.pool;
    const rx = await startReceiver(() => ({ status: 503 }));
    try {
      // Handler → HTTP: a delivery waiting for a consumer that never came goes to the new URL.
      await upsertSubscription(pool, { name: 'retarget', topic: 'rt.topic', target: handler('rt-nobody'), retrySchedule: [] });
      await withTx(pool, (tx) => publish(tx, 'rt.topic', { n: 1 }));
      await upsertSubscription(pool, { name: 'retarget', topic: 'rt.topic', target: { type: 'http', url: rx.url, timeoutMs: 5_000 }, retrySchedule: [] });
      await t.engine.httpDeliveries.runOnce(100);
      expect(rx.requests).toHaveLength(1);
      const first = await pool.query(`SELECT d.status, d.last_status_code FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = 'retarget'`);
      expect(first.rows).toEqual([{ status: 'dead', last_status_code: 503 }]);

      // HTTP → handler: the dead delivery, redriven, goes to the consumer.
      const seen: unknown[] = [];
      t.engine.consumers.register('rt-consumer', { async handle(_ctx, m) { seen.push(m.payload); } });
      await upsertSubscription(pool, { name: 'retarget', topic: 'rt.topic', target: handler('rt-consumer'), retrySchedule: [] });
      expect(await redrive(pool, { subscription: 'retarget' })).toBe(1);
      await t.engine.httpDeliveries.runOnce(100);
      while (await t.engine.handlerDeliveries.runOnce(100) > 0);
      expect(rx.requests).toHaveLength(1);
      expect(seen).toEqual([{ n: 1 }]);
      const end = await pool.query(`SELECT d.status FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = 'retarget'`);
      expect(end.rows).toEqual([{ status: 'delivered' }]);
    } finally {
      await rx.close();
    }
  });

  it('a config subscription removed (paused) and then added back is active again; one an operator paused stays paused', async () => {
    const pool = t.tdb.db.pool;
    const cfg = (name: string) => ({ name, topic: 'cfg.topic', filter: {}, target: handler('cfg') });
    await syncConfigSubscriptions(pool, [cfg('cfg-a'), cfg('cfg-b')]);
    await setSubscriptionStatus(pool, 'cfg-b', 'paused', 'paused by an operator');
    await syncConfigSubscriptions(pool, []);
    const status = async () => Object.fromEntries((await pool.query<{ name: string; status: string; status_reason: string | null }>(
      `SELECT name, status, status_reason FROM subscriptions WHERE name LIKE 'cfg-%' ORDER BY name`)).rows.map((r) => [r.name, [r.status, r.status_reason]]));
    expect(await status()).toEqual({ 'cfg-a': ['paused', 'removed from configuration'], 'cfg-b': ['paused', 'paused by an operator'] });
    await syncConfigSubscriptions(pool, [cfg('cfg-a'), cfg('cfg-b')]);
    expect(await status()).toEqual({ 'cfg-a': ['active', null], 'cfg-b': ['paused', 'paused by an operator'] });
  });
});

describe('payload encoding', () => {
  it('carries bigint money amounts as decimal strings, exactly', async () => {
    const t2 = await startTestEngine();
    try {
      const id = await withTx(t2.tdb.db.pool, (tx) => publish(tx, 'money.moved', { amount: 9_007_199_254_740_993n, currency: 'JPY' }));
      const r = await t2.tdb.db.pool.query('SELECT payload FROM outbox_messages WHERE id = $1', [id]);
      expect(r.rows[0].payload).toEqual({ amount: '9007199254740993', currency: 'JPY' });
    } finally {
      await t2.close();
    }
  });
});
