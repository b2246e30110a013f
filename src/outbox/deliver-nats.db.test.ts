// NATS JetStream subscribers on a real nats-server (JetStream, temporary store, loopback): the
// stream's acknowledgement, dedupe by Nats-Msg-Id, a server that is down, a stream that is missing,
// a publish the server's permissions refuse, the DLQ and redrive.
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { natsAvailable, startNatsServer, type NatsServer } from '../../test/helpers/nats.ts';
import { publish, publishMany, upsertSubscription } from './index.ts';

interface DeliveryRow { id: string; message_id: string; status: string; attempts: number; last_error: string | null; redrives: number }

async function deliveriesOf(t: TestEngine, subscription: string): Promise<DeliveryRow[]> {
  const r = await t.tdb.db.pool.query<DeliveryRow>(
    `SELECT d.id, d.message_id, d.status, d.attempts, d.last_error, d.redrives
     FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id WHERE s.name = $1 ORDER BY d.message_id`, [subscription]);
  return r.rows;
}

async function drain(t: TestEngine): Promise<void> {
  while (await t.engine.natsDeliveries.runOnce(100) > 0);
}

// seigo connects as `seigo`, which may not publish to `secret.>`; the test manages streams as `admin`.
const ACCOUNTS = `
accounts {
  APP {
    jetstream: enabled
    users: [
      { user: admin, password: admin-pw }
      { user: seigo, password: seigo-pw, permissions: { publish: { deny: ["secret.>"] }, subscribe: ">" } }
    ]
  }
}`;

