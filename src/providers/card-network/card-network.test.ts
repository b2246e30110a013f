// The card network's events: every type normalised to its card.* topic with the filter attributes,
// amounts kept exact, unknown types ignored (never refused), and the simulator's requests verifying
// with the adapter as the network's would.
import { describe, expect, it } from 'vitest';
import { cardNetworkAdapter, CARD_TOPICS, normalizeCardEvent, CardNetworkSimulator } from './index.ts';
import { CARD_SCENARIOS, toJpy } from './simulator.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

describe('card network events', () => {
  const sim = new CardNetworkSimulator({ secret: SECRET, seed: 7 });
  const adapter = cardNetworkAdapter('visa', { secrets: [SECRET] });

  it('normalises each network type to its topic, with merchant_category, country and user attributes', () => {
    const events = sim.purchase({ user: 'u1', amount: 12_345n, currency: 'USD', mcc: '5812', country: 'US', scenario: 'refund' });
    expect(events.map((e) => e.type)).toEqual(['authorization', 'clearing', 'refund']);
    const out = events.map((e) => normalizeCardEvent(e.type, e.timestamp, e.data));
    for (const r of out) expect(r.ok).toBe(true);
    const [auth, clear, refund] = out.map((r) => (r.ok ? r.value[0]! : null));
    expect(auth).toMatchObject({
      type: 'card.authorized', entityType: 'card_authorization', entityId: events[0]!.data.authorization_id,
      attributes: { merchant_category: '5812', country: 'US', user: 'u1' },
      data: { amount: '12345', currency: 'USD', amount_jpy: '18548', user_id: 'u1', clearing_id: null },
    });
    expect(clear).toMatchObject({ type: 'card.cleared', entityId: auth!.entityId, data: { clearing_id: events[1]!.data.clearing_id } });
    expect(refund).toMatchObject({ type: 'card.refunded', entityId: auth!.entityId, data: { refund_id: events[2]!.data.refund_id } });
    expect(Object.values(CARD_TOPICS).sort()).toEqual(['card.authorized', 'card.cleared', 'card.expired', 'card.refunded', 'card.reversed']);
  });

  it('a clearing without an authorization is keyed by its clearing; a reversal and an expiry keep the authorization', () => {
    const [force] = sim.purchase({ user: 'u2', amount: 500n, currency: 'JPY', mcc: '5411', country: 'JP', scenario: 'force_post' });
    const r = normalizeCardEvent(force!.type, force!.timestamp, force!.data);
    expect(r.ok && r.value[0]).toMatchObject({ type: 'card.cleared', entityId: `clearing:${force!.data.clearing_id}`, data: { authorization_id: null, amount_jpy: '500' } });
    for (const scenario of ['reversed', 'expired'] as const) {
      const [a, last] = sim.purchase({ user: 'u2', amount: 500n, currency: 'JPY', mcc: '5411', country: 'JP', scenario });
      const n = normalizeCardEvent(last!.type, last!.timestamp, last!.data);
      expect(n.ok && n.value[0]).toMatchObject({ type: scenario === 'reversed' ? 'card.reversed' : 'card.expired', entityId: a!.data.authorization_id });
    }
  });

  it('an unknown type normalises to nothing (stored and ignored); a known type with bad data is a cause, never a guess', () => {
    expect(normalizeCardEvent('authorization.advice', undefined, { anything: 1 })).toEqual({ ok: true, value: [] });
    const [a] = sim.purchase({ user: 'u3', amount: 100n, currency: 'JPY', mcc: '5411', country: 'JP', scenario: 'exact' });
    const bad = normalizeCardEvent('authorization', undefined, { ...a!.data, amount: { value: '-5', currency: 'JPY' } });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/amount\.value a non-negative integer/);
    const noClearingId = normalizeCardEvent('clearing', undefined, a!.data);
    expect(!noClearingId.ok && noClearingId.error).toBe('a clearing event needs clearing_id');
  });

  it('the simulator signs as the network does: the adapter verifies it, and refuses a tampered body', () => {
    const [e] = sim.purchase({ user: 'u4', amount: 990n, currency: 'EUR', mcc: '5999', country: 'US', scenario: 'exact' });
    const { headers, body } = sim.signed(e!);
    const req = { headers, rawBody: Buffer.from(body), receivedAt: new Date() };
    expect(adapter.verify(req)).toMatchObject({ ok: true, value: { eventId: e!.id } });
    expect(adapter.verify({ ...req, rawBody: Buffer.from(body.replace('990', '999')) })).toMatchObject({ ok: false, error: { code: 'invalid_signature' } });
    const n = adapter.normalize({ headers, body: Buffer.from(body) });
    expect(n.ok && n.value[0]!.type).toBe('card.authorized');
  });

  it('converts at its rates, half up, in minor units', () => {
    expect(toJpy(100n, 'USD')).toBe(150n);
    expect(toJpy(1n, 'USD')).toBe(2n);
    expect(toJpy(1000n, 'JPY')).toBe(1000n);
    expect(toJpy(10_000n, 'KRW')).toBe(1100n);
  });

  it('generates every scenario, and its faults duplicate, reorder, drop and add unknown types, the file keeping every clearing', () => {
    const s = new CardNetworkSimulator({ secret: SECRET, seed: 3 });
    const { purchases, events } = s.generate(300);
    expect(new Set(purchases.map((p) => p.scenario))).toEqual(new Set(CARD_SCENARIOS));
    const { sent, dropped } = s.withFaults(events, { duplicate: 0.1, reorder: 0.1, drop: 0.05, unknownType: 0.05 });
    expect(dropped.length).toBeGreaterThan(0);
    expect(sent.filter((e) => e.type === 'authorization.advice').length).toBeGreaterThan(0);
    expect(new Set(sent.map((e) => e.id)).size).toBeLessThan(sent.length);
    const file = s.clearingFile(events);
    const clearings = events.filter((e) => e.type === 'clearing');
    expect(file.trim().split('\n')).toHaveLength(clearings.length + 1);
    for (const d of dropped.filter((e) => e.type === 'clearing')) expect(file).toContain(String(d.data.clearing_id));
  });
});
