import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { uuidv7 } from '../../kernel/ids.ts';
import type { CallOutcome, HistoryRow, OperationRequest, ProviderAdapter } from '../types.ts';
import { computeSignature, signatureHeader, verifySignature } from './signature.ts';
import { paymentIntentSchema } from './api.ts';
import { normalizeEvent, outcomeOf, stripeAdapter, StripeSimulator, type StripeSimulatorOptions } from './index.ts';

const SECRET = 'whsec_test_4eC39HqLyjWDarjtT1zdp7dc';
const SK = 'sk_test_simulator';
const T = 1_700_000_000;
const at = (s: number) => new Date(s * 1000);

describe('Stripe-Signature', () => {
  const body = '{"id":"evt_1","object":"event"}';
  // Computed here independently of the module: HMAC-SHA256 keyed with the whole secret string.
  const expected = createHmac('sha256', SECRET).update(`${T}.${body}`).digest('hex');

  it('matches an HMAC computed independently over "<t>.<body>" with the whole whsec_ string as key', () => {
    expect(computeSignature(SECRET, T, body)).toBe(expected);
    expect(signatureHeader(SECRET, body, at(T))).toBe(`t=${T},v1=${expected}`);
    expect(verifySignature([SECRET], `t=${T},v1=${expected}`, Buffer.from(body), at(T))).toEqual({ ok: true, timestamp: T });
  });

  it('accepts any matching v1 among several, and any of several secrets (rotation); ignores v0', () => {
    const header = `t=${T},v0=${expected},v1=${'0'.repeat(64)},v1=${expected}`;
    expect(verifySignature(['whsec_old', SECRET], header, body, at(T)).ok).toBe(true);
    expect(verifySignature([SECRET], `t=${T},v0=${expected}`, body, at(T))).toEqual({ ok: false, reason: 'bad_header' });
    // A header signed with both secrets during a rotation verifies with either one.
    const both = signatureHeader(['whsec_new', SECRET], body, at(T));
    expect(verifySignature(['whsec_new'], both, body, at(T)).ok).toBe(true);
    expect(verifySignature([SECRET], both, body, at(T)).ok).toBe(true);
  });

  it('rejects a tampered body, timestamp or secret', () => {
    const header = `t=${T},v1=${expected}`;
    expect(verifySignature([SECRET], header, body.replace('evt_1', 'evt_2'), at(T))).toEqual({ ok: false, reason: 'no_matching_signature' });
    expect(verifySignature([SECRET], `t=${T + 1},v1=${expected}`, body, at(T))).toEqual({ ok: false, reason: 'no_matching_signature' });
    expect(verifySignature(['whsec_other'], header, body, at(T))).toEqual({ ok: false, reason: 'no_matching_signature' });
    // Without the prefix the key is a different one.
    const unprefixed = createHmac('sha256', SECRET.slice('whsec_'.length)).update(`${T}.${body}`).digest('hex');
    expect(verifySignature([SECRET], `t=${T},v1=${unprefixed}`, body, at(T)).ok).toBe(false);
  });

  it('rejects timestamps more than the tolerance away either way, accepts within', () => {
    const header = `t=${T},v1=${expected}`;
    expect(verifySignature([SECRET], header, body, at(T + 301))).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(verifySignature([SECRET], header, body, at(T - 301))).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(verifySignature([SECRET], header, body, at(T + 299)).ok).toBe(true);
    expect(verifySignature([SECRET], header, body, at(T + 20), 10)).toEqual({ ok: false, reason: 'stale_timestamp' });
  });

  it('rejects missing and malformed headers', () => {
    expect(verifySignature([SECRET], undefined, body, at(T))).toEqual({ ok: false, reason: 'missing_header' });
    expect(verifySignature([SECRET], '', body, at(T))).toEqual({ ok: false, reason: 'missing_header' });
    expect(verifySignature([SECRET], `v1=${expected}`, body, at(T))).toEqual({ ok: false, reason: 'bad_header' });
    expect(verifySignature([SECRET], `t=abc,v1=${expected}`, body, at(T))).toEqual({ ok: false, reason: 'bad_header' });
    expect(verifySignature([SECRET], `t=${T},v1=${expected.slice(0, 32)}`, body, at(T)).ok).toBe(false);
  });

  it('never verifies an arbitrary header (property)', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (header, b) => {
      const r = verifySignature([SECRET], header, b, at(T));
      return !r.ok || header.includes(computeSignature(SECRET, T, b));
    }));
  });
});