describe.skipIf(!natsAvailable())('NATS JetStream delivery', () => {
  let nats: NatsServer;
  let t: TestEngine;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  const stored = async (stream: string) => (await jsm.streams.info(stream)).state.messages;

  beforeAll(async () => {
    nats = await startNatsServer({ config: ACCOUNTS });
    nc = await connect({ servers: nats.url, user: 'admin', pass: 'admin-pw', reconnectTimeWait: 100, maxReconnectAttempts: -1 });
    jsm = await jetstreamManager(nc);
    t = await startTestEngine({ config: { nats: { servers: [nats.url], user: 'seigo', pass: 'seigo-pw' } } });
  });
  afterAll(async () => {
    await t?.close();
    await nc?.close();
    await nats?.close();
  });

  it('publishes the envelope with Nats-Msg-Id = the message id; a publish repeated after a lost lease is stored once', async () => {
    await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'] });
    await upsertSubscription(t.tdb.db.pool, { name: 'orders', topic: 'order.*', target: { type: 'nats', subject: 'orders.events', stream: 'ORDERS' } });
    const id = await withTx(t.tdb.db.pool, (tx) => publish(tx, 'order.paid', { orderId: 'o1', amount: 1200n }, { key: 'o1' }));
    expect(await t.engine.natsDeliveries.runOnce(100)).toBe(1);
    const [d] = await deliveriesOf(t, 'orders');
    expect(d).toMatchObject({ message_id: id, status: 'delivered', attempts: 1, last_error: null });
    expect(await stored('ORDERS')).toBe(1);
    const m = await jsm.streams.getMessage('ORDERS', { seq: 1 });
    expect(m!.subject).toBe('orders.events');
    expect(m!.header.get('Nats-Msg-Id')).toBe(id);
    expect(m!.header.get('Seigo-Topic')).toBe('order.paid');
    expect(m!.header.get('Seigo-Delivery-Id')).toBe(d!.id);
    expect(m!.header.get('Seigo-Key')).toBe('o1');
    expect(m!.json()).toMatchObject({ type: 'order.paid', data: { orderId: 'o1', amount: '1200' } });

    // A worker that published and died before recording it: its lease runs out, another publishes again.
    await t.tdb.db.pool.query(`UPDATE deliveries SET status = 'sending', locked_until = now() - interval '1 second' WHERE id = $1`, [d!.id]);
    expect(await t.engine.natsDeliveries.runOnce(100)).toBe(1);
    expect((await deliveriesOf(t, 'orders'))[0]).toMatchObject({ status: 'delivered', attempts: 2 });
    expect(await stored('ORDERS')).toBe(1);
  });

  it('a batch published by a worker that crashed before its commit is published again and stored once', async () => {
    const pool = t.tdb.db.pool;
    await jsm.streams.add({ name: 'REPLAYED', subjects: ['replayed.>'] });
    await upsertSubscription(pool, { name: 'replayed', topic: 'replay.x', target: { type: 'nats', subject: 'replayed.x', stream: 'REPLAYED' } });
    const id = await withTx(pool, (tx) => publish(tx, 'replay.x', { n: 1 }));
    // The crashed worker's publish reached the stream; its transaction (the row lock, the outcome) rolled back.
    await jetstream(nc).publish('replayed.x', '{}', { msgID: id, expect: { streamName: 'REPLAYED' } });
    await drain(t);
    expect((await deliveriesOf(t, 'replayed'))[0]).toMatchObject({ message_id: id, status: 'delivered', attempts: 1, last_error: null });
    expect(await stored('REPLAYED')).toBe(1);
  });

  it('a service reads the stream with a durable consumer (the README\'s example), resuming where it acked', async () => {
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'order.shipped', { orderId: 'o1' }));
    await drain(t);
    await jsm.consumers.add('ORDERS', { durable_name: 'orders-service', ack_policy: AckPolicy.Explicit, filter_subject: 'orders.events' });
    const read = async () => {
      const c = await jetstream(nc).consumers.get('ORDERS', 'orders-service');
      const seen: { id: string | undefined; type: string }[] = [];
      for await (const m of await c.fetch({ max_messages: 10, expires: 1_000 })) {
        seen.push({ id: m.headers?.get('Seigo-Message-Id'), type: m.json<{ type: string }>().type });
        m.ack();
      }
      return seen;
    };
    expect((await read()).map((m) => m.type)).toEqual(['order.paid', 'order.shipped']);
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'order.delivered', { orderId: 'o1' }));
    await drain(t);
    expect((await read()).map((m) => m.type)).toEqual(['order.delivered']);
  });

  it('a stream that is missing, or not the one expected, leaves the message retrying with the cause; once it exists it is delivered', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'nostream', topic: 'ship.sent', target: { type: 'nats', subject: 'ship.sent', stream: 'SHIPPING' }, retrySchedule: [0, 0, 0, 0] });
    await withTx(pool, (tx) => publish(tx, 'ship.sent', { n: 1 }));
    await t.engine.natsDeliveries.runOnce(100);
    expect((await deliveriesOf(t, 'nostream'))[0]).toMatchObject({ status: 'pending', attempts: 1 });
    expect((await deliveriesOf(t, 'nostream'))[0]!.last_error).toMatch(/no JetStream stream captures subject "ship.sent" \(expected stream "SHIPPING"\)/);
    // Another stream captures the subject: still refused, since it is not the stream the subscription names.
    await jsm.streams.add({ name: 'WRONG', subjects: ['ship.>'] });
    await t.engine.natsDeliveries.runOnce(100);
    expect((await deliveriesOf(t, 'nostream'))[0]).toMatchObject({ status: 'pending', attempts: 2 });
    expect((await deliveriesOf(t, 'nostream'))[0]!.last_error).toMatch(/JetStream refused .*expected stream does not match/);
    expect(await stored('WRONG')).toBe(0);
    await jsm.streams.delete('WRONG');
    await jsm.streams.add({ name: 'SHIPPING', subjects: ['ship.>'] });
    await drain(t);
    expect((await deliveriesOf(t, 'nostream'))[0]).toMatchObject({ status: 'delivered', attempts: 3, last_error: null });
    expect(await stored('SHIPPING')).toBe(1);
  });

  it('a publish the server\'s permissions refuse retries with the violation as its cause', async () => {
    await jsm.streams.add({ name: 'SECRET', subjects: ['secret.>'] });
    await upsertSubscription(t.tdb.db.pool, { name: 'denied', topic: 'secret.thing', target: { type: 'nats', subject: 'secret.thing', stream: 'SECRET', timeoutMs: 2_000 } });
    await withTx(t.tdb.db.pool, (tx) => publish(tx, 'secret.thing', {}));
    await t.engine.natsDeliveries.runOnce(100);
    const [d] = await deliveriesOf(t, 'denied');
    expect(d).toMatchObject({ status: 'pending', attempts: 1 });
    expect(d!.last_error).toMatch(/Permissions Violation for Publish to "secret.thing"/);
    expect(await stored('SECRET')).toBe(0);
  });

  it('ends dead after its schedule with the last cause; a redrive over the admin API delivers it once', async () => {
    const pool = t.tdb.db.pool;
    await upsertSubscription(pool, { name: 'late', topic: 'late.x', target: { type: 'nats', subject: 'late.x', stream: 'LATE' }, retrySchedule: [0, 0] });
    await withTx(pool, (tx) => publish(tx, 'late.x', { n: 1 }));
    await drain(t);
    const [dead] = await deliveriesOf(t, 'late');
    expect(dead).toMatchObject({ status: 'dead', attempts: 3 });
    expect(dead!.last_error).toMatch(/no JetStream stream captures subject "late.x"/);
    await jsm.streams.add({ name: 'LATE', subjects: ['late.>'] });
    expect(await admin(t.url, 'POST', '/deliveries/redrive', { subscription: 'late' })).toEqual({ status: 202, json: { redriven: 1 } });
    await drain(t);
    expect((await deliveriesOf(t, 'late'))[0]).toMatchObject({ status: 'delivered', attempts: 1, redrives: 1, last_error: null });
    expect(await stored('LATE')).toBe(1);
  });

  it('a server that goes down leaves messages retrying with the cause; when it is back each is stored once', async () => {
    const pool = t.tdb.db.pool;
    await jsm.streams.add({ name: 'OUTAGE', subjects: ['outage.>'] });
    await upsertSubscription(pool, { name: 'outage', topic: 'outage.x', target: { type: 'nats', subject: 'outage.x', stream: 'OUTAGE', timeoutMs: 1_000 }, retrySchedule: Array(50).fill(0) });
    await withTx(pool, (tx) => publish(tx, 'outage.x', { n: 0 }));
    await drain(t);
    await nats.stop();
    await withTx(pool, (tx) => publishMany(tx, [1, 2, 3].map((n) => ({ topic: 'outage.x', payload: { n } }))));
    await t.engine.natsDeliveries.runOnce(100);
    const during = await deliveriesOf(t, 'outage');
    expect(during.map((d) => d.status)).toEqual(['delivered', 'pending', 'pending', 'pending']);
    // Whether the client has noticed the loss yet or the ack timed out, the cause says so.
    for (const d of during.slice(1)) expect(d.last_error).toMatch(/NATS server unreachable|TimeoutError/);
    await nats.start();
    const after = await eventually(async () => {
      await t.engine.natsDeliveries.runOnce(100);
      const rows = await deliveriesOf(t, 'outage');
      return rows.every((r) => r.status === 'delivered') && rows;
    });
    expect(after).toHaveLength(4);
    expect(await eventually(async () => (await stored('OUTAGE').catch(() => 0)) || false)).toBe(4);
  });
});

