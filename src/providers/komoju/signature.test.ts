import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sign, verifySignature } from './signature.ts';

// Computed outside this code: `printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'whsec-komoju-test-token'`.
const VECTOR = {
  secret: 'whsec-komoju-test-token',
  body: '{"id":"evt_1","type":"payment.captured","resource":"event","data":{"id":"pay_1","amount":1000},"created_at":"2026-01-01T00:00:00Z"}',
  signature: '0d63381a163a3854126554db766bd7557c4914a7323af837833b3c20e3501db6',
};

describe('X-Komoju-Signature', () => {
  it('signs the independently computed vector as lowercase hex', () => {
    expect(sign(VECTOR.secret, VECTOR.body)).toBe(VECTOR.signature);
    expect(sign(VECTOR.secret, Buffer.from(VECTOR.body))).toBe(VECTOR.signature);
  });

  it('verifies the vector, also when the matching secret is not the first (rotation)', () => {
    expect(verifySignature([VECTOR.secret], VECTOR.signature, VECTOR.body)).toEqual({ ok: true });
    expect(verifySignature(['old-token', VECTOR.secret], VECTOR.signature, Buffer.from(VECTOR.body))).toEqual({ ok: true });
  });

  it('rejects a tampered body, a tampered signature and a wrong secret', () => {
    const no = { ok: false, reason: 'no_matching_signature' };
    expect(verifySignature([VECTOR.secret], VECTOR.signature, VECTOR.body.replace('1000', '1001'))).toEqual(no);
    const flipped = (VECTOR.signature[0] === '0' ? '1' : '0') + VECTOR.signature.slice(1);
    expect(verifySignature([VECTOR.secret], flipped, VECTOR.body)).toEqual(no);
    expect(verifySignature(['another-token'], VECTOR.signature, VECTOR.body)).toEqual(no);
    expect(verifySignature([], VECTOR.signature, VECTOR.body)).toEqual(no);
  });

  it('rejects a missing, truncated or non-hex signature', () => {
    expect(verifySignature([VECTOR.secret], undefined, VECTOR.body)).toEqual({ ok: false, reason: 'missing_signature' });
    expect(verifySignature([VECTOR.secret], '', VECTOR.body)).toEqual({ ok: false, reason: 'missing_signature' });
    expect(verifySignature([VECTOR.secret], VECTOR.signature.slice(0, 32), VECTOR.body).ok).toBe(false);
    expect(verifySignature([VECTOR.secret], `sha256=${VECTOR.signature}`, VECTOR.body).ok).toBe(false);
    expect(verifySignature([VECTOR.secret], 'z'.repeat(64), VECTOR.body).ok).toBe(false);
  });

  it('never verifies a signature that is not the body\'s HMAC (property)', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (sig, body) => {
      const r = verifySignature([VECTOR.secret], sig, body);
      return r.ok === (sig.trim().toLowerCase() === sign(VECTOR.secret, body));
    }));
  });
});
