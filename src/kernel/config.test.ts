import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from './config.ts';

describe('configuration', () => {
  it('fills defaults: port 8787, 1 MiB body limit, Svix-like delivery schedule left to subscriptions', () => {
    const c = parseConfig({});
    expect(c.port).toBe(8787);
    expect(c.intake.maxBodyBytes).toBe(1024 * 1024);
    expect(c.providers).toEqual({});
  });

  it('names every bad key in its message', () => {
    expect(() => parseConfig({ port: 'x', providers: { acme: { kind: 'standard-webhooks', secrets: ['nope'] } } }))
      .toThrowError(/port:[\s\S]*providers\.acme\.secrets\.0: must be a Standard Webhooks secret/);
    expect(() => parseConfig({ providers: { acme: { kind: 'carrier-pigeon' } } })).toThrowError(/providers\.acme\.kind/);
    expect(() => parseConfig({ adminTokens: [{ name: 'a', token: 'short', role: 'operator' }] })).toThrowError(/adminTokens\.0\.token: admin tokens must be at least 16/);
    expect(() => parseConfig({ subscriptions: [{ name: 'Bad Name', topic: 't', target: { type: 'handler', handler: 'h' } }] })).toThrowError(/subscriptions\.0\.name/);
    expect(() => parseConfig({ worker: { pollIntervalMs: '5 fortnights' } })).toThrowError(/worker\.pollIntervalMs: not a duration/);
    expect(() => parseConfig({ unknownKey: 1 })).toThrowError(/unknownKey|Unrecognized key/);
    expect(() => parseConfig({ deposits: { bankTransferProvider: 'bnak' } })).toThrowError(/deposits\.bankTransferProvider: names no declared provider/);
    expect(() => parseConfig({ deposits: { bankTransferProvider: 'stripe' }, providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_x', webhookSecrets: ['whsec_x'] } } }))
      .toThrowError(/deposits\.bankTransferProvider/);
  });

  it('refuses every secret with surrounding whitespace alike, with one clear message naming the key', () => {
    const good = {
      providers: {
        acme: { kind: 'standard-webhooks', secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] },
        stripe: { kind: 'stripe', secretKey: 'sk_test_x', webhookSecrets: ['whsec_x'] },
        komoju: { kind: 'komoju', secretKey: 'sk_test_y', webhookSecrets: ['komoju-token'] },
      },
      adminTokens: [{ name: 'a', token: 'admin-token-0123456789', role: 'operator' }],
      apiClients: [{ name: 'w', key: 'wallet-key-0123456789abcdefgh' }],
      subscriptions: [{ name: 's', topic: 't', target: { type: 'http', url: 'https://example.com/h', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } }],
      deposits: { callback: { url: 'https://example.com/cb', secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' } },
    };
    expect(() => parseConfig(good)).not.toThrow();
    const paths = [
      ['providers', 'acme', 'secrets', 0], ['providers', 'stripe', 'secretKey'], ['providers', 'stripe', 'webhookSecrets', 0],
      ['providers', 'komoju', 'secretKey'], ['providers', 'komoju', 'webhookSecrets', 0], ['adminTokens', 0, 'token'],
      ['apiClients', 0, 'key'], ['subscriptions', 0, 'target', 'secret'], ['deposits', 'callback', 'secret'],
    ] as const;
    for (const path of paths) {
      for (const pad of [(v: string) => `${v} `, (v: string) => `${v}\n`, (v: string) => `\t${v}`]) {
        const input = structuredClone(good) as Record<string, unknown>;
        let at = input as Record<string | number, unknown>;
        for (const k of path.slice(0, -1)) at = at[k] as Record<string | number, unknown>;
        const last = path[path.length - 1]!;
        at[last] = pad(at[last] as string);
        const name = path.join('.').replace(/\./g, '\\.');
        expect(() => parseConfig(input), path.join('.')).toThrowError(new RegExp(`${name}: has leading or trailing whitespace`));
      }
    }
  });

  it('takes NATS servers (file or SEIGO_NATS_SERVERS) and nats targets, naming a bad subject or stream', () => {
    const c = parseConfig({
      nats: { servers: ['nats://a:4222'] },
      subscriptions: [{ name: 'n', topic: 'order.*', target: { type: 'nats', subject: 'orders.events', stream: 'ORDERS' } }],
    });
    expect(c.nats).toEqual({ servers: ['nats://a:4222'], name: 'seigo', connectTimeoutMs: 5_000 });
    expect(c.subscriptions[0]!.target).toEqual({ type: 'nats', subject: 'orders.events', stream: 'ORDERS', timeoutMs: 5_000 });
    expect(parseConfig({}).nats).toBeUndefined();
    expect(loadConfig({ SEIGO_NATS_SERVERS: 'nats://a:4222, nats://b:4222' }, mkdtempSync(join(tmpdir(), 'seigo-config-'))).nats?.servers)
      .toEqual(['nats://a:4222', 'nats://b:4222']);
    const target = (t: Record<string, unknown>) => ({ subscriptions: [{ name: 'n', topic: 't', target: { type: 'nats', ...t } }] });
    expect(() => parseConfig(target({ subject: 'orders.>', stream: 'ORDERS' }))).toThrowError(/subscriptions\.0\.target\.subject: a NATS subject/);
    expect(() => parseConfig(target({ subject: 'orders', stream: 'OR.DERS' }))).toThrowError(/subscriptions\.0\.target\.stream: a JetStream stream name/);
    expect(() => parseConfig(target({ subject: 'orders' }))).toThrowError(/subscriptions\.0\.target\.stream/);
    expect(() => parseConfig({ nats: { servers: [] } })).toThrowError(/nats\.servers: needs at least one server/);
  });

  it('parses durations in schedules', () => {
    const c = parseConfig({ subscriptions: [{ name: 's', topic: 't', target: { type: 'http', url: 'https://example.com/h' }, retrySchedule: ['5s', '30min', 250] }] });
    expect(c.subscriptions[0]!.retrySchedule).toEqual([5_000, 1_800_000, 250]);
  });

  it('reads SEIGO_CONFIG and lets the environment override it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seigo-config-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 9000, providers: { acme: { kind: 'standard-webhooks', secrets: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'] } } }));
    const c = loadConfig({ SEIGO_CONFIG: file, SEIGO_PORT: '9100', DATABASE_URL: 'postgres://x@h/db', SEIGO_ADMIN_TOKEN: 'abcdefghijklmnopqrstuvwxyz' }, dir);
    expect(c.port).toBe(9100);
    expect(c.databaseUrl).toBe('postgres://x@h/db');
    expect(c.providers.acme?.kind).toBe('standard-webhooks');
    expect(c.adminTokens).toEqual([{ name: 'env', token: 'abcdefghijklmnopqrstuvwxyz', role: 'operator' }]);
  });

  it('says which file is broken and how', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seigo-config-'));
    writeFileSync(join(dir, 'seigo.config.json'), '{ not json');
    expect(() => loadConfig({}, dir)).toThrowError(/seigo\.config\.json: not valid JSON/);
    expect(() => loadConfig({ SEIGO_CONFIG: join(dir, 'missing.json') }, dir)).toThrowError(/SEIGO_CONFIG names .*missing\.json, which does not exist/);
    expect(() => loadConfig({ SEIGO_PORT: 'eighty' }, mkdtempSync(join(tmpdir(), 'seigo-config-')))).toThrowError(/SEIGO_PORT must be a port number/);
  });
});

describe('iap configuration', () => {
  it('refuses an iap section whose billing provider is not declared as kind billing', () => {
    expect(() => parseConfig({ iap: { products: ['gold.monthly'] } })).toThrow(/iap\.billingProvider/);
    const c = parseConfig({ providers: { billing: { kind: 'billing', apiBase: 'http://127.0.0.1:9', apiKey: 'bk' } }, iap: { products: ['gold.monthly'] } });
    expect(c.iap).toMatchObject({ billingProvider: 'billing', appStoreProvider: 'app_store', googlePlayProvider: 'google_play' });
    expect(() => parseConfig({ providers: { app_store: { kind: 'app-store', bundleId: 'jp.example.app' } } })).toThrow(/appAppleId/);
  });
});
