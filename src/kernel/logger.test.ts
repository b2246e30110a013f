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

describe('log lines', () => {
  const capture = () => {
    let out = '';
    return { sink: new Writable({ write(chunk, _enc, cb) { out += chunk.toString(); cb(); } }), text: () => out };
  };

  it('name their level', () => {
    const c = capture();
    createLogger('info', { destination: c.sink, pretty: false }).warn({ case_id: 'x' }, 'case opened');
    const line = JSON.parse(c.text()) as { level: unknown; msg: string };
    expect(line.level).toBe('warn');
    expect(line.msg).toBe('case opened');
  });

  it('are readable text with SEIGO_LOG_PRETTY, and still redacted', () => {
    const c = capture();
    createLogger('info', { destination: c.sink, pretty: true }).info({ route: '/v1/deposits', token: 'admin-token-value' }, 'request');
    expect(c.text()).toMatch(/INFO.*request/);
    expect(c.text()).toContain('/v1/deposits');
    expect(c.text()).not.toContain('admin-token-value');
    expect(() => JSON.parse(c.text()) as unknown).toThrow();
  });
});
