// Fuzzes every public route over real HTTP on loopback: whatever arrives, the server answers
// (never a dropped connection), never with a 5xx, and every 4xx is problem+json naming its status
// and a stable code. Notifications accepted before the run come out of it unchanged.
import fc from 'fast-check';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedHeaders } from '../providers/standard-webhooks/index.ts';
import { OPERATOR_TOKEN, TEST_SECRET, VIEWER_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import { sendWebhook } from '../../test/helpers/webhooks.ts';

let t: TestEngine;
let http: Pool;
const seeded: { id: string; eventId: string }[] = [];
let inboxBefore: unknown[] = [];
/** Every (method, path template) the server documents, plus the unlisted operational routes. */
const routes: { method: string; path: string; bodyFields: string[] }[] = [];

const INBOX_SNAPSHOT = `SELECT id, provider, event_id, source, headers, encode(body, 'hex') AS body, received_at
                        FROM inbox WHERE id = ANY($1::uuid[]) ORDER BY id`;

beforeAll(async () => {
  t = await startTestEngine();
  http = new Pool(t.url, { connections: 4 });
  for (const id of ['msg_fuzz_seed_1', 'msg_fuzz_seed_2', 'msg_fuzz_seed_3']) {
    const r = await sendWebhook(t.url, { id, type: 'order.paid', data: { id: `ord_${id}`, amount: 1200 } });
    expect(r.status).toBe(200);
    seeded.push({ id: String(r.json.id), eventId: id });
  }
  inboxBefore = (await t.tdb.db.pool.query(INBOX_SNAPSHOT, [seeded.map((s) => s.id)])).rows;
  expect(inboxBefore).toHaveLength(3);

  const doc = await (await request(`${t.url}/openapi.json`)).body.json() as {
    paths: Record<string, Record<string, { requestBody?: { content: { 'application/json'?: { schema: { properties?: Record<string, unknown> } } } } }>>;
  };
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      routes.push({ method: method.toUpperCase(), path, bodyFields: Object.keys(op.requestBody?.content['application/json']?.schema.properties ?? {}) });
    }
  }
});

afterAll(async () => {
  await http?.close();
  await t?.close();
});

// ---- generators

const HEADER_VALUE = /^[\t\x20-\x7e]*$/;
const printable = (max: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max });
/** Path or query text as it goes on the wire: already percent-encoded, or deliberately malformed. */
const wireText = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent),
  fc.string({ unit: 'binary', maxLength: 20 }).map(encodeURIComponent),
  fc.uuid().map(String),
  fc.constantFrom(
    '..', '.', '%2e%2e', '%2E%2E%2F..', '%00', 'a%00b', '%zz', '%', '%E0%A4%A', '%C0%AF', '%C0%80', '%ED%A0%80', '%FF%FE', '%2F', 'x%2Fy',
    '%F0%9F%92%A9', '%E3%81%82', '00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
    '0190f5a4-9d8e-7b3c-8a1f-2b3c4d5e6f70', 'acme', 'nobody', 'pending', 'dead', 'true', '-1', '0', '1e3', '501', 'NaN', 'Infinity',
    '-100000-01-01', '+275760-09-13T00:00:00.000Z', '-271821-04-20T00:00:00Z', '0000-01-01', '9999-12-31T23:59:59Z', '2024-02-30',
    '%27%3B%20DROP%20TABLE%20inbox%3B--', '%22', '%5C', '%0D%0A', 'null', '[]', '{}',
  ),
  fc.integer({ min: 200, max: 400 }).map((n) => 'a'.repeat(n)),
  fc.integer({ min: 1, max: 60 }).map((n) => '%E3%81%82'.repeat(n)),
);

