// Console sessions: a signed cookie names its token's holder until it expires; a forged, tampered or
// orphaned one is refused with a code the console shows; paths never leave the console's folder.
import { describe, expect, it } from 'vitest';
import type { Clock } from '../kernel/clock.ts';
import { consoleFile } from './console.ts';
import { readCookie, Sessions, SESSION_TTL_MS } from './session.ts';

const tokens = [{ name: 'ana', token: 'operator-token-0123456789', role: 'operator' as const }, { name: 'vic', token: 'viewer-token-0123456789ab', role: 'viewer' as const }];
const at = (ms: number): Clock => ({ now: () => new Date(ms) });

describe('console sessions', () => {
  it('issues a cookie that names the holder and role until it expires', () => {
    const clock = { t: 1_000_000, now() { return new Date(this.t); } };
    const s = new Sessions(tokens, clock);
    const t = s.findToken('viewer-token-0123456789ab');
    expect(t?.name).toBe('vic');
    const { cookie } = s.issue(t!);
    expect(s.check(cookie)).toEqual({ ok: true, admin: { name: 'vic', role: 'viewer' } });
    clock.t += SESSION_TTL_MS;
    expect(s.check(cookie)).toMatchObject({ ok: false, code: 'session_expired' });
  });

  it('refuses a wrong token, a tampered cookie, another process\'s cookie and a removed token', () => {
    const s = new Sessions(tokens, at(0));
    expect(s.findToken('operator-token-012345678X')).toBeNull();
    const { cookie } = s.issue(tokens[1]!);
    const [payload, sig] = cookie.split('.');
    const forged = Buffer.from(Buffer.from(payload!, 'base64url').toString().replace('viewer', 'operator')).toString('base64url');
    expect(s.check(`${forged}.${sig}`)).toMatchObject({ ok: false, code: 'session_invalid' });
    expect(new Sessions(tokens, at(0)).check(cookie)).toMatchObject({ ok: false, code: 'session_invalid' });
    expect(s.check('garbage')).toMatchObject({ ok: false, code: 'session_invalid' });
    expect(s.check(undefined)).toBeNull();
    const secret = Buffer.alloc(32, 7);
    const a = new Sessions(tokens, at(0), secret);
    const c = a.issue(tokens[0]!).cookie;
    expect(new Sessions([tokens[1]!], at(0), secret).check(c)).toMatchObject({ ok: false, code: 'session_invalid' });
    expect(new Sessions([{ ...tokens[0]!, token: 'rotated-token-0123456789' }], at(0), secret).check(c)).toMatchObject({ ok: false, code: 'session_invalid' });
  });

  it('reads one cookie among several', () => {
    expect(readCookie('a=1; seigo_session=x.y; b=2', 'seigo_session')).toBe('x.y');
    expect(readCookie(undefined, 'seigo_session')).toBeUndefined();
    expect(readCookie('seigo_sessionx=1', 'seigo_session')).toBeUndefined();
  });

  it('keeps console paths inside its folder', () => {
    expect(consoleFile('/srv/dist/', 'assets/a.js')).toBe('/srv/dist/assets/a.js');
    expect(consoleFile('/srv/dist/', '../../etc/passwd')).toBeNull();
    expect(consoleFile('/srv/dist/', '..%2F..%2Fetc%2Fpasswd')).toBeNull();
    expect(consoleFile('/srv/dist/', '%E0%A4%A')).toBeNull();
  });
});
