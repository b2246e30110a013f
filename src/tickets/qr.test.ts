// The QR token is a plain RFC 7515 compact JWS: jose (an independent implementation) verifies what
// seigo signs and seigo verifies what jose signs; anything altered, unsigned or foreign is refused.
import { generateKeyPairSync, sign } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { signQr, verifyQr, type QrClaims } from './qr.ts';

const pair = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const keyFor = async (kid: string) => (kid === 'tk-20261203' ? pair.publicKey : null);
const claims: QrClaims = { t: '0190a8f0-0000-7000-8000-000000000001', p: '0190a8f0-0000-7000-8000-000000000002', f: 'park', nbf: 1_800_000_000, exp: 1_800_086_400 };
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const signedWith = (header: unknown) => {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), pair.privateKey).toString('base64url')}`;
};

describe('QR tokens', () => {
  it('jose verifies what seigo signs, and seigo what jose signs', async () => {
    const ours = await signQr(claims, 'tk-20261203', pair.privateKey);
    const byJose = await compactVerify(ours, pair.publicKey, { algorithms: ['EdDSA'] });
    expect(JSON.parse(new TextDecoder().decode(byJose.payload))).toEqual(claims);
    expect(byJose.protectedHeader).toEqual({ alg: 'EdDSA', kid: 'tk-20261203' });

    const theirs = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: 'EdDSA', kid: 'tk-20261203' }).sign(pair.privateKey);
    expect(await verifyQr(theirs, keyFor)).toEqual({ ok: true, value: claims });
  });

  it('judges validity with the clock skew either way', async () => {
    const qr = await signQr(claims, 'tk-20261203', pair.privateKey);
    expect((await verifyQr(qr, keyFor, new Date((claims.nbf - 60) * 1000))).ok).toBe(true);
    expect(await verifyQr(qr, keyFor, new Date((claims.nbf - 600) * 1000))).toEqual({ ok: false, error: 'qr_not_yet_valid' });
    expect(await verifyQr(qr, keyFor, new Date((claims.exp + 600) * 1000))).toEqual({ ok: false, error: 'qr_expired' });
  });

  it('accepts its own well-formed header and nothing else', async () => {
    expect((await verifyQr(signedWith({ alg: 'EdDSA', kid: 'tk-20261203' }), keyFor)).ok).toBe(true);
  });

  it('refuses a changed payload, another key, an unknown kid, alg none, crit and garbage', async () => {
    const qr = await signQr(claims, 'tk-20261203', pair.privateKey);
    const [head, , sig] = qr.split('.');
    const refused = [
      `${head}.${b64({ ...claims, f: 'zoo' })}.${sig}`,
      await signQr(claims, 'tk-20261203', other.privateKey),
      await signQr(claims, 'tk-20261204', pair.privateKey),
      `${b64({ alg: 'none', kid: 'tk-20261203' })}.${b64(claims)}.`,
      signedWith({ alg: 'EdDSA', kid: 'tk-20261203', crit: ['x-gate'], 'x-gate': 1 }),
      `${qr}.extra`, 'not a token', '', `${head}.${b64([1, 2])}.${sig}`, `${head}.${b64({ t: 1 })}.${sig}`,
    ];
    for (const token of refused) expect(await verifyQr(token, keyFor)).toEqual({ ok: false, error: 'qr_invalid' });
  });
});
