import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { request } from 'undici';
import { createServer } from './server.ts';
import { admin } from '../../test/helpers/admin.ts';
import { eventually, secondEngine, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { partnerCall, setUpPartner, type TestPartner } from '../../test/helpers/partner.ts';

let t: TestEngine;
let a: TestPartner;
let b: TestPartner;
beforeAll(async () => {
  t = await startTestEngine({ config: { partners: { pool: { max: 2, acquireTimeoutMs: 60_000 }, rateLimit: { requests: 1000, windowSeconds: 60 } } } });
  a = await setUpPartner(t.url, 'alpha');
  b = await setUpPartner(t.url, 'bravo');
});
afterAll(async () => { await t?.close(); });

describe('partner keys', () => {
  it('shows a key once and keeps only its digest', async () => {
    expect(a.key).toMatch(/^pk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const got = await admin<{ keys: Record<string, unknown>[] }>(t.url, 'GET', '/partners/alpha');
    expect(got.json.keys).toHaveLength(1);
    expect(JSON.stringify(got.json)).not.toContain(a.key.split('.')[1]);
    const row = await t.tdb.db.pool.query<{ secret_sha256: Buffer }>('SELECT secret_sha256 FROM partner_api_keys WHERE id = $1', [a.keyId]);
    expect(row.rows[0]!.secret_sha256).toHaveLength(32);
  });

  it('refuses a missing, malformed or wrong key with 401', async () => {
    expect((await partnerCall(t.url, 'GET', '/products', null)).json).toMatchObject({ status: 401, code: 'unauthorized' });
    expect((await partnerCall(t.url, 'GET', '/products', 'nonsense')).json).toMatchObject({ status: 401, code: 'invalid_key' });
    const wrong = `${a.keyId}.${'A'.repeat(43)}`;
    expect((await partnerCall(t.url, 'GET', '/products', wrong)).json).toMatchObject({ status: 401, code: 'invalid_key' });
  });

  it('refuses a revoked key at once', async () => {
    const k = await admin<{ id: string; key: string }>(t.url, 'POST', '/partners/alpha/keys', { scopes: ['products:read'] });
    expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).status).toBe(200);
    expect((await admin(t.url, 'POST', `/partners/alpha/keys/${k.json.id}/revoke`)).status).toBe(200);
    expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).json).toMatchObject({ status: 401, code: 'key_revoked' });
  });

  it('rotates with an overlap: both keys work until it ends, then the old one is expired', async () => {
    const k = await admin<{ id: string; key: string }>(t.url, 'POST', '/partners/alpha/keys', { scopes: ['products:read'] });
    const r = await admin<{ id: string; key: string; scopes: string[] }>(t.url, 'POST', `/partners/alpha/keys/${k.json.id}/rotate`, { overlap_seconds: 3600 });
    expect(r.status).toBe(201);
    expect(r.json.scopes).toEqual(['products:read']);
    expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).status).toBe(200);
    expect((await partnerCall(t.url, 'GET', '/products', r.json.key)).status).toBe(200);
    // Rotating again with no overlap ends the old key's life now.
    await admin(t.url, 'POST', `/partners/alpha/keys/${k.json.id}/rotate`, { overlap_seconds: 0 });
    expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).json).toMatchObject({ status: 401, code: 'key_expired' });
    expect((await partnerCall(t.url, 'GET', '/products', r.json.key)).status).toBe(200);
  });

  it('refuses a key without the route\'s scope with 403', async () => {
    const k = await admin<{ key: string }>(t.url, 'POST', '/partners/alpha/keys', { scopes: ['tickets:read'] });
    expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).json).toMatchObject({ status: 403, code: 'insufficient_scope' });
    expect((await partnerCall(t.url, 'GET', `/gates/${a.gateId}`, k.json.key)).json).toMatchObject({ status: 403, code: 'insufficient_scope' });
  });

  it('refuses unknown scopes and partners in the admin API', async () => {
    expect((await admin(t.url, 'POST', '/partners/alpha/keys', { scopes: ['ledger:read'] })).status).toBe(400);
    expect((await admin(t.url, 'POST', '/partners/nobody/keys', { scopes: ['products:read'] })).json).toMatchObject({ code: 'partner_not_found' });
    expect((await admin(t.url, 'POST', '/partners', { name: 'alpha' })).json).toMatchObject({ status: 409, code: 'partner_exists' });
    // A key is revoked only through its own partner's path.
    expect((await admin(t.url, 'POST', `/partners/bravo/keys/${a.keyId}/revoke`)).json).toMatchObject({ status: 404, code: 'key_not_found' });
  });
});

