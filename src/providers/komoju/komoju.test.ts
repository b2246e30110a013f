import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CanonicalEvent, OperationRequest, ProviderAdapter } from '../types.ts';
import { KomojuSimulator, PRELIMINARY_CANCELLED_EVENT, PRELIMINARY_PAID_EVENT, komojuAdapter, sign } from './index.ts';

const SECRET_KEY = 'sk_test_seigo';
const WEBHOOK_SECRET = 'komoju-webhook-token';

// ---- a webhook receiver on loopback that answers like seigo's intake route would ----
interface Received { headers: Record<string, string | undefined>; body: Buffer }
async function receiver(failFirst = 0) {
  const received: Received[] = [];
  let failures = failFirst;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failures > 0) {
        failures--;
        res.writeHead(503).end();
        return;
      }
      const headers: Record<string, string | undefined> = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      received.push({ headers, body: Buffer.concat(chunks) });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/komoju`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let opSeq = 0;
const op = (kind: string, request: Record<string, unknown>, idempotencyKey = `idem-${++opSeq}`): OperationRequest =>
  ({ id: `op-${opSeq}`, kind, idempotencyKey, request });
const konbini = (amount = 1500) => ({ method: 'konbini', amount: String(amount), currency: 'JPY', email: 'taro@example.jp', store: 'lawson' });
const signal = () => AbortSignal.timeout(5000);

function canonical(adapter: ProviderAdapter, r: Received): CanonicalEvent[] {
  const v = adapter.verify({ headers: r.headers, rawBody: r.body, receivedAt: new Date() });
  if (!v.ok) throw new Error(`webhook did not verify: ${v.error.message}`);
  expect(v.value.eventId).toBe(adapter.eventId({ headers: r.headers, rawBody: r.body, receivedAt: new Date() }));
  const n = adapter.normalize({ headers: v.value.headers, body: r.body });
  if (!n.ok) throw new Error(n.error);
  return n.value;
}

// ---- normalize: every KOMOJU event type we map, from hand-built KOMOJU-shaped bodies ----
describe('KOMOJU normalize', () => {
  const adapter = komojuAdapter('komoju', { secretKey: SECRET_KEY, webhookSecrets: [WEBHOOK_SECRET] });
  const base = {
    id: 'pay_k1', resource: 'payment', status: 'authorized', amount: 1500, total: 1500, currency: 'JPY',
    payment_deadline: '2026-01-04T14:59:59Z', captured_at: null, created_at: '2026-01-01T00:00:00Z', external_order_num: 'ord-1',
    payment_details: { type: 'konbini', email: 'a@b.jp', store: 'lawson', receipt: '12345678901', confirmation_code: '1111', instructions_url: 'https://komoju.com/en/instructions/pay_k1' },
  };
  const event = (type: string, data: Record<string, unknown> = base) =>
    Buffer.from(JSON.stringify({ id: `evt_${type}`, type, resource: 'event', data, created_at: '2026-01-02T00:00:00Z' }));
  const norm = (body: Buffer) => adapter.normalize({ headers: {}, body });

  it.each([
    ['payment.authorized', 'reservation.created', undefined],
    [PRELIMINARY_PAID_EVENT, 'payment.paid_preliminary', 'preliminary'],
    [PRELIMINARY_CANCELLED_EVENT, 'payment.preliminary_cancelled', undefined],
    ['payment.captured', 'payment.succeeded', 'final'],
    ['payment.expired', 'reservation.expired', undefined],
    ['payment.cancelled', 'reservation.cancelled', undefined],
    ['payment.refunded', 'payment.refunded', undefined],
  ])('%s → %s', (komojuType, type, notice) => {
    const r = norm(event(komojuType));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toHaveLength(1);
    const e = r.value[0]!;
    expect(e).toMatchObject({ type, entityType: 'payment', entityId: 'pay_k1', occurredAt: '2026-01-02T00:00:00Z' });
    expect(e.data).toMatchObject({
      provider_payment_id: 'pay_k1', amount: '1500', currency: 'JPY', method: 'konbini', payment_deadline: '2026-01-04T14:59:59Z',
      store: 'lawson', receipt: '12345678901', confirmation_code: '1111',
    });
    expect(e.data.notice).toBe(notice);
  });

  it('carries Pay-easy numbers, and bank-transfer payer name and virtual account', () => {
    const payeasy = norm(event('payment.authorized', { ...base, payment_details: { type: 'pay_easy', email: 'a@b.jp', bank_id: '58091', customer_id: '1'.repeat(20), confirmation_id: '123456' } }));
    expect(payeasy.ok && payeasy.value[0]!.data).toMatchObject({ method: 'payeasy', bank_id: '58091', customer_id: '1'.repeat(20), confirmation_id: '123456' });
    const bank = norm(event('payment.captured', {
      ...base, status: 'captured', captured_at: '2026-01-05T01:00:00Z',
      payment_details: { type: 'bank_transfer', email: 'a@b.jp', bank_name: '銀行', account_branch_name: '本店', account_type: '普通', account_number: '1234567', account_name: 'コモジユ', payer_name_kana: 'ヤマダ タロウ' },
    }));
    expect(bank.ok && bank.value[0]!.data).toMatchObject({
      method: 'bank_transfer', payer_name: 'ヤマダ タロウ', notice: 'final', paid_after_deadline: true,
      virtual_account: { bank_name: '銀行', branch_name: '本店', account_type: '普通', account_number: '1234567', account_name: 'コモジユ' },
    });
  });

  it('yields nothing for events and methods it has no use for, and refuses what is not a KOMOJU event', () => {
    expect(norm(event('ping', {}))).toEqual({ ok: true, value: [] });
    expect(norm(event('payment.updated'))).toEqual({ ok: true, value: [] });
    expect(norm(event('payment.captured', { ...base, payment_details: { type: 'credit_card' } }))).toEqual({ ok: true, value: [] });
    expect(norm(event('payment.captured', { id: 'x' })).ok).toBe(false);
    expect(norm(Buffer.from('{"type":"payment.captured"}')).ok).toBe(false);
    expect(norm(Buffer.from('nope')).ok).toBe(false);
  });

  it('verify refuses a missing or wrong signature and an unparseable signed body', () => {
    const body = event('payment.captured');
    const at = new Date();
    expect(adapter.verify({ headers: {}, rawBody: body, receivedAt: at })).toMatchObject({ ok: false, error: { code: 'invalid_signature' } });
    expect(adapter.verify({ headers: { 'x-komoju-signature': sign('wrong', body) }, rawBody: body, receivedAt: at })).toMatchObject({ ok: false, error: { code: 'invalid_signature' } });
    const junk = Buffer.from('[]');
    expect(adapter.verify({ headers: { 'x-komoju-signature': sign(WEBHOOK_SECRET, junk) }, rawBody: junk, receivedAt: at })).toMatchObject({ ok: false, error: { code: 'unparseable' } });
    expect(adapter.verify({ headers: { 'x-komoju-signature': sign(WEBHOOK_SECRET, body) }, rawBody: body, receivedAt: at })).toMatchObject({ ok: true, value: { eventId: 'evt_payment.captured' } });
  });
});

// ---- the client, inquiry and history against the simulator over loopback HTTP ----
describe('KOMOJU client against the simulator', () => {
  let sim: KomojuSimulator;
  let adapter: ProviderAdapter;
  let url: string;
  beforeEach(async () => {
    sim = new KomojuSimulator({ secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, seed: 7 });
    ({ url } = await sim.start());
    adapter = komojuAdapter('komoju', { secretKey: SECRET_KEY, webhookSecrets: [WEBHOOK_SECRET], apiBase: url });
  });
  afterEach(async () => { await sim.stop(); });

  it('reserves a konbini payment and gets its payment number and deadline', async () => {
    const r = await adapter.client!(op('reserve', konbini()), signal());
    expect(r.status).toBe('succeeded');
    if (r.status !== 'succeeded') return;
    expect(r.response).toMatchObject({ status: 'authorized', amount: '1500', currency: 'JPY', method: 'konbini', store: 'lawson' });
    expect(r.response.receipt).toMatch(/^\d{11}$/);
    expect(Date.parse(r.response.payment_deadline as string)).toBeGreaterThan(Date.now());
    expect(sim.payment(r.response.provider_payment_id as string)).toMatchObject({ status: 'authorized' });
  });

  it('reserves Pay-easy and bank-transfer payments with their numbers', async () => {
    const pe = await adapter.client!(op('reserve', { method: 'payeasy', amount: 20000, email: 'a@b.jp' }), signal());
    expect(pe.status === 'succeeded' && pe.response).toMatchObject({ method: 'payeasy', bank_id: expect.any(String), customer_id: expect.stringMatching(/^\d{20}$/), confirmation_id: expect.any(String) });
    const bt = await adapter.client!(op('reserve', { method: 'bank_transfer', amount: 50000, email: 'a@b.jp', familyNameKana: 'ヤマダ', givenNameKana: 'タロウ' }), signal());
    expect(bt.status === 'succeeded' && bt.response).toMatchObject({ method: 'bank_transfer', virtual_account: { account_number: expect.stringMatching(/^\d{7}$/) } });
  });

  it('replays the same payment for the same idempotency key', async () => {
    const a = await adapter.client!(op('reserve', konbini(), 'same-key'), signal());
    const b = await adapter.client!(op('reserve', konbini(), 'same-key'), signal());
    expect(a.status === 'succeeded' && b.status === 'succeeded').toBe(true);
    if (a.status !== 'succeeded' || b.status !== 'succeeded') return;
    expect(b.response.provider_payment_id).toBe(a.response.provider_payment_id);
    expect(sim.counters).toMatchObject({ created: 1, idempotentReplays: 1 });
  });

  it('reports a validation refusal as failed with KOMOJU\'s code, and a bad request of ours without sending', async () => {
    const tooMuch = await adapter.client!(op('reserve', konbini(400_000)), signal());
    expect(tooMuch).toMatchObject({ status: 'failed', code: 'invalid_parameter', retryable: false });
    const before = sim.counters.requests;
    const noStore = await adapter.client!(op('reserve', { method: 'konbini', amount: 100, email: 'a@b.jp' }), signal());
    expect(noStore).toMatchObject({ status: 'failed', code: 'invalid_request' });
    expect(sim.counters.requests).toBe(before);
    expect(sim.counters.created).toBe(0);
  });

  it('throws on a 500 and on a wrong key is refused as failed', async () => {
    sim.setFaults({ error500: 1 });
    await expect(adapter.client!(op('reserve', konbini()), signal())).rejects.toThrow(/HTTP 500/);
    sim.setFaults({});
    const wrongKey = komojuAdapter('komoju', { secretKey: 'sk_wrong', webhookSecrets: [WEBHOOK_SECRET], apiBase: url });
    expect(await wrongKey.client!(op('reserve', konbini()), signal())).toMatchObject({ status: 'failed', code: 'unauthorized' });
  });

  it('a timeout after KOMOJU made the payment throws, and inquiry then finds it', async () => {
    sim.setFaults({ timeoutAfterSuccess: 1 });
    const o = op('reserve', konbini(2000));
    await expect(adapter.client!(o, AbortSignal.timeout(300))).rejects.toThrow();
    expect(sim.counters).toMatchObject({ created: 1, timeouts: 1 });
    sim.setFaults({});
    const found = await adapter.inquire!(o, signal());
    expect(found).toMatchObject({ status: 'succeeded', response: { status: 'authorized', amount: '2000', external_order_num: o.idempotencyKey } });
    expect(await adapter.inquire!(op('reserve', konbini()), signal())).toEqual({ status: 'not_found' });
  });

  it('cancels a pending payment, refuses to cancel it twice, and inquiry agrees', async () => {
    const r = await adapter.client!(op('reserve', konbini()), signal());
    const paymentId = r.status === 'succeeded' ? r.response.provider_payment_id as string : '';
    const cancel = op('cancel', { paymentId });
    expect(await adapter.inquire!(cancel, signal())).toEqual({ status: 'not_found' });
    expect(await adapter.client!(cancel, signal())).toMatchObject({ status: 'succeeded', response: { status: 'cancelled' } });
    expect(await adapter.client!(op('cancel', { paymentId }), signal())).toMatchObject({ status: 'failed', code: 'invalid_payment_status' });
    expect(await adapter.inquire!(cancel, signal())).toMatchObject({ status: 'succeeded', response: { status: 'cancelled' } });
    expect(await adapter.client!(op('cancel', { paymentId: 'nope' }), signal())).toMatchObject({ status: 'failed', code: 'not_found' });
  });

  const bank = { bankCode: '0005', branchCode: '123', accountType: 'ordinary', accountNumber: '0123456', holderKana: 'ﾔﾏﾀﾞ ﾀﾛｳ' };

  it('refund request: only on a captured payment, with KOMOJU\'s field names; replayed once per key; completed or rejected later', async () => {
    const r = await adapter.client!(op('reserve', konbini(5000)), signal());
    const paymentId = r.status === 'succeeded' ? r.response.provider_payment_id as string : '';
    const early = await adapter.client!(op('refund_request', { paymentId, amount: '1000', refundId: 'rf-0', ...bank }), signal());
    expect(early).toMatchObject({ status: 'failed', code: 'invalid_payment_status' });
    sim.pay(paymentId);
    const o = op('refund_request', { paymentId, amount: '1000', refundId: 'rf-1', ...bank });
    const a = await adapter.client!(o, signal());
    const b = await adapter.client!(o, signal());
    expect(a).toMatchObject({ status: 'succeeded', response: { refund_status: 'pending', provider_payment_id: paymentId, provider_refund_id: expect.stringMatching(/^refreq/) } });
    expect(b).toEqual(a);
    const listed = (sim.payment(paymentId) as { refund_requests: Record<string, unknown>[] }).refund_requests;
    expect(listed).toEqual([expect.objectContaining({
      customer_name: 'ﾔﾏﾀﾞ ﾀﾛｳ', bank_code: '0005', branch_number: '123', account_type: 'normal', account_number: '0123456',
      include_payment_method_fee: false, description: 'seigo refund rf-1', status: 'pending',
    })]);
    // More than is left is refused; a bad holder name too.
    expect(await adapter.client!(op('refund_request', { paymentId, amount: '4001', refundId: 'rf-2', ...bank }), signal())).toMatchObject({ status: 'failed', code: 'invalid_parameter' });
    expect(await adapter.client!(op('refund_request', { paymentId, amount: '10', refundId: 'rf-3', ...bank, holderKana: '山田' }), signal())).toMatchObject({ status: 'failed', code: 'invalid_parameter' });
    expect(sim.settlePayouts('completed')).toBe(1);
    expect(await adapter.inquire!(o, signal())).toMatchObject({ status: 'succeeded', response: { refund_status: 'completed' } });
    expect(await adapter.inquire!(op('refund_request', { paymentId, amount: '1', refundId: 'rf-none', ...bank }), signal())).toEqual({ status: 'not_found' });
  });

  it('disbursement: a timeout after KOMOJU made it is found again by external_id; rejected ones report their error; paid ones are completed', async () => {
    sim.setFaults({ timeoutAfterSuccess: 1 });
    const o = op('disbursement', { amount: '30000', currency: 'JPY', refundId: 'rf-d1', ...bank });
    await expect(adapter.client!(o, AbortSignal.timeout(300))).rejects.toThrow();
    sim.setFaults({});
    const found = await adapter.inquire!(o, signal());
    expect(found).toMatchObject({ status: 'succeeded', response: { refund_status: 'pending', disbursement: { amount: 30000, external_id: 'rf-d1', account_name_kana: 'ﾔﾏﾀﾞ ﾀﾛｳ' } } });
    expect(await adapter.inquire!(op('disbursement', { amount: '1', refundId: 'rf-d2', ...bank }), signal())).toEqual({ status: 'not_found' });
    sim.settlePayouts('rejected');
    const id = found.status === 'succeeded' ? found.response.provider_refund_id as string : '';
    expect(await adapter.inquire!({ ...o, request: { ...o.request, providerRefundId: id } }, signal())).toMatchObject({
      status: 'succeeded', response: { refund_status: 'rejected', error: expect.stringContaining('refused') },
    });
    // KOMOJU calls a disbursement carried out `paid`.
    const paid = op('disbursement', { amount: '7000', currency: 'JPY', refundId: 'rf-d4', ...bank });
    expect(await adapter.client!(paid, signal())).toMatchObject({ status: 'succeeded', response: { refund_status: 'pending' } });
    sim.settlePayouts('completed');
    expect(await adapter.inquire!(paid, signal())).toMatchObject({ status: 'succeeded', response: { refund_status: 'completed', disbursement: { status: 'paid' } } });
    sim.setFaults({ error500: 1 });
    await expect(adapter.client!(op('disbursement', { amount: '5', refundId: 'rf-d3', ...bank }), signal())).rejects.toThrow(/HTTP 500/);
  });

  it('history pages through every payment in the window', async () => {
    const from = new Date(Date.now() - 60_000);
    const ids = new Set<string>();
    for (let i = 0; i < 205; i++) {
      const r = await adapter.client!(op('reserve', konbini(100 + i)), signal());
      if (r.status === 'succeeded') ids.add(r.response.provider_payment_id as string);
    }
    const rows = [];
    for await (const row of adapter.history!(from, new Date(Date.now() + 60_000))) rows.push(row);
    expect(rows).toHaveLength(205);
    expect(new Set(rows.map((r) => r.externalId))).toEqual(ids);
    expect(rows[0]).toMatchObject({ currency: 'JPY', status: 'authorized', amount: 100n });
    const none = [];
    for await (const row of adapter.history!(new Date('2020-01-01'), new Date('2020-01-02'))) none.push(row);
    expect(none).toHaveLength(0);
  });
});

// ---- webhooks from the customer's side, signed, verified and normalized ----
describe('KOMOJU webhooks from the simulator', () => {
  let sim: KomojuSimulator;
  let adapter: ProviderAdapter;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let clock: Date;
  const reserve = async (request: Record<string, unknown>) => {
    const r = await adapter.client!(op('reserve', request), signal());
    if (r.status !== 'succeeded') throw new Error('reserve failed');
    return r.response;
  };
  const types = () => hook.received.flatMap((r) => canonical(adapter, r)).map((e) => `${e.type}${e.data.notice ? `:${e.data.notice}` : ''}`);

  beforeEach(async () => {
    hook = await receiver(1); // the first delivery is refused, so every test also exercises a retry
    clock = new Date('2026-03-01T03:00:00Z');
    sim = new KomojuSimulator({ secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, webhookUrl: hook.url, seed: 11, now: () => clock, webhookRetryDelayMs: 1 });
    const { url } = await sim.start();
    adapter = komojuAdapter('komoju', { secretKey: SECRET_KEY, webhookSecrets: ['rotated-out', WEBHOOK_SECRET], apiBase: url });
  });
  afterEach(async () => {
    await sim.stop();
    await hook.close();
  });

  it('reservation, preliminary notice, then final: all signed and in canonical terms', async () => {
    const p = await reserve(konbini());
    sim.pay(p.provider_payment_id as string, { preliminary: true });
    await sim.idle();
    expect(types()).toEqual(['reservation.created', 'payment.paid_preliminary:preliminary', 'payment.succeeded:final']);
    expect(sim.counters).toMatchObject({ webhooksDelivered: 3, webhooksFailed: 0 });
    expect(sim.counters.webhookAttempts).toBe(4);
    expect(hook.received[2]!.headers).toMatchObject({ 'x-komoju-event': 'payment.captured', 'user-agent': 'Komoju-Webhook' });
  });

  it('a withdrawn preliminary notice (速報取消) leaves the reservation open until it expires', async () => {
    const p = await reserve(konbini());
    const id = p.provider_payment_id as string;
    sim.pay(id, { preliminary: true, holdFinal: true });
    sim.cancelPreliminary(id);
    sim.expire(id);
    await sim.idle();
    expect(types()).toEqual(['reservation.created', 'payment.paid_preliminary:preliminary', 'payment.preliminary_cancelled', 'reservation.expired']);
  });

  it('a payment after expiry arrives as a final notice marked paid after the deadline', async () => {
    const p = await reserve({ method: 'payeasy', amount: 30000, email: 'a@b.jp' });
    const id = p.provider_payment_id as string;
    sim.expire(id);
    clock = new Date(clock.getTime() + 5 * 86_400_000);
    sim.payAfterExpiry(id);
    await sim.idle();
    const events = hook.received.flatMap((r) => canonical(adapter, r));
    expect(events.map((e) => e.type)).toEqual(['reservation.created', 'reservation.expired', 'payment.succeeded']);
    expect(events[2]!.data).toMatchObject({ method: 'payeasy', notice: 'final', paid_after_deadline: true });
  });

  it('a bank transfer into the virtual account captures it with the payer name', async () => {
    const p = await reserve({ method: 'bank_transfer', amount: 50000, email: 'a@b.jp' });
    const account = (p.virtual_account as { account_number: string }).account_number;
    expect(sim.bankTransfer({ virtualAccount: '0000000', amount: 1, payerKana: 'ダレ' })).toBeUndefined();
    expect(sim.bankTransfer({ virtualAccount: account, amount: 50000, payerKana: 'ヤマダ タロウ' })).toBe(p.provider_payment_id);
    await sim.idle();
    const last = hook.received.flatMap((r) => canonical(adapter, r)).at(-1)!;
    expect(last).toMatchObject({ type: 'payment.succeeded', entityId: p.provider_payment_id, data: { payer_name: 'ヤマダ タロウ', amount: '50000', virtual_account: { account_number: account } } });
    sim.refund(p.provider_payment_id as string);
    await sim.idle();
    expect(types().at(-1)).toBe('payment.refunded');
  });
});

// ---- delivery faults at seeded rates ----
describe('KOMOJU simulator webhook faults', () => {
  async function scenario(faults: Parameters<KomojuSimulator['setFaults']>[0], seed: number) {
    const hook = await receiver();
    const sim = new KomojuSimulator({ secretKey: SECRET_KEY, webhookSecret: WEBHOOK_SECRET, webhookUrl: hook.url, seed, webhookRetryDelayMs: 1 });
    const { url } = await sim.start();
    const adapter = komojuAdapter('komoju', { secretKey: SECRET_KEY, webhookSecrets: [WEBHOOK_SECRET], apiBase: url });
    sim.setFaults(faults);
    for (let i = 0; i < 100; i++) {
      const r = await adapter.client!(op('reserve', konbini()), signal());
      if (r.status === 'succeeded') sim.pay(r.response.provider_payment_id as string);
    }
    await sim.idle();
    await sim.stop();
    await hook.close();
    const ids = hook.received.map((r) => {
      const v = adapter.verify({ headers: r.headers, rawBody: r.body, receivedAt: new Date() });
      if (!v.ok) throw new Error('unsigned webhook');
      return v.value.eventId;
    });
    return { sim, ids, emitted: sim.events.map((e) => e.id) };
  }

  it('drops about the configured share, and only those', async () => {
    const { sim, ids, emitted } = await scenario({ dropWebhook: 0.25 }, 3);
    expect(emitted).toHaveLength(200);
    expect(sim.counters.webhooksDropped).toBeGreaterThan(25);
    expect(sim.counters.webhooksDropped).toBeLessThan(80);
    expect(ids).toHaveLength(200 - sim.counters.webhooksDropped);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => emitted.includes(id))).toBe(true);
  });

  it('duplicates about the configured share with the same event id', async () => {
    const { sim, ids, emitted } = await scenario({ duplicateWebhook: 0.25 }, 4);
    expect(sim.counters.webhooksDuplicated).toBeGreaterThan(25);
    expect(sim.counters.webhooksDuplicated).toBeLessThan(80);
    expect(ids).toHaveLength(200 + sim.counters.webhooksDuplicated);
    expect(new Set(ids)).toEqual(new Set(emitted));
  });

  it('reorders some webhooks but loses none', async () => {
    const { sim, ids, emitted } = await scenario({ reorderWebhooks: 0.25 }, 5);
    expect(sim.counters.webhooksReordered).toBeGreaterThan(25);
    expect(sim.counters.webhooksReordered).toBeLessThan(80);
    expect(new Set(ids)).toEqual(new Set(emitted));
    // A held event is sent after the next one: some captured event leaves before its own authorization.
    const byId = new Map(sim.events.map((e) => [e.id, e]));
    const firstSeen = new Map<string, string>();
    for (const id of ids) {
      const e = byId.get(id)!;
      const pid = (e.data as { id: string }).id;
      if (!firstSeen.has(pid)) firstSeen.set(pid, e.type);
    }
    expect([...firstSeen.values()]).toContain('payment.captured');
  });

  it('the same seed gives the same fault schedule', async () => {
    const faults = { dropWebhook: 0.2, duplicateWebhook: 0.2, reorderWebhooks: 0.2 };
    const a = await scenario(faults, 42);
    const b = await scenario(faults, 42);
    const pick = (s: KomojuSimulator) => ({ d: s.counters.webhooksDropped, u: s.counters.webhooksDuplicated, r: s.counters.webhooksReordered });
    expect(pick(a.sim)).toEqual(pick(b.sim));
    expect(a.sim.events.map((e) => e.type)).toEqual(b.sim.events.map((e) => e.type));
  });
});