describe.skipIf(!natsAvailable())('NATS JetStream delivery without a reachable server', () => {
  it('never connected (nothing listens): retrying, with the servers and the reason in the cause', async () => {
    const nats = await startNatsServer();
    const url = nats.url;
    await nats.close();
    const t = await startTestEngine({ config: { nats: { servers: [url], connectTimeoutMs: 1_000 } } });
    try {
      await upsertSubscription(t.tdb.db.pool, { name: 'down', topic: 'd.x', target: { type: 'nats', subject: 'd.x', stream: 'D' } });
      await withTx(t.tdb.db.pool, (tx) => publish(tx, 'd.x', {}));
      await t.engine.natsDeliveries.runOnce(100);
      const [d] = await deliveriesOf(t, 'down');
      expect(d).toMatchObject({ status: 'pending', attempts: 1 });
      expect(d!.last_error).toBe(`cannot connect to NATS (${url}): ConnectionError: connection refused`);
    } finally {
      await t.close();
    }
  });

  it('no NATS configured: the engine runs, and a nats subscription\'s messages wait with that cause', async () => {
    const t = await startTestEngine();
    try {
      expect(await t.engine.natsDeliveries.runOnce(100)).toBe(0);
      await upsertSubscription(t.tdb.db.pool, { name: 'unconfigured', topic: 'u.x', target: { type: 'nats', subject: 'u.x', stream: 'U' } });
      await withTx(t.tdb.db.pool, (tx) => publish(tx, 'u.x', {}));
      await t.engine.natsDeliveries.runOnce(100);
      expect((await deliveriesOf(t, 'unconfigured'))[0]).toMatchObject({
        status: 'pending', attempts: 1, last_error: 'a subscription has a nats target but no NATS servers are configured (nats.servers)',
      });
    } finally {
      await t.close();
    }
  });
});
