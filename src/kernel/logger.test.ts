import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';

describe('logger', () => {
  it('never writes secrets, tokens, signatures or card numbers', () => {
    let out = '';
    const sink = new Writable({ write(chunk, _enc, cb) { out += chunk.toString(); cb(); } });
    const log = createLogger('info', sink);
    log.info({
      provider: { secrets: ['whsec_topsecret'], secret: 'whsec_other' },
      token: 'admin-token-value',
      req: { headers: { authorization: 'Bearer abc', 'webhook-signature': 'v1,SIGNATURE', 'stripe-signature': 't=1,v1=deadbeef' } },
      payment: { card_number: '4242424242424242', cvc: '123' },
    }, 'request');
    for (const s of ['whsec_topsecret', 'whsec_other', 'admin-token-value', 'Bearer abc', 'v1,SIGNATURE', 'deadbeef', '4242424242424242', '"123"']) {
      expect(out).not.toContain(s);
    }
    expect(out).toContain('[redacted]');
  });
});