const piObject = (over: Record<string, unknown> = {}) => ({
  id: 'pi_123', object: 'payment_intent', amount: 1999, currency: 'jpy', status: 'succeeded', created: T,
  metadata: { seigo_operation_id: 'op_1' }, last_payment_error: null, ...over,
});
const eventOf = (type: string, object: Record<string, unknown>) => ({
  id: 'evt_1', object: 'event', type, created: T, livemode: false, api_version: '2024-06-20', data: { object },
});

describe('normalize', () => {
  const adapter = stripeAdapter('stripe', { secretKey: SK, webhookSecrets: [SECRET] });
  const normalize = (e: unknown) => adapter.normalize({ headers: {}, body: Buffer.from(JSON.stringify(e)) });

  it('maps payment_intent.succeeded to payment.succeeded with amount as a string and upper-case currency', () => {
    expect(normalize(eventOf('payment_intent.succeeded', piObject()))).toEqual({ ok: true, value: [{
      type: 'payment.succeeded', entityType: 'payment_intent', entityId: 'pi_123', occurredAt: at(T).toISOString(),
      data: { provider_payment_id: 'pi_123', amount: '1999', currency: 'JPY', status: 'succeeded', metadata: { seigo_operation_id: 'op_1' } },
    }] });
  });

  it('maps payment_failed (with its decline code), canceled and charge.refunded', () => {
    const failed = normalize(eventOf('payment_intent.payment_failed', piObject({ status: 'requires_payment_method', last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds' } })));
    expect(failed).toMatchObject({ ok: true, value: [{ type: 'payment.failed', entityId: 'pi_123', data: { status: 'requires_payment_method', error_code: 'insufficient_funds' } }] });
    expect(normalize(eventOf('payment_intent.canceled', piObject({ status: 'canceled' })))).toMatchObject({ ok: true, value: [{ type: 'payment.canceled', entityId: 'pi_123' }] });
    const refund = normalize(eventOf('charge.refunded', { id: 'ch_1', object: 'charge', amount: 1999, amount_refunded: 500, currency: 'jpy', status: 'succeeded', refunded: false, payment_intent: 'pi_123', metadata: {} }));
    expect(refund).toMatchObject({ ok: true, value: [{ type: 'payment.refunded', entityType: 'payment_intent', entityId: 'pi_123', data: { provider_charge_id: 'ch_1', amount: '500', currency: 'JPY', status: 'partially_refunded' } }] });
  });

  it('only succeeded is a success; processing and requires_action are not final, so the client throws and inquiry says unknown', () => {
    const pi = (status: string) => paymentIntentSchema.parse(piObject({ status }));
    expect(outcomeOf(pi('succeeded')).status).toBe('succeeded');
    expect(outcomeOf(pi('canceled'))).toMatchObject({ status: 'failed', code: 'canceled' });
    for (const s of ['processing', 'requires_action', 'requires_confirmation', 'requires_capture']) expect(outcomeOf(pi(s)).status).toBe('unknown');
  });

  it('passes other event types through as stripe.<type> with their object', () => {
    const customer = { id: 'cus_1', object: 'customer', email: 'a@example.com' };
    expect(normalizeEvent(eventOf('customer.created', customer) as never)).toEqual({ ok: true, value: [{
      type: 'stripe.customer.created', entityType: 'customer', entityId: 'cus_1', occurredAt: at(T).toISOString(), data: customer,
    }] });
  });

  it('refuses bodies that are not Stripe events, or mapped events whose object is malformed', () => {
    expect(normalize({ hello: 1 }).ok).toBe(false);
    expect(normalize(eventOf('payment_intent.succeeded', { id: 'pi_1', object: 'charge' })).ok).toBe(false);
  });

  it('verify checks the signature, extracts the event id and refuses unsigned or unparseable bodies', () => {
    const now = new Date();
    const body = Buffer.from(JSON.stringify(eventOf('payment_intent.succeeded', piObject())));
    const headers = { 'stripe-signature': signatureHeader(SECRET, body, now), 'content-type': 'application/json', 'x-other': 'dropped' };
    expect(adapter.verify({ headers, rawBody: body, receivedAt: now })).toEqual({ ok: true, value: { eventId: 'evt_1', headers: { 'stripe-signature': headers['stripe-signature'], 'content-type': 'application/json' } } });
    expect(adapter.eventId({ headers, rawBody: body, receivedAt: now })).toBe('evt_1');
    expect(adapter.verify({ headers: {}, rawBody: body, receivedAt: now })).toMatchObject({ ok: false, error: { code: 'invalid_signature' } });
    const junk = Buffer.from('not json');
    expect(adapter.verify({ headers: { 'stripe-signature': signatureHeader(SECRET, junk, now) }, rawBody: junk, receivedAt: now })).toMatchObject({ ok: false, error: { code: 'unparseable' } });
  });
});

describe('against the simulator', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  async function setup(simOpts: StripeSimulatorOptions = {}, adapterOpts: { searchLagSeconds?: number } = {}) {
    const sim = new StripeSimulator({ secretKey: SK, ...simOpts });
    const { url } = await sim.start();
    cleanup.push(() => sim.stop());
    const adapter = stripeAdapter('stripe', { secretKey: SK, webhookSecrets: [SECRET], apiBase: url, searchLagSeconds: 0, ...adapterOpts });
    return { sim, adapter, url };
  }

  const charge = (pm = 'pm_card_visa', over: Partial<OperationRequest> = {}): OperationRequest => {
    const id = uuidv7();
    return { id, kind: 'charge', idempotencyKey: `op-${id}`, request: { amount: 1500, currency: 'JPY', payment_method: pm }, ...over };
  };
  const signal = () => AbortSignal.timeout(5_000);
  const client = (a: ProviderAdapter) => a.client!.bind(a);
  const inquire = (a: ProviderAdapter) => a.inquire!.bind(a);
  const paymentIdOf = (out: CallOutcome): string => {
    if (out.status !== 'succeeded' || typeof out.response.id !== 'string') throw new Error(`not a success: ${JSON.stringify(out)}`);
    return out.response.id;
  };

  it('charges: a confirmed PaymentIntent that succeeded, tagged with the operation id', async () => {
    const { sim, adapter } = await setup();
    const op = charge();
    const out = await client(adapter)(op, signal());
    expect(out).toMatchObject({ status: 'succeeded', response: { object: 'payment_intent', status: 'succeeded', amount: 1500, currency: 'jpy', metadata: { seigo_operation_id: op.id } } });
    expect(sim.paymentIntents()).toHaveLength(1);
    expect(await inquire(adapter)(op, signal())).toMatchObject({ status: 'succeeded', response: { id: paymentIdOf(out) } });
  });

  it('a decline is failed with the decline code, and inquiry agrees', async () => {
    const { adapter } = await setup();
    const op = charge('pm_card_insufficient_funds');
    expect(await client(adapter)(op, signal())).toMatchObject({ status: 'failed', code: 'insufficient_funds', message: 'Your card has insufficient funds.', retryable: false });
    expect(await client(adapter)(charge('pm_card_chargeDeclined'), signal())).toMatchObject({ status: 'failed', code: 'generic_decline' });
    expect(await inquire(adapter)(op, signal())).toMatchObject({ status: 'failed', code: 'insufficient_funds' });
  });

  it('other 4xx answers are failed; a wrong API key too', async () => {
    const { adapter, url } = await setup();
    expect(await client(adapter)(charge('pm_does_not_exist'), signal())).toMatchObject({ status: 'failed', code: 'resource_missing' });
    const wrongKey = stripeAdapter('stripe', { secretKey: 'sk_wrong', webhookSecrets: [SECRET], apiBase: url });
    expect(await client(wrongKey)(charge(), signal())).toMatchObject({ status: 'failed', code: 'invalid_request_error' });
    expect(await client(adapter)({ ...charge(), request: { amount: -1, currency: 'JPY', payment_method: 'pm_card_visa' } }, signal())).toMatchObject({ status: 'failed', code: 'invalid_request' });
  });

  it('the same idempotency key twice gives one PaymentIntent and the same answer; different params under it throw', async () => {
    const { sim, adapter } = await setup();
    const op = charge();
    const first = await client(adapter)(op, signal());
    const second = await client(adapter)(op, signal());
    expect(second).toEqual(first);
    expect(sim.paymentIntents()).toHaveLength(1);
    expect(sim.counters.idempotentReplays).toBe(1);
    await expect(client(adapter)({ ...op, request: { ...op.request, amount: 1600 } }, signal())).rejects.toMatchObject({ code: 'stripe_idempotency_conflict' });
    expect(sim.paymentIntents()).toHaveLength(1);
  });

  it('timeoutAfterSuccess: the client throws when its signal fires, and a later inquiry finds the charge succeeded', async () => {
    const { sim, adapter } = await setup({ faults: { timeoutAfterSuccess: 1 } });
    const op = charge();
    await expect(client(adapter)(op, AbortSignal.timeout(300))).rejects.toMatchObject({ name: expect.stringMatching(/TimeoutError|AbortError/) });
    expect(sim.counters.timeoutsAfterSuccess).toBe(1);
    expect(await inquire(adapter)(op, signal())).toMatchObject({ status: 'succeeded', response: { metadata: { seigo_operation_id: op.id } } });
    // A retry under the same key replays the saved result rather than charging again.
    sim.setFaults({ timeoutAfterSuccess: 0 });
    expect(await client(adapter)(op, signal())).toMatchObject({ status: 'succeeded' });
    expect(sim.paymentIntents()).toHaveLength(1);
  });

  it('a 500 throws (the outcome is unknown) and creates nothing', async () => {
    const { sim, adapter } = await setup({ faults: { error500: 1 } });
    await expect(client(adapter)(charge(), signal())).rejects.toMatchObject({ code: 'stripe_unavailable', retryable: true });
    expect(sim.paymentIntents()).toHaveLength(0);
  });

  it('inquiry: not_found when nothing carries the operation id; unknown while search may still lag', async () => {
    const { adapter, url } = await setup();
    expect(await inquire(adapter)(charge(), signal())).toEqual({ status: 'not_found' });
    const lagging = stripeAdapter('stripe', { secretKey: SK, webhookSecrets: [SECRET], apiBase: url });
    expect(await inquire(lagging)(charge(), signal())).toMatchObject({ status: 'unknown' });
    // A non-UUIDv7 id has no age we can read: never declared not_found while search may lag.
    expect(await inquire(lagging)(charge('pm_card_visa', { id: randomUUID() }), signal())).toMatchObject({ status: 'unknown' });
  });

  it('inquiry retrieves by provider_payment_id when the request recorded one', async () => {
    const { adapter } = await setup();
    const op = charge();
    const out = await client(adapter)(op, signal());
    const id = paymentIdOf(out);
    expect(await inquire(adapter)({ ...op, request: { ...op.request, provider_payment_id: id } }, signal())).toMatchObject({ status: 'succeeded', response: { id } });
    expect(await inquire(adapter)({ ...op, request: { ...op.request, provider_payment_id: 'pi_missing' } }, signal())).toEqual({ status: 'not_found' });
  });

  it('history pages through more than 100 PaymentIntents inside the window, and nothing outside it', async () => {
    let clock = T;
    const { adapter } = await setup({ now: () => at(clock) });
    await client(adapter)(charge(), signal()); // at T: before the window
    clock = T + 10;
    for (let i = 0; i < 230; i++) await client(adapter)(charge(i % 10 === 0 ? 'pm_card_chargeDeclined' : 'pm_card_visa'), signal());
    clock = T + 20;
    await client(adapter)(charge(), signal()); // at the window's end: excluded (half-open)
    const rows: HistoryRow[] = [];
    for await (const r of adapter.history!(at(T + 5), at(T + 20))) rows.push(r);
    expect(rows).toHaveLength(230);
    expect(new Set(rows.map((r) => r.externalId)).size).toBe(230);
    expect(rows.filter((r) => r.status === 'succeeded')).toHaveLength(207);
    expect(rows[0]).toMatchObject({ occurredAt: at(T + 10).toISOString(), amount: 1500n, currency: 'JPY' });
  });

  describe('webhooks', () => {
    interface Received { id: string; type: string; verified: boolean }
    async function receiver(adapter: ProviderAdapter, failFirst = 0): Promise<{ url: string; received: Received[] }> {
      const received: Received[] = [];
      let failures = 0;
      const server: Server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          if (failures < failFirst) { failures++; res.writeHead(503).end(); return; }
          const rawBody = Buffer.concat(chunks);
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
          const v = adapter.verify({ headers, rawBody, receivedAt: new Date() });
          const body = JSON.parse(rawBody.toString('utf8')) as { id: string; type: string };
          received.push({ id: body.id, type: body.type, verified: v.ok && v.value.eventId === body.id });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
      return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
    }

    it('events arrive signed, verify with the adapter, and normalize; a failing endpoint gets retries', async () => {
      const verifier = stripeAdapter('stripe', { secretKey: SK, webhookSecrets: ['whsec_retired', SECRET], apiBase: 'http://unused' });
      const rx = await receiver(verifier, 2);
      const { sim, adapter } = await setup({ webhookUrl: rx.url, webhookSecret: SECRET, webhookRetryDelayMs: 10 });
      await client(adapter)(charge(), signal());
      await client(adapter)(charge('pm_card_chargeDeclined'), signal());
      await sim.idle();
      expect(rx.received.map((r) => r.type).sort()).toEqual(['payment_intent.payment_failed', 'payment_intent.succeeded']);
      expect(rx.received.every((r) => r.verified)).toBe(true);
      expect(sim.counters.webhookAttempts).toBe(4);
    });

    async function runWithFaults(seed: number) {
      const verifier = stripeAdapter('stripe', { secretKey: SK, webhookSecrets: [SECRET], apiBase: 'http://unused' });
      const rx = await receiver(verifier);
      const { sim, adapter } = await setup({ seed, webhookUrl: rx.url, webhookSecret: SECRET, faults: { duplicateWebhook: 0.2, dropWebhook: 0.1, reorderWebhooks: 0.1, reorderDelayMs: 20 } });
      const n = 200;
      for (let i = 0; i < n; i++) await client(adapter)(charge(), signal());
      await sim.idle();
      return { sim, rx, n };
    }

    it('duplicate and dropped webhooks happen at the seeded rates, and the same seed repeats them', async () => {
      const { sim, rx, n } = await runWithFaults(42);
      const { webhooksDropped: dropped, webhooksDuplicated: duplicated } = sim.counters;
      // Binomial(200, 0.1) and (~180, 0.2): far outside these bounds means the rates are not applied.
      expect(dropped).toBeGreaterThanOrEqual(6);
      expect(dropped).toBeLessThanOrEqual(36);
      expect(duplicated).toBeGreaterThanOrEqual(18);
      expect(duplicated).toBeLessThanOrEqual(60);
      expect(rx.received).toHaveLength(n - dropped + duplicated);
      expect(new Set(rx.received.map((r) => r.id)).size).toBe(n - dropped);
      expect(rx.received.every((r) => r.verified)).toBe(true);
      const again = await runWithFaults(42);
      expect({ d: again.sim.counters.webhooksDropped, u: again.sim.counters.webhooksDuplicated, r: again.sim.counters.webhooksReordered })
        .toEqual({ d: dropped, u: duplicated, r: sim.counters.webhooksReordered });
    });
  });
});