/** Any instant JavaScript can hold (±273,790 years), as an ISO string: most are beyond what PostgreSQL holds. */
const anyDate = fc.oneof(
  fc.integer({ min: -8.64e15, max: 8.64e15 }).map((ms) => new Date(ms).toISOString()),
  fc.integer({ min: 0, max: 4_102_444_800_000 }).map((ms) => new Date(ms).toISOString()),
);
const duration = fc.oneof(
  fc.nat(), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  fc.tuple(fc.stringMatching(/^\d{1,22}(\.\d{1,3})?$/), fc.constantFrom('ms', 's', 'm', 'min', 'h', 'd', 'w', '')).map(([n, u]) => `${n}${u}`),
);
/** Text that PostgreSQL's text and jsonb cannot hold: NUL, and halves of surrogate pairs. */
const unstorable = fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udfff', 'order.\u0000');
const withUnstorable = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 6, arbitrary: arb as fc.Arbitrary<T | string> }, { weight: 1, arbitrary: unstorable });
const knownQueryKeys = ['status', 'provider', 'received_before', 'created_before', 'starting_after', 'limit', 'overdue', 'subscription', 'since', 'until', 'ids', 'id'];
const queryValue = fc.oneof(wireText, anyDate.map(encodeURIComponent), fc.integer().map(String), fc.constantFrom('%00', 'a%00b'));
const queryString = fc.oneof(
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 4, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...knownQueryKeys), wireText), queryValue), { maxLength: 5 })
    .map((kv) => `?${kv.map(([k, v]) => `${k}=${v}`).join('&')}`) },
  { weight: 1, arbitrary: fc.constantFrom('?', '?&&&', '?=', '?==x', '?a[b]=c', '?limit=1&limit=2', '?status=pending&status=failed', '?%', '?__proto__=x', '?constructor[prototype][x]=1') },
);

// Mostly a valid token, so that most requests get past the auth hook into validation and the handlers.
const authorization = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constant(`Bearer ${VIEWER_TOKEN}`) },
  { weight: 8, arbitrary: fc.constant(`Bearer ${OPERATOR_TOKEN}`) },
  { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', `bearer ${OPERATOR_TOKEN}`, `Bearer  ${OPERATOR_TOKEN} x`, `Basic ${Buffer.from('a:b').toString('base64')}`,
    `Bearer ${OPERATOR_TOKEN.slice(0, -1)}`, `Bearer ${'x'.repeat(8000)}`, 'Bearer \tabc', `Bearer ${VIEWER_TOKEN}${OPERATOR_TOKEN}`) },
  { weight: 1, arbitrary: printable(200) },
);

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'application/json; charset=utf-16',
    'text/plain', 'application/octet-stream', 'application/x-www-form-urlencoded', 'multipart/form-data', 'multipart/form-data; boundary=x',
    'application/problem+json', '', ';;;', 'application/json, text/plain', 'APPLICATION/JSON', 'application/json;', 'application/jsonx', '*/*') },
  { weight: 1, arbitrary: printable(80) },
);

const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'expect', 'te', 'trailer',
  'proxy-connection', 'authorization', 'content-type', 'content-encoding']);
const extraHeaders = fc.dictionary(
  fc.stringMatching(/^[a-z][a-z0-9-]{0,24}$/).filter((h) => !RESERVED_HEADERS.has(h)),
  fc.oneof(printable(100), fc.integer({ min: 1000, max: 6000 }).map((n) => 'h'.repeat(n))),
  { maxKeys: 4 },
).filter((h) => Object.values(h).reduce((n, v) => n + v.length, 0) < 9000);

/** Values of the right names and the wrong (or right) types. */
const fieldValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    '\u0000', 'a\u0000b', '\ud800', 'x\udfff', '', ' ', 'dead', 'pending', 'paused', 'acme', 'order.paid', '*', 'order.*',
    '-100000-01-01T00:00:00Z', '+275760-09-13T00:00:00.000Z', '0000-01-01', '1970-01-01', '2024-01-01T00:00:00Z', 'yesterday',
    -1, 0, 1, 2 ** 31, 2 ** 53, 1e308, -1e308, 0.5, true, false, null, [], {}, ['dead'], ['sending'],
    ['99999999999999999999d'], ['1e3s'], [2 ** 53 - 1], [-1], ['5s', 60_000],
    { type: 'handler', handler: 'h' }, { type: 'http', url: 'http://127.0.0.1:1/hook' }, { type: 'http', url: 'javascript:alert(1)' },
    { type: 'http', url: 'http://x', timeout_ms: '99999999999999999999d' }, { type: 'nope' },
    { a: '\u0000' }, { '\u0000': 1 }, { k: '\ud800' }, JSON.parse('{"__proto__":{"polluted":true}}') as unknown,
    ['0190f5a4-9d8e-7b3c-8a1f-2b3c4d5e6f70'], ['not-a-uuid'],
  ),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.integer({ min: 150, max: 600 }).map((n) => 'n'.repeat(n)),
);

