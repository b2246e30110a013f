// The `apiClients` configuration: keys long enough to be secrets, one name and one key per client.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../kernel/config.ts';

const key = (c: string) => c.repeat(24);

describe('apiClients configuration', () => {
  it('accepts clients with optional scopes and defaults to none', () => {
    expect(parseConfig({}).apiClients).toEqual([]);
    const cfg = parseConfig({ apiClients: [{ name: 'acme', key: key('a') }, { name: 'globex', key: key('b'), scopes: ['deposits'] }] });
    expect(cfg.apiClients.map((c) => c.name)).toEqual(['acme', 'globex']);
  });

  it.each([
    [{ name: 'acme', key: 'short-key' }, /at least 24 characters/],
    [{ name: 'acme', key: `${key('a')} x` }, /without spaces/],
    [{ name: 'Acme Corp', key: key('a') }, /lowercase/],
    [{ name: 'acme', key: key('a'), role: 'operator' }, /role/],
  ])('refuses %j', (client, message) => {
    expect(() => parseConfig({ apiClients: [client] })).toThrow(message);
  });

  it('refuses two clients with one name or one key', () => {
    expect(() => parseConfig({ apiClients: [{ name: 'acme', key: key('a') }, { name: 'acme', key: key('b') }] })).toThrow(/names must be unique/);
    expect(() => parseConfig({ apiClients: [{ name: 'acme', key: key('a') }, { name: 'globex', key: key('a') }] })).toThrow(/keys must be unique/);
  });
});