describe('isolation', () => {
  it('shows a partner its own products and gates, and another partner\'s as 404', async () => {
    const list = await partnerCall<{ data: { id: string }[] }>(t.url, 'GET', '/products', a.key);
    expect(list.json.data.map((p) => p.id)).toEqual([a.productId]);
    expect((await partnerCall(t.url, 'GET', `/products/${a.productId}`, a.key)).status).toBe(200);
    expect((await partnerCall(t.url, 'GET', `/products/${b.productId}`, a.key)).json).toMatchObject({ status: 404, code: 'product_not_found' });
    expect((await partnerCall(t.url, 'GET', `/gates/${a.gateId}`, a.key)).status).toBe(200);
    expect((await partnerCall(t.url, 'GET', `/gates/${b.gateId}`, a.key)).json).toMatchObject({ status: 404, code: 'gate_not_found' });
  });

  it('runs partner traffic as seigo_partner: no ledger, no cases, no keys, only its own rows', async () => {
    const c = await t.engine.partnerDb.pool.connect();
    try {
      expect((await c.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u).toBe('seigo_partner');
      for (const table of ['ledger_accounts', 'ledger_entries', 'cases', 'partner_api_keys', 'partner_rate_windows', 'partners', 'deposits', 'inbox', 'outbox_messages']) {
        await expect(c.query(`SELECT 1 FROM ${table} LIMIT 1`)).rejects.toThrow(/permission denied/);
      }
      await expect(c.query('SELECT private_pkcs8 FROM ticket_signing_keys')).rejects.toThrow(/permission denied/);
      expect((await c.query('SELECT id FROM partner_products')).rowCount).toBe(0);
      expect((await c.query('SELECT id FROM tickets')).rowCount).toBe(0);
      await c.query('BEGIN');
      await c.query(`SET LOCAL seigo.partner_id = '${a.id}'`);
      expect((await c.query<{ id: string }>('SELECT id FROM partner_products')).rows.map((r) => r.id)).toEqual([a.productId]);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After and RateLimit headers past the key\'s limit, counted across API processes', async () => {
    const k = await admin<{ key: string }>(t.url, 'POST', '/partners/alpha/keys', { scopes: ['products:read'], rate_limit: { requests: 3, window_seconds: 86_400 } });
    const other = secondEngine(t);
    const app2 = await createServer(other.engine);
    await app2.listen({ port: 0, host: '127.0.0.1' });
    const addr = app2.server.address();
    const url2 = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';
    try {
      const first = await partnerCall(t.url, 'GET', '/products', k.json.key);
      expect(first.status).toBe(200);
      expect(first.headers['ratelimit-policy']).toBe('"per-key";q=3;w=86400');
      expect(first.headers.ratelimit).toMatch(/^"per-key";r=2;t=\d+$/);
      expect((await partnerCall(url2, 'GET', '/products', k.json.key)).status).toBe(200);
      expect((await partnerCall(t.url, 'GET', '/products', k.json.key)).status).toBe(200);
      const over = await partnerCall(url2, 'GET', '/products', k.json.key);
      expect(over.json).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
      expect(over.headers.ratelimit).toMatch(/^"per-key";r=0;t=\d+$/);
      // Another key of the same partner has its own window.
      expect((await partnerCall(t.url, 'GET', '/products', a.key)).status).toBe(200);
    } finally {
      await app2.close();
      await other.close();
    }
  });
});

describe('a partner flood', () => {
  it('saturates only the partner pool: internal routes still answer', async () => {
    // Hold every partner request inside its transaction: a lock on the products table.
    const locker = new pg.Client({ connectionString: t.tdb.url });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE partner_products IN ACCESS EXCLUSIVE MODE');
    const flood = Array.from({ length: 12 }, () => partnerCall(t.url, 'GET', '/products', a.key));
    try {
      const pool = t.engine.partnerDb.pool;
      await eventually(async () => pool.totalCount === 2 && pool.idleCount === 0 && pool.waitingCount > 0);
      const internal = await admin<{ data: unknown[] }>(t.url, 'GET', '/partners');
      expect(internal.status).toBe(200);
      const ready = await request(`${t.url}/readyz`);
      expect(ready.statusCode).toBe(200);
      await ready.body.dump();
      // The partner pool is still saturated while the internal side answered.
      expect(pool.waitingCount).toBeGreaterThan(0);
    } finally {
      await locker.query('COMMIT');
      await locker.end();
    }
    expect((await Promise.all(flood)).map((r) => r.status)).toEqual(Array(12).fill(200));
  });
});