const deepJson = fc.tuple(fc.integer({ min: 50, max: 20_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) =>
  open === '[' ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + '1' + '}'.repeat(n));

const subscriptionTarget = fc.oneof(
  fc.record({ type: fc.constant('handler'), handler: fc.string({ maxLength: 20 }) }),
  fc.record({ type: fc.constant('http'), url: fc.oneof(fc.webUrl(), fc.string({ maxLength: 30 })), timeout_ms: duration, secret: fc.string({ maxLength: 40 }) }, { requiredKeys: ['type', 'url'] }),
);
/** Values shaped for the fields the admin API knows, so that many bodies get past validation and reach SQL. */
const FIELD_VALUES: Record<string, fc.Arbitrary<unknown>> = {
  since: anyDate, until: anyDate, received_before: anyDate, created_before: anyDate,
  provider: withUnstorable(fc.constantFrom('acme', 'nobody', '')),
  name: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/),
  topic: withUnstorable(fc.oneof(fc.constantFrom('order.paid', 'order.*', '*', 't'), fc.string({ maxLength: 20 }))),
  target: subscriptionTarget,
  retry_schedule: fc.array(duration, { maxLength: 4 }),
  filter: fc.dictionary(withUnstorable(fc.string({ maxLength: 8 })), withUnstorable(fc.jsonValue({ maxDepth: 2 })), { maxKeys: 3 }),
  status: fc.constantFrom('active', 'paused', 'disabled', 'dead', 'pending'),
  reason: withUnstorable(fc.string({ maxLength: 40 })),
  payload: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.dictionary(unstorable, fc.jsonValue({ maxDepth: 1 }), { minKeys: 1, maxKeys: 2 }), fc.array(unstorable, { minLength: 1, maxLength: 2 })),
  key: withUnstorable(fc.string({ maxLength: 40 })),
  attributes: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 10 }), fc.double(), fc.boolean()), { maxKeys: 3 }),
  ids: fc.array(fc.uuid(), { maxLength: 3 }),
  statuses: fc.array(fc.constantFrom('dead', 'pending', 'cancelled', 'sending'), { maxLength: 3 }),
  subscription: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/),
};
const valueFor = (field: string, shapedWeight: number) =>
  FIELD_VALUES[field] ? fc.oneof({ weight: shapedWeight, arbitrary: FIELD_VALUES[field] }, { weight: 1, arbitrary: fieldValue }) : fieldValue;

/** A JSON object with the documented fields, each usually present and usually of a plausible shape. */
function shapedBody(fields: string[], shapedWeight: number): fc.Arbitrary<string> {
  const present = fc.tuple(...fields.map((f) => fc.option(valueFor(f, shapedWeight), { freq: 6, nil: undefined })))
    .map((vals) => Object.fromEntries(fields.flatMap((f, i) => (vals[i] === undefined ? [] : [[f, vals[i]]]))));
  // Now and then an unknown extra field, which strict schemas refuse.
  const extra = fc.oneof({ weight: 6, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fieldValue, { maxKeys: 2 }) });
  return fc.tuple(present, extra).map(([o, x]) => JSON.stringify({ ...o, ...x }));
}

function bodyFor(fields: string[]): fc.Arbitrary<string | Uint8Array | undefined> {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 8, arbitrary: shapedBody(fields, 3) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 4096 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: deepJson },
    { weight: 1, arbitrary: fc.constantFrom('', '{', 'null', '"x"', '[1,2', '{"a":1}{"b":2}', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}',
      '{"topic":"t","payload":"\\u0000"}', '{"topic":"t","payload":{"a":"\\ud800"}}', '{"topic":"t\\u0000","payload":1}', '\uFEFF{}', 'tru') },
  );
}

interface FuzzRequest { method: string; path: string; headers: Record<string, string>; body: string | Uint8Array | undefined }

const METHODS = ['GET', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS'];

/** The path of a route with its parameters filled in: ids that exist, uuids, names, or junk. */
function fillPath(path: string): fc.Arbitrary<string> {
  const param = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...seeded.map((s) => s.id)) },
    { weight: 2, arbitrary: FIELD_VALUES.name! as fc.Arbitrary<string> },
    { weight: 7, arbitrary: wireText },
    { weight: 1, arbitrary: fc.constantFrom('%00', 'a%00b', 'order%00') },
  );
  return fc.tuple(fc.array(param, { minLength: 3, maxLength: 3 }), queryString, fc.boolean()).map(([vals, q, slash]) => {
    let i = 0;
    return path.replace(/\{[A-Za-z_]+\}/g, () => vals[i++ % vals.length]!) + (slash ? '/' : '') + q;
  });
}

