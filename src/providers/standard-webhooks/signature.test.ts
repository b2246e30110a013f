import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sign, verifySignature } from './signature.ts';
import { standardWebhooksAdapter } from './index.ts';

// The specification's published vector (standard-webhooks repository, library tests).
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const at = (s: number) => new Date(s * 1000);

describe('Standard Webhooks signature', () => {
  it('signs the published test vector', () => {
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
  });

  it('verifies the published test vector', () => {
    const r = verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: VECTOR.signature }, VECTOR.body, at(VECTOR.timestamp));
    expect(r).toEqual({ ok: true });
  });

  it('accepts one matching signature among several, and any of several secrets (rotation)', () => {
    const sigs = ['v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=', 'v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=', VECTOR.signature].join(' ');
    const r = verifySignature(['whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: sigs }, VECTOR.body, at(VECTOR.timestamp));
    expect(r.ok).toBe(true);
  });

  it('rejects a tampered body, id or timestamp', () => {
    const base = { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: VECTOR.signature };
    expect(verifySignature([VECTOR.secret], base, '{"test": 2432232315}', at(VECTOR.timestamp))).toEqual({ ok: false, reason: 'no_matching_signature' });
    expect(verifySignature([VECTOR.secret], { ...base, id: 'msg_other' }, VECTOR.body, at(VECTOR.timestamp)).ok).toBe(false);
    expect(verifySignature([VECTOR.secret], { ...base, timestamp: String(VECTOR.timestamp + 1) }, VECTOR.body, at(VECTOR.timestamp)).ok).toBe(false);
  });

  it('rejects stale and future timestamps beyond five minutes, accepts within', () => {
    const h = { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: VECTOR.signature };
    expect(verifySignature([VECTOR.secret], h, VECTOR.body, at(VECTOR.timestamp + 301))).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(verifySignature([VECTOR.secret], h, VECTOR.body, at(VECTOR.timestamp - 301))).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(verifySignature([VECTOR.secret], h, VECTOR.body, at(VECTOR.timestamp + 299)).ok).toBe(true);
  });

  it('rejects missing headers, partial signatures and non-numeric timestamps', () => {
    const now = at(VECTOR.timestamp);
    expect(verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp) }, VECTOR.body, now)).toEqual({ ok: false, reason: 'missing_headers' });
    expect(verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: VECTOR.signature.slice(0, 8) }, VECTOR.body, now).ok).toBe(false);
    expect(verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: 'v1,' }, VECTOR.body, now).ok).toBe(false);
    expect(verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: 'hello', signature: VECTOR.signature }, VECTOR.body, now)).toEqual({ ok: false, reason: 'bad_timestamp' });
  });

  it('never verifies an arbitrary signature header (property)', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (sig, body) => {
      const r = verifySignature([VECTOR.secret], { id: VECTOR.id, timestamp: String(VECTOR.timestamp), signature: sig }, body, at(VECTOR.timestamp));
      return r.ok === false || sig.includes(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, body).slice(3));
    }));
  });
});

describe('standard-webhooks adapter', () => {
  const adapter = standardWebhooksAdapter('acme', { secrets: [VECTOR.secret] });
  const body = Buffer.from(JSON.stringify({ type: 'payment.succeeded', timestamp: '2026-01-01T00:00:00Z', data: { id: 'pay_1', amount: 100 } }));
  const now = new Date();
  const ts = Math.floor(now.getTime() / 1000);
  const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': sign(VECTOR.secret, 'msg_1', ts, body) };

  it('verifies, keeps the headers that matter, and normalizes to a canonical event', () => {
    const v = adapter.verify({ headers, rawBody: body, receivedAt: now });
    expect(v).toMatchObject({ ok: true, value: { eventId: 'msg_1' } });
    const n = adapter.normalize({ headers, body });
    expect(n).toEqual({ ok: true, value: [{ type: 'payment.succeeded', occurredAt: '2026-01-01T00:00:00Z', entityType: 'payment', entityId: 'pay_1', data: { id: 'pay_1', amount: 100 } }] });
  });

  it('refuses a signed body that is not a Standard Webhooks payload as unparseable', () => {
    const bad = Buffer.from('not json');
    const h = { ...headers, 'webhook-signature': sign(VECTOR.secret, 'msg_1', ts, bad) };
    expect(adapter.verify({ headers: h, rawBody: bad, receivedAt: now })).toMatchObject({ ok: false, error: { code: 'unparseable' } });
  });
});
