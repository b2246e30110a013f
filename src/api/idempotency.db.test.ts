// Idempotency keys and API client auth over real HTTP on loopback, on a real PostgreSQL: a test app
// with the two plugins and a route whose side effect is a row, so "ran once" is a row count.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { randomUUID } from 'node:crypto';
import { apiClientAuth } from './api-clients.ts';
import pg from 'pg';
import { IDEMPOTENCY_OWNER_LOCK_CLASS, idempotency, idempotencyPruneJob, pruneIdempotencyKeys, requestHash } from './idempotency.ts';
import { BadRequestError, NotFoundError, SeigoError, problem } from '../kernel/errors.ts';
import { eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const ACME_KEY = 'acme-client-key-0123456789abcdef';
const GLOBEX_KEY = 'globex-client-key-0123456789abcd';

let t: TestEngine;
let app: FastifyInstance;
let url: string;
/** How many times the flaky mode has thrown, per idempotency key. */
const thrown = new Map<string, number>();
/** Gates a request's handler waits on (body.gate), so a test decides when it finishes, not the clock. */
const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
function gate(name: string): () => void {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  gates.set(name, { open, opened });
  return open;
}

beforeAll(async () => {
  t = await startTestEngine({ config: { apiClients: [{ name: 'acme', key: ACME_KEY }, { name: 'globex', key: GLOBEX_KEY, scopes: ['deposits'] }] } });
  await t.tdb.db.pool.query('CREATE TABLE test_effects (id serial PRIMARY KEY, client text NOT NULL, ref text NOT NULL, amount int NOT NULL)');
  app = Fastify({ logger: false });
  // The server's own error handler is not exported; this one renders errors the same way.
  app.setErrorHandler((error: Error, _req, reply) => {
    const status = error instanceof SeigoError ? error.status : 500;
    const code = error instanceof SeigoError ? error.code : 'internal_error';
    void reply.code(status).type('application/problem+json').send(problem(status, code, status === 500 ? 'an unexpected error occurred' : error.message));
  });
  apiClientAuth(app, t.engine);
  idempotency(app, t.engine);
  app.post('/v1/things', { config: { apiClient: true } }, async (req, reply) => {
    const body = req.body as { ref: string; amount: number; mode?: string; sleepMs?: number; gate?: string };
    if (body.gate !== undefined) await gates.get(body.gate)?.opened;
    if (body.amount < 0) throw new BadRequestError('invalid_request', 'invalid body: amount: must be at least 0');
    const key = req.headers['idempotency-key'];
    if (body.mode === 'flaky' && typeof key === 'string' && !thrown.has(key)) {
      thrown.set(key, 1);
      throw new Error('database connection lost');
    }
    const { rows: [row] } = await t.tdb.db.pool.query<{ id: number }>(
      'INSERT INTO test_effects (client, ref, amount) SELECT $1, $2, $3 FROM pg_sleep($4::float8 / 1000) RETURNING id',
      [req.apiClient!.name, body.ref, body.amount, body.sleepMs ?? 0]);
    if (body.mode === 'decline') {
      return reply.code(402).type('application/problem+json').send(problem(402, 'card_declined', `declined (attempt ${row!.id})`));
    }
    if (body.mode === 'missing') throw new NotFoundError('not_found', `no account for ${body.ref} (attempt ${row!.id})`);
    return reply.code(201).send({ id: row!.id, client: req.apiClient!.name, ref: body.ref, amount: body.amount, at: Date.now() });
  });
  app.post('/v1/other', { config: { apiClient: true } }, async () => ({ ok: true }));
  app.get('/v1/things', { config: { apiClient: true } }, async (req) => ({ client: req.apiClient!.name, scopes: req.apiClient!.scopes }));
  app.get('/public', async () => ({ ok: true }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  url = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';
});
afterAll(async () => {
  await app.close();
  await t.close();
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; text: string; json: Record<string, unknown> }

async function call(path: string, body: unknown, opts: { key?: string | undefined; idem?: string; method?: 'POST' | 'GET' } = {}): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = 'key' in opts ? opts.key : ACME_KEY;
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (opts.idem !== undefined) headers['idempotency-key'] = opts.idem;
  const method = opts.method ?? 'POST';
  const r = await request(`${url}${path}`, { method, headers, ...(method === 'POST' ? { body: JSON.stringify(body) } : {}) });
  const text = await r.body.text();
  return { status: r.statusCode, headers: r.headers, text, json: text ? JSON.parse(text) as Record<string, unknown> : {} };
}

async function effects(ref: string): Promise<number> {
  const r = await t.tdb.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM test_effects WHERE ref = $1', [ref]);
  return r.rows[0]!.n;
}

describe('API client auth', () => {
  it('refuses a missing or wrong key with 401 problem+json, and names the client on the request', async () => {
    for (const key of [undefined, 'not-a-client-key-0123456789abcdef', `${ACME_KEY}x`]) {
      const r = await call('/v1/things', { ref: 'auth', amount: 1 }, { key });
      expect(r.status).toBe(401);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(r.json).toMatchObject({ status: 401, code: 'unauthorized' });
    }
    const basic = await request(`${url}/v1/things`, { headers: { authorization: `Basic ${Buffer.from(`acme:${ACME_KEY}`).toString('base64')}` } });
    expect(basic.statusCode).toBe(401);
    await basic.body.dump();
    expect(await effects('auth')).toBe(0);

    expect((await call('/v1/things', undefined, { method: 'GET' })).json).toEqual({ client: 'acme', scopes: [] });
    expect((await call('/v1/things', undefined, { method: 'GET', key: GLOBEX_KEY })).json).toEqual({ client: 'globex', scopes: ['deposits'] });
    // Routes without `apiClient` are not affected.
    expect((await call('/public', undefined, { method: 'GET', key: undefined })).status).toBe(200);
  });
});

describe('idempotency keys', () => {
  it('replays the first response exactly, with Idempotent-Replayed, and runs the handler once', async () => {
    const idem = randomUUID();
    const first = await call('/v1/things', { ref: 'replay', amount: 100 }, { idem });
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // Same body with other key order and spacing: the canonical JSON is the same.
    const r = await request(`${url}/v1/things`, {
      method: 'POST', body: '{ "amount": 100,   "ref": "replay" }',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}`, 'idempotency-key': idem },
    });
    const again = { status: r.statusCode, headers: r.headers, text: await r.body.text() };
    expect(again.status).toBe(201);
    expect(again.text).toBe(first.text);
    expect(again.headers['content-type']).toBe(first.headers['content-type']);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await effects('replay')).toBe(1);
  });

  it('refuses the same key with another body or another path (422), naming what differs', async () => {
    const idem = randomUUID();
    expect((await call('/v1/things', { ref: 'mismatch', amount: 1 }, { idem })).status).toBe(201);
    const body = await call('/v1/things', { ref: 'mismatch', amount: 2 }, { idem });
    expect(body.status).toBe(422);
    expect(body.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(body.json).toMatchObject({ code: 'idempotency_mismatch' });
    expect(body.json.detail).toMatch(/different request body/);
    const path = await call('/v1/other', { ref: 'mismatch', amount: 1 }, { idem });
    expect(path.status).toBe(422);
    expect(path.json.detail).toMatch(/POST \/v1\/things, not POST \/v1\/other/);
    expect(await effects('mismatch')).toBe(1);
  });

  it('runs exactly once for 20 concurrent requests with one key; the others get 409 or the replay', async () => {
    const idem = randomUUID();
    const answers = await Promise.all(Array.from({ length: 20 }, () => call('/v1/things', { ref: 'concurrent', amount: 5, sleepMs: 300 }, { idem })));
    expect(await effects('concurrent')).toBe(1);
    const ok = answers.filter((a) => a.status === 201);
    const conflicts = answers.filter((a) => a.status === 409);
    expect(ok.length + conflicts.length).toBe(20);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(new Set(ok.map((a) => a.text)).size).toBe(1);
    expect(ok.filter((a) => a.headers['idempotent-replayed'] !== 'true')).toHaveLength(1);
    for (const c of conflicts) {
      expect(c.json).toMatchObject({ code: 'idempotency_conflict', retryable: true });
      expect(c.headers['retry-after']).toBe('1');
    }
    // Afterwards every retry is the replay.
    const after = await call('/v1/things', { ref: 'concurrent', amount: 5, sleepMs: 300 }, { idem });
    expect(after.headers['idempotent-replayed']).toBe('true');
    expect(after.text).toBe(ok[0]!.text);
  });

  it('keeps a running request\'s key however long it runs: a retry meanwhile gets 409, not a second run', async () => {
    const idem = randomUUID();
    const open = gate(idem);
    const slow = call('/v1/things', { ref: 'slow', amount: 5, gate: idem }, { idem });
    const pool = t.tdb.db.pool;
    await eventually(async () => (await pool.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [idem])).rowCount);
    // Held by this live process, not by a lease: no clock decides when it lapses.
    const retry = await call('/v1/things', { ref: 'slow', amount: 5, gate: idem }, { idem });
    expect(retry.status).toBe(409);
    open();
    expect((await slow).status).toBe(201);
    expect(await effects('slow')).toBe(1);
  });

  it('scopes keys by client: two clients may use the same key independently', async () => {
    const idem = randomUUID();
    const a = await call('/v1/things', { ref: 'scoped', amount: 1 }, { idem });
    const b = await call('/v1/things', { ref: 'scoped', amount: 2 }, { idem, key: GLOBEX_KEY });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.headers['idempotent-replayed']).toBeUndefined();
    expect([a.json.client, b.json.client]).toEqual(['acme', 'globex']);
    expect(await effects('scoped')).toBe(2);
  });

  it('refuses an invalid key with 400 and runs nothing', async () => {
    for (const idem of ['', 'x'.repeat(256), 'clé', 'tab\there']) {
      const r = await call('/v1/things', { ref: 'invalid-key', amount: 1 }, { idem });
      expect(r.status, JSON.stringify(idem)).toBe(400);
      expect(r.json).toMatchObject({ code: 'invalid_idempotency_key' });
    }
    expect((await call('/v1/things', { ref: 'invalid-key', amount: 1 }, { idem: 'k'.repeat(255) })).status).toBe(201);
    expect(await effects('invalid-key')).toBe(1);
  });

  it('is optional: without a key every request runs', async () => {
    expect((await call('/v1/things', { ref: 'no-key', amount: 1 })).status).toBe(201);
    expect((await call('/v1/things', { ref: 'no-key', amount: 1 })).status).toBe(201);
    expect(await effects('no-key')).toBe(2);
  });

  it('replays a 4xx the handler returned or threw', async () => {
    for (const mode of ['decline', 'missing']) {
      const idem = randomUUID();
      const first = await call('/v1/things', { ref: `4xx-${mode}`, amount: 1, mode }, { idem });
      expect(first.status).toBe(mode === 'decline' ? 402 : 404);
      const again = await call('/v1/things', { ref: `4xx-${mode}`, amount: 1, mode }, { idem });
      expect(again.status).toBe(first.status);
      expect(again.text).toBe(first.text);
      expect(again.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(await effects(`4xx-${mode}`)).toBe(1);
    }
  });

  it('releases the key after an unexpected exception (500), so a retry runs again', async () => {
    const idem = randomUUID();
    const first = await call('/v1/things', { ref: 'flaky', amount: 1, mode: 'flaky' }, { idem });
    expect(first.status).toBe(500);
    const retry = await call('/v1/things', { ref: 'flaky', amount: 1, mode: 'flaky' }, { idem });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect((await call('/v1/things', { ref: 'flaky', amount: 1, mode: 'flaky' }, { idem })).headers['idempotent-replayed']).toBe('true');
    expect(await effects('flaky')).toBe(1);
  });

  it('releases the key after a validation failure, so the client may fix the body and reuse the key', async () => {
    const idem = randomUUID();
    expect((await call('/v1/things', { ref: 'fixed', amount: -1 }, { idem })).status).toBe(400);
    const fixed = await call('/v1/things', { ref: 'fixed', amount: 1 }, { idem });
    expect(fixed.status).toBe(201);
    expect(await effects('fixed')).toBe(1);
  });

  it('takes over a key from before owners (no owner) once its time lease has expired, and not before', async () => {
    const pool = t.tdb.db.pool;
    const body = { ref: 'crashed', amount: 7 };
    const insert = (idem: string, lockedFor: string) => pool.query(
      `INSERT INTO idempotency_keys (client, key, method, path, request_hash, locked_by, locked_until)
       VALUES ('acme', $1, 'POST', '/v1/things', $2, gen_random_uuid(), now() + $3::interval)`, [idem, requestHash(body), lockedFor]);
    const live = randomUUID();
    await insert(live, '1 minute');
    const busy = await call('/v1/things', body, { idem: live });
    expect(busy.status).toBe(409);

    const dead = randomUUID();
    await insert(dead, '-1 second');
    const taken = await call('/v1/things', body, { idem: dead });
    expect(taken.status).toBe(201);
    expect(await effects('crashed')).toBe(1);
    const row = await pool.query('SELECT status, response_status, locked_by FROM idempotency_keys WHERE client = $1 AND key = $2', ['acme', dead]);
    expect(row.rows[0]).toEqual({ status: 'done', response_status: 201, locked_by: null });
    // An expired lock with other parameters is still a mismatch, not a takeover.
    const other = randomUUID();
    await insert(other, '-1 second');
    expect((await call('/v1/things', { ...body, amount: 8 }, { idem: other })).status).toBe(422);
  });

  it('takes over a key at once when the process that owned it lost its owner lock, and not while it holds it', async () => {
    const pool = t.tdb.db.pool;
    const body = { ref: 'owner-died', amount: 9 };
    // Another process's owner: a session that holds the advisory lock, as IdempotencyOwner does.
    const other = new pg.Client({ connectionString: t.tdb.url });
    await other.connect();
    const ownerId = 424_242;
    expect((await other.query('SELECT pg_try_advisory_lock($1, $2) AS ok', [IDEMPOTENCY_OWNER_LOCK_CLASS, ownerId])).rows[0]).toEqual({ ok: true });
    const idem = randomUUID();
    await pool.query(
      `INSERT INTO idempotency_keys (client, key, method, path, request_hash, locked_by, locked_until, owner)
       VALUES ('acme', $1, 'POST', '/v1/things', $2, gen_random_uuid(), 'infinity', $3)`, [idem, requestHash(body), ownerId]);
    expect((await call('/v1/things', body, { idem })).status).toBe(409);
    // Its connection closes (the process was killed): the session lock goes with it.
    await other.end();
    const taken = await call('/v1/things', body, { idem });
    expect(taken.status).toBe(201);
    expect(taken.headers['idempotent-replayed']).toBeUndefined();
    expect(await effects('owner-died')).toBe(1);
    expect((await call('/v1/things', body, { idem })).headers['idempotent-replayed']).toBe('true');
  });

  it('prunes keys older than 24 hours, and no newer key nor one whose attempt still holds its lock', async () => {
    const pool = t.tdb.db.pool;
    const [old, fresh, oldLocked, oldCrashed] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const [oldOwned, oldOrphan] = [randomUUID(), randomUUID()];
    const holder = new pg.Client({ connectionString: t.tdb.url });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock($1, 77)', [IDEMPOTENCY_OWNER_LOCK_CLASS]);
    await pool.query(
      `INSERT INTO idempotency_keys (client, key, method, path, request_hash, locked_by, locked_until, owner, created_at)
       VALUES ('acme', $1, 'POST', '/v1/things', 'h', gen_random_uuid(), 'infinity', 77, now() - interval '25 hours'),
              ('acme', $2, 'POST', '/v1/things', 'h', gen_random_uuid(), 'infinity', 78, now() - interval '25 hours')`, [oldOwned, oldOrphan]);
    for (const idem of [old, fresh]) expect((await call('/v1/things', { ref: 'prune', amount: 1 }, { idem })).status).toBe(201);
    await pool.query(`UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1`, [old]);
    await pool.query(
      `INSERT INTO idempotency_keys (client, key, method, path, request_hash, locked_by, locked_until, created_at)
       VALUES ('acme', $1, 'POST', '/v1/things', 'h', gen_random_uuid(), now() + interval '1 minute', now() - interval '25 hours'),
              ('acme', $2, 'POST', '/v1/things', 'h', gen_random_uuid(), now() - interval '1 minute', now() - interval '25 hours')`, [oldLocked, oldCrashed]);
    const job = idempotencyPruneJob(pool);
    expect(job.name).toBe('api.prune-idempotency-keys');
    await job.run();
    const left = await pool.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE key = ANY($1)', [[old, fresh, oldLocked, oldCrashed, oldOwned, oldOrphan]]);
    expect(left.rows.map((r) => r.key).sort()).toEqual([fresh, oldLocked, oldOwned].sort());
    expect(await pruneIdempotencyKeys(pool)).toBe(0);
    // Its owner gone, the old key is pruned too.
    await holder.end();
    expect(await pruneIdempotencyKeys(pool)).toBe(1);
    // A pruned key is a new request again.
    const reused = await call('/v1/things', { ref: 'prune', amount: 2 }, { idem: old });
    expect(reused.status).toBe(201);
    expect(reused.headers['idempotent-replayed']).toBeUndefined();
  });
});