/** An operator's well-formed request to a route that takes a body: it passes auth and parsing, and often validation. */
function authorizedRequest(): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...routes.filter((r) => r.bodyFields.length > 0 || r.method !== 'GET')).chain((r) => fc.record({
    path: fillPath(r.path), body: shapedBody(r.bodyFields, 8),
  }).map(({ path, body }) => ({ method: r.method, path, body, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' } })));
}

function routeRequest(): fc.Arbitrary<FuzzRequest> {
  return fc.constantFrom(...routes).chain((r) => fc.record({
    method: fc.oneof({ weight: 6, arbitrary: fc.constant(r.method) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }),
    path: fillPath(r.path),
    auth: authorization, ct: contentType, extra: extraHeaders, body: bodyFor(r.bodyFields),
  })).map(({ method, path, auth, ct, extra, body }) => ({
    method, path, body: method === 'GET' || method === 'HEAD' ? undefined : body,
    headers: { ...extra, ...(auth === undefined ? {} : { authorization: auth }), ...(ct === undefined ? {} : { 'content-type': ct }) },
  // Node refuses headers over 16 KB in all with a bare 431 before any of our code runs; stay under it.
  })).filter((r) => Object.values(r.headers).reduce((n, v) => n + v.length, 0) < 14_000);
}

/** Paths that match no route or only part of one. */
const strayRequest: fc.Arbitrary<FuzzRequest> = fc.record({
  method: fc.constantFrom(...METHODS),
  path: fc.tuple(fc.constantFrom('', '/admin/v1', '/admin', '/webhooks', '/admin/v1/inbox', '/console'), fc.array(wireText, { maxLength: 4 }), queryString)
    .map(([base, segs, q]) => `${base}/${segs.join('/')}${q}`),
  auth: authorization, ct: contentType, body: bodyFor([]),
}).map(({ method, path, auth, ct, body }) => ({
  method, path, body: method === 'GET' || method === 'HEAD' ? undefined : body,
  headers: { ...(auth === undefined ? {} : { authorization: auth }), ...(ct === undefined ? {} : { 'content-type': ct }) },
}));

/** Notifications: unsigned junk, or correctly signed junk (new ids, and the ids of rows already accepted). */
const webhookRequest: fc.Arbitrary<FuzzRequest> = fc.record({
  provider: fc.oneof({ weight: 4, arbitrary: fc.constant('acme') }, { weight: 1, arbitrary: wireText }),
  body: fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))) },
    // Shaped like a Standard Webhooks payload, with every field sometimes wrong.
    { weight: 3, arbitrary: fc.record({
      type: fc.oneof({ weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) }, { weight: 1, arbitrary: fieldValue }),
      timestamp: fc.oneof(anyDate, fieldValue),
      data: fc.oneof({ weight: 4, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fieldValue, { maxKeys: 3 }) }, { weight: 1, arbitrary: fieldValue }),
    }, { requiredKeys: ['type', 'data'] }).map((v) => Buffer.from(JSON.stringify(v))) },
    { weight: 1, arbitrary: deepJson.map((s) => Buffer.from(s)) },
  ),
  signing: fc.oneof(
    { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), id: printable(300), ts: printable(20), sig: printable(200) }) },
    { weight: 4, arbitrary: fc.record({
      kind: fc.constant('signed' as const),
      id: fc.oneof(fc.constantFrom('msg_fuzz_seed_1', 'msg_fuzz_seed_2', 'msg_fuzz_seed_3'), printable(40).filter((s) => s.trim() === s && s.length > 0),
        fc.integer({ min: 256, max: 400 }).map((n) => 'i'.repeat(n))),
      skewSeconds: fc.constantFrom(0, 0, 0, -400, 400),
    }) },
  ),
  ct: contentType,
}).map(({ provider, body, signing, ct }) => {
  const headers: Record<string, string> = ct === undefined ? {} : { 'content-type': ct };
  if (signing.kind === 'junk') Object.assign(headers, { 'webhook-id': signing.id, 'webhook-timestamp': signing.ts, 'webhook-signature': signing.sig });
  if (signing.kind === 'signed') Object.assign(headers, signedHeaders(TEST_SECRET, signing.id, body, new Date(Date.now() + signing.skewSeconds * 1000)));
  return { method: 'POST', path: `/webhooks/${provider}`, headers, body };
});

// ---- the property

const seen = new Map<number, number>();
/** SEIGO_FUZZ_SCALE=20 runs twenty times as many cases (for a long hunt; the default stays quick). */
const SCALE = Math.max(1, Number(process.env.SEIGO_FUZZ_SCALE ?? 1));

async function send(r: FuzzRequest): Promise<{ status: number; contentType: string; text: string }> {
  for (const [k, v] of Object.entries(r.headers)) if (!HEADER_VALUE.test(v)) throw new Error(`generator produced an unsendable header ${k}`);
  const res = await http.request({ method: r.method, path: r.path, headers: r.headers, body: r.body ?? null });
  const text = await res.body.text();
  return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text };
}

async function answersWell(r: FuzzRequest): Promise<void> {
  const res = await send(r);
  seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
  const where = `${r.method} ${r.path.slice(0, 300)} → ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, where).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.contentType, where).toMatch(/^application\/problem\+json/);
    if (r.method !== 'HEAD') {
      const p = JSON.parse(res.text) as { status?: unknown; code?: unknown };
      expect(p.status, where).toBe(res.status);
      expect(typeof p.code, where).toBe('string');
    }
  }
}

describe('fuzzing the public HTTP surface', () => {
  it('answers any request to a documented route with < 500 and problem+json for every 4xx', async () => {
    expect(routes.length).toBeGreaterThan(15);
    await fc.assert(fc.asyncProperty(routeRequest(), answersWell), { numRuns: 200 * SCALE });
  });

  it('answers an operator\'s well-formed requests with plausible and implausible bodies the same way', async () => {
    await fc.assert(fc.asyncProperty(authorizedRequest(), answersWell), { numRuns: 150 * SCALE });
  });

  it('answers stray paths and methods the same way', async () => {
    await fc.assert(fc.asyncProperty(strayRequest, answersWell), { numRuns: 50 * SCALE });
  });

  it('answers any notification, signed or not, the same way', async () => {
    await fc.assert(fc.asyncProperty(webhookRequest, answersWell), { numRuns: 100 * SCALE });
  });

  it('reached the handlers (not only the auth hook), and the server is still well afterwards', async () => {
    // A fuzz run that never got past validation would prove little.
    expect(seen.get(200) ?? 0).toBeGreaterThan(0);
    expect(seen.get(400) ?? 0).toBeGreaterThan(0);
    expect(seen.get(401) ?? 0).toBeGreaterThan(0);
    expect(seen.get(404) ?? 0).toBeGreaterThan(0);
    const health = await request(`${t.url}/healthz`);
    expect(health.statusCode).toBe(200);
    expect(await health.body.json()).toEqual({ status: 'ok' });
    const ready = await request(`${t.url}/readyz`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    // What was accepted before is byte for byte what it was: duplicates and replays never rewrite a notification.
    const after = (await t.tdb.db.pool.query(INBOX_SNAPSHOT, [seeded.map((s) => s.id)])).rows;
    expect(after).toEqual(inboxBefore);
    const n = await t.tdb.db.pool.query(`SELECT count(*)::int AS n FROM inbox WHERE provider = 'acme' AND event_id LIKE 'msg_fuzz_seed_%'`);
    expect(n.rows[0].n).toBe(3);
  });
});

// Each of these once answered 500 (or plain JSON); found by the properties above and kept as examples.
describe('inputs the fuzzer found', () => {
  const operator = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await send({ method, path, headers: operator, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    return { ...res, json: JSON.parse(res.text || 'null') as { status?: number; code?: string; detail?: string } | null };
  };
  const refused = (status: number, code: string) => expect.objectContaining({ status, contentType: expect.stringMatching(/^application\/problem\+json/), json: expect.objectContaining({ status, code }) });

  it('malformed percent-encoding and over-long path parameters are problem+json, not Fastify\'s plain JSON', async () => {
    expect(await call('GET', '/%E0%A4%A')).toEqual(refused(400, 'invalid_request'));
    expect(await call('GET', `/admin/v1/status/order/${'a'.repeat(301)}`)).toEqual(refused(414, 'uri_too_long'));
  });

  it('text PostgreSQL cannot store (NUL, unpaired surrogates) is refused as 400 wherever it appears', async () => {
    expect(await call('GET', '/admin/v1/subscriptions/%00')).toEqual(refused(400, 'invalid_request'));
    expect(await call('GET', '/admin/v1/status/order/a%00b')).toEqual(refused(400, 'invalid_request'));
    expect(await call('GET', '/admin/v1/inbox?provider=%00')).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/messages', '{"topic":"t","payload":{"a":"\\u0000"}}')).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/messages', '{"topic":"t","payload":{"\\u0000":1}}')).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/messages', '{"topic":"t","payload":{"a":"\\ud800"}}')).toEqual(refused(400, 'invalid_request'));
    // A well-formed pair is fine, and so is text that merely looks odd.
    expect((await call('POST', '/admin/v1/messages', '{"topic":"t","payload":{"a":"\\ud83d\\udca9 ..\\/%00"}}')).status).toBe(201);
  });

  it('JSON nested deeper than the limit is refused as 400; the limit itself is accepted', async () => {
    const nest = (n: number) => `{"topic":"t","payload":${'['.repeat(n)}${']'.repeat(n)}}`;
    const deep = await call('POST', '/admin/v1/messages', nest(5_000));
    expect(deep).toEqual(refused(400, 'invalid_request'));
    expect(deep.json?.detail).toMatch(/deeper than 64/);
    expect((await call('POST', '/admin/v1/messages', nest(63))).status).toBe(201);
  });

  it('dates PostgreSQL cannot hold are refused as 400 in queries and bodies', async () => {
    expect(await call('GET', '/admin/v1/inbox?received_before=-100000-01-01T00:00:00Z')).toEqual(refused(400, 'invalid_request'));
    expect(await call('GET', '/admin/v1/deliveries?created_before=%2B275760-09-13T00:00:00.000Z')).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/inbox/replay', { provider: 'acme', since: '-004713-11-23T23:59:59.999Z' })).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/deliveries/redrive', { until: '-004713-11-23T23:59:59.999Z' })).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/subscriptions/fuzz-dates/backfill', { since: '-100000-01-01T00:00:00Z' })).toEqual(refused(400, 'invalid_request'));
    // Ordinary ranges still work.
    expect((await call('GET', '/admin/v1/inbox?received_before=9999-12-31T00:00:00Z')).status).toBe(200);
    expect((await call('POST', '/admin/v1/inbox/replay', { provider: 'nobody', since: '2020-01-01', until: '2030-01-01' })).status).toBe(202);
  });

  it('subscription durations that would overflow a timestamp or the delivery claim are refused as 400', async () => {
    const sub = (extra: Record<string, unknown>) => ({ name: 'fuzz-durations', topic: 'order.paid', target: { type: 'handler', handler: 'h' }, ...extra });
    expect(await call('POST', '/admin/v1/subscriptions', sub({ retry_schedule: ['99999999999999999999d'] }))).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/subscriptions', sub({ retry_schedule: [Number.MAX_SAFE_INTEGER] }))).toEqual(refused(400, 'invalid_request'));
    expect(await call('POST', '/admin/v1/subscriptions', sub({ target: { type: 'http', url: 'http://127.0.0.1:9/hook', timeout_ms: '99999999999999999999d' } }))).toEqual(refused(400, 'invalid_request'));
    const ok = await call('POST', '/admin/v1/subscriptions', sub({ retry_schedule: ['5s', '30d'], target: { type: 'http', url: 'http://127.0.0.1:9/hook', timeout_ms: '10min' } }));
    expect(ok.status).toBe(201);
    const n = await t.tdb.db.pool.query(`SELECT retry_schedule_ms FROM subscriptions WHERE name = 'fuzz-durations'`);
    expect(n.rows[0].retry_schedule_ms.map(Number)).toEqual([5_000, 30 * 86_400_000]);
  });
});

describe('requests Node refuses before routing', () => {
  it('answers headers over 16 KB with 431 problem+json', async () => {
    const { connect } = await import('node:net');
    const u = new URL(t.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(u.port), u.hostname, () => {
        s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      });
      let out = '';
      s.on('data', (d) => { out += d.toString(); });
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 431 /);
    expect(raw).toContain('application/problem+json');
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ status: 431, code: 'headers_too_large' });
  });
});
