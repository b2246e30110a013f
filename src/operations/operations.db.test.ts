// Outbound operations against a provider simulator over real HTTP on loopback: record → send →
// result, idempotency keys, declines, timeouts after success resolved by inquiry, refused
// connections, retries of idempotent calls, the circuit breaker, crash recovery by the janitor,
// integration status, and the state machine as a property.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { withTx } from '../kernel/db.ts';
import { createLogger } from '../kernel/logger.ts';
import { err, ok } from '../kernel/errors.ts';
import type { CallOutcome, InquiryResult, OperationRequest, ProviderAdapter } from '../providers/types.ts';
import { OPERATION_TRANSITIONS, type Operation, type OperationStatus, type RecordOperation } from './index.ts';
import { VIEWER_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

// ---- a provider simulator: charges keyed by Idempotency-Key, with faults injected per key

type ChargeFault =
  | 'http500' // answers 500 and records nothing
  | 'reset' // drops the connection before recording anything
  | 'slow' // answers correctly after a short delay, well inside the client's timeout
  | 'hang'; // records the charge, then never answers: a timeout after success
type InquiryFault = 'unavailable';

interface Charge { id: string; status: 'succeeded' | 'failed'; amount: number; currency: string; code?: string; message?: string }

class ProviderSimulator {
  private server: Server | undefined;
  private port = 0;
  private seq = 0;
  private readonly held = new Set<ServerResponse>();
  private readonly chargeFaults = new Map<string, ChargeFault[]>();
  private readonly inquiryFaults = new Map<string, InquiryFault[]>();
  /** The provider's own record: what it did, by idempotency key. */
  readonly charges = new Map<string, Charge>();
  /** Every charge request that reached it (including replays and faulted ones). */
  readonly posts: string[] = [];
  readonly inquiries: string[] = [];

  get url(): string { return `http://127.0.0.1:${this.port}`; }

  inject(key: string, ...faults: ChargeFault[]): void { this.chargeFaults.set(key, [...(this.chargeFaults.get(key) ?? []), ...faults]); }
  injectInquiry(key: string, ...faults: InquiryFault[]): void { this.inquiryFaults.set(key, [...(this.inquiryFaults.get(key) ?? []), ...faults]); }
  postsFor(key: string): number { return this.posts.filter((k) => k === key).length; }

  async start(port = this.port): Promise<void> {
    const server = createServer((req, res) => { void this.handle(req, res); });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const r of this.held) r.destroy();
    this.held.clear();
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const url = new URL(req.url ?? '/', this.url);
    if (req.method === 'POST' && url.pathname === '/v1/charges') {
      const key = req.headers['idempotency-key'];
      if (typeof key !== 'string' || key === '') return void send(400, { error: { code: 'missing_idempotency_key', message: 'Idempotency-Key is required' } });
      this.posts.push(key);
      const fault = this.chargeFaults.get(key)?.shift();
      if (fault === 'reset') return void req.socket.destroy();
      if (fault === 'http500') return void send(500, { error: { code: 'internal', message: 'try again' } });
      if (fault === 'slow') await new Promise((r) => setTimeout(r, 50));
      const replay = this.charges.get(key);
      const charge = replay ?? this.createCharge(key, JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { amount?: number; currency?: string });
      if (fault === 'hang') return void this.held.add(res);
      res.setHeader('idempotent-replayed', String(replay !== undefined));
      return void send(charge.status === 'succeeded' ? 200 : 402, charge.status === 'succeeded' ? charge : { error: { code: charge.code, message: charge.message }, charge });
    }
    const m = /^\/v1\/charges\/by-key\/(.+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const key = decodeURIComponent(m[1]!);
      this.inquiries.push(key);
      if (this.inquiryFaults.get(key)?.shift() === 'unavailable') return void send(503, { error: { code: 'unavailable', message: 'search is down' } });
      const charge = this.charges.get(key);
      return void (charge ? send(200, charge) : send(404, { error: { code: 'resource_missing', message: 'no such charge' } }));
    }
    send(404, { error: { code: 'no_route', message: `${req.method} ${url.pathname}` } });
  }

  private createCharge(key: string, body: { amount?: number; currency?: string }): Charge {
    const amount = body.amount ?? 0;
    const charge: Charge = amount > 100_000
      ? { id: `ch_${++this.seq}`, status: 'failed', amount, currency: body.currency ?? 'JPY', code: 'card_declined', message: 'the card has insufficient funds' }
      : { id: `ch_${++this.seq}`, status: 'succeeded', amount, currency: body.currency ?? 'JPY' };
    this.charges.set(key, charge);
    return charge;
  }
}

// ---- the adapter: the public extension point, speaking to the simulator over HTTP

const sim = new ProviderSimulator();
const agent = new Agent({ keepAliveTimeout: 1_000 });

function simAdapter(name: string): ProviderAdapter {
  return {
    name,
    kind: 'test-simulator',
    verify: () => err({ code: 'invalid_signature', message: 'this simulator sends no notifications' }),
    eventId: () => undefined,
    normalize: () => ok([]),
    async client(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome> {
      const res = await request(`${sim.url}/v1/charges`, {
        method: 'POST', dispatcher: agent, signal, body: JSON.stringify(op.request),
        headers: { 'content-type': 'application/json', 'idempotency-key': op.idempotencyKey },
      });
      const body = await res.body.json() as Record<string, unknown> & { error?: { code: string; message: string } };
      if (res.statusCode === 200) return { status: 'succeeded', response: body };
      if (res.statusCode === 402 && body.error) return { status: 'failed', code: body.error.code, message: body.error.message, response: body };
      // Anything else may or may not have been done: the caller classifies it as unknown.
      throw new Error(`provider answered ${res.statusCode}`);
    },
    async inquire(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult> {
      const res = await request(`${sim.url}/v1/charges/by-key/${encodeURIComponent(op.idempotencyKey)}`, { dispatcher: agent, signal });
      const body = await res.body.json() as Charge & { error?: { message: string } };
      if (res.statusCode === 404) return { status: 'not_found' };
      if (res.statusCode !== 200) return { status: 'unknown', message: body.error?.message ?? `provider answered ${res.statusCode}` };
      return body.status === 'succeeded'
        ? { status: 'succeeded', response: { ...body } }
        : { status: 'failed', code: body.code ?? 'declined', message: body.message ?? 'declined', response: { ...body } };
    },
  };
}

// ---- the engine

let t: TestEngine;
let keySeq = 0;
const newKey = (label: string) => `key_${label}_${++keySeq}_${Date.now()}`;
const BREAKER_AFTER = 2;

beforeAll(async () => {
  await sim.start();
  t = await startTestEngine({
    log: createLogger('info', { destination: new Writable({ write(chunk, _enc, cb) { logged += chunk.toString(); cb(); } }), pretty: false }),
    providers: [simAdapter('sim'), simAdapter('simcb'), simAdapter('simdown')],
    config: {
      endpoints: {
        // Retries on, so "not retried" below means the policy chose not to; a breaker that never opens here.
        // A generous timeout: calls that should succeed must not time out on a busy machine ('hang' waits it out).
        sim: { timeoutMs: 1_000, maxAttempts: 3, breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 1_000 } },
        // The breaker's own endpoint: it opens after BREAKER_AFTER failures and stays open for the whole file.
        simcb: { timeoutMs: 300, maxAttempts: 1, breaker: { consecutiveFailures: BREAKER_AFTER, halfOpenAfterMs: '1h' } },
        // Two attempts per call and a breaker that opens after two failures: one refused call (tried twice) opens it.
        simdown: { timeoutMs: 300, maxAttempts: 2, breaker: { consecutiveFailures: 2, halfOpenAfterMs: '1h' } },
      },
      // Nothing becomes due on its own while the file runs: each test makes inquiries due by hand.
      operations: { inquirySchedule: ['10min', '20min'], unknownDeadlineMs: '1d' },
    },
  });
  await t.tdb.db.pool.query('CREATE TABLE test_charge_effects (operation_id uuid NOT NULL, status text NOT NULL, charge_id text)');
  t.engine.operations.onResult('charge', async (tx, op) => {
    await tx.query('INSERT INTO test_charge_effects (operation_id, status, charge_id) VALUES ($1, $2, $3)', [op.id, op.status, op.response?.id ?? null]);
  });
});

afterAll(async () => {
  await t?.close();
  await sim.stop();
  await agent.close();
});

beforeEach(async () => {
  if (!(await isListening())) await sim.start();
});

async function isListening(): Promise<boolean> {
  try {
    const r = await request(`${sim.url}/health`, { dispatcher: agent });
    await r.body.dump();
    return true;
  } catch {
    return false;
  }
}

const pool = () => t.tdb.db.pool;
/** The engine's log lines (JSON), for the lines an operator relies on. */
let logged = '';
const logLines = () => logged.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

async function record(input: Partial<RecordOperation> & { idempotencyKey: string }): Promise<{ operation: Operation; created: boolean }> {
  return withTx(pool(), (tx) => t.engine.operations.record(tx, { provider: 'sim', kind: 'charge', request: { amount: 1_000, currency: 'JPY' }, ...input }));
}

async function effects(id: string): Promise<{ status: string; charge_id: string | null }[]> {
  return (await pool().query('SELECT status, charge_id FROM test_charge_effects WHERE operation_id = $1', [id])).rows;
}

async function events(id: string): Promise<{ from_status: string | null; to_status: string; cause: string }[]> {
  return (await pool().query('SELECT from_status, to_status, cause FROM operation_events WHERE operation_id = $1 ORDER BY id', [id])).rows;
}

async function makeInquiryDue(id: string): Promise<void> {
  await pool().query('UPDATE operations SET next_inquiry_at = now() WHERE id = $1', [id]);
}

async function admin(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${t.url}${path}`, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
  return { status: res.statusCode, json: await res.body.json() as Record<string, unknown> };
}

describe('record → execute → result', () => {
  it('succeeds, keeps the provider response, and runs the result handler once in the transaction that records it', async () => {
    const key = newKey('ok');
    const { operation, created } = await record({ idempotencyKey: key, request: { amount: 1_500, currency: 'JPY' } });
    expect(created).toBe(true);
    expect(operation.status).toBe('pending');

    const done = await t.engine.operations.execute(operation.id);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 1, error_code: null, response: { amount: 1_500, status: 'succeeded' } });
    expect(done.completed_at).toBeInstanceOf(Date);
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toEqual([{ status: 'succeeded', charge_id: sim.charges.get(key)!.id }]);

    // Executing again does nothing: no second request, no second effect.
    const again = await t.engine.operations.execute(operation.id);
    expect(again.status).toBe('succeeded');
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toHaveLength(1);
    expect((await events(operation.id)).map((e) => `${e.from_status}→${e.to_status}`)).toEqual(['null→pending', 'pending→sending', 'sending→succeeded']);
  });

  it('a slow but timely provider answer still succeeds', async () => {
    const key = newKey('slow');
    sim.inject(key, 'slow');
    const { operation } = await record({ idempotencyKey: key });
    expect((await t.engine.operations.execute(operation.id)).status).toBe('succeeded');
    expect(sim.postsFor(key)).toBe(1);
  });

  it('a result handler that throws rolls the outcome back with it; the janitor later settles it with one effect', async () => {
    let broken = true;
    t.engine.operations.onResult('charge.fragile', async (tx, op) => {
      await tx.query('INSERT INTO test_charge_effects (operation_id, status) VALUES ($1, $2)', [op.id, op.status]);
      if (broken) throw new Error('ledger unavailable');
    });
    const key = newKey('fragile');
    const { operation } = await record({ idempotencyKey: key, kind: 'charge.fragile' });
    await expect(t.engine.operations.execute(operation.id)).rejects.toThrow('ledger unavailable');
    // Same transaction: neither the status nor the handler's row survived.
    expect((await t.engine.operations.get(operation.id))!.status).toBe('sending');
    expect(await effects(operation.id)).toEqual([]);
    expect(sim.charges.get(key)?.status).toBe('succeeded');

    broken = false;
    await pool().query(`UPDATE operations SET locked_until = now() - interval '1 second' WHERE id = $1`, [operation.id]);
    await t.engine.operations.janitorOnce();
    expect((await t.engine.operations.get(operation.id))!.status).toBe('unknown');
    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect((await t.engine.operations.get(operation.id))!.status).toBe('succeeded');
    expect(await effects(operation.id)).toHaveLength(1);
    expect(sim.postsFor(key)).toBe(1);
  });
});

describe('idempotency keys', () => {
  it('recording the same key twice returns the first operation and creates no second row', async () => {
    const key = newKey('dup');
    const first = await record({ idempotencyKey: key, request: { amount: 700 } });
    const second = await record({ idempotencyKey: key, request: { amount: 999_999 } });
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.operation.id).toBe(first.operation.id);
    expect(second.operation.request).toEqual({ amount: 700 });
    const n = await pool().query('SELECT count(*)::int AS n FROM operations WHERE idempotency_key = $1', [key]);
    expect(n.rows[0].n).toBe(1);
    // And it is sent once, with the first request.
    expect((await t.engine.operations.execute(second.operation.id)).status).toBe('succeeded');
    expect(sim.charges.get(key)?.amount).toBe(700);
  });

  it('the same key for another provider is another operation', async () => {
    const key = newKey('two-providers');
    const a = await record({ idempotencyKey: key });
    const b = await record({ idempotencyKey: key, provider: 'simcb' });
    expect(b.created).toBe(true);
    expect(b.operation.id).not.toBe(a.operation.id);
    await pool().query(`UPDATE operations SET status = 'failed' WHERE id = ANY($1)`, [[a.operation.id, b.operation.id]]);
  });
});

describe('declines', () => {
  it('records a decline as failed with the provider code and message, its history, and shows it in the admin API', async () => {
    const key = newKey('decline');
    const { operation } = await record({ idempotencyKey: key, request: { amount: 250_000, currency: 'JPY' } });
    const done = await t.engine.operations.execute(operation.id);
    expect(done).toMatchObject({ status: 'failed', error_code: 'card_declined', error_message: 'the card has insufficient funds' });
    expect(logLines()).toContainEqual(expect.objectContaining({
      level: 'warn', msg: 'operation failed', operation_id: operation.id, provider: 'sim', error_code: 'card_declined',
    }));
    // A decline is a final outcome: the handler runs for it too, once.
    expect(await effects(operation.id)).toEqual([{ status: 'failed', charge_id: null }]);

    const r = await admin(`/admin/v1/operations/${operation.id}`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ id: operation.id, status: 'failed', error_code: 'card_declined', idempotency_key: key });
    expect((r.json.events as { from_status: string | null; to_status: string; cause: string }[]).map(({ from_status, to_status, cause }) => ({ from_status, to_status, cause }))).toEqual([
      { from_status: null, to_status: 'pending', cause: 'recorded' },
      { from_status: 'pending', to_status: 'sending', cause: 'sending' },
      { from_status: 'sending', to_status: 'failed', cause: 'provider declined' },
    ]);
    const missing = await admin('/admin/v1/operations/0190f5a4-9d8e-7b3c-8a1f-2b3c4d5e6f70');
    expect(missing.status).toBe(404);
  });
});

describe('no answer: unknown, resolved by inquiry', () => {
  it('a timeout after the provider charged is unknown (never failed), is not resent, and inquiry settles it with one effect', async () => {
    const key = newKey('hang');
    sim.inject(key, 'hang');
    const { operation } = await record({ idempotencyKey: key, request: { amount: 3_000 } });
    const after = await t.engine.operations.execute(operation.id);
    expect(after).toMatchObject({ status: 'unknown', error_code: 'timeout' });
    expect(after.next_inquiry_at).toBeInstanceOf(Date);
    expect(logLines()).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'operation outcome unknown', operation_id: operation.id }));
    // The provider did charge, and was asked exactly once even though retries are enabled for this endpoint.
    expect(sim.charges.get(key)?.status).toBe('succeeded');
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toEqual([]);
    // Executing again does not send again.
    expect((await t.engine.operations.execute(operation.id)).status).toBe('unknown');
    expect(sim.postsFor(key)).toBe(1);

    // Not due yet: the janitor leaves it alone.
    await t.engine.operations.janitorOnce();
    expect(sim.inquiries.filter((k) => k === key)).toHaveLength(0);

    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    const settled = (await t.engine.operations.get(operation.id))!;
    expect(settled).toMatchObject({ status: 'succeeded', inquiries: 1, error_code: null, next_inquiry_at: null, response: { id: sim.charges.get(key)!.id } });
    expect(sim.inquiries.filter((k) => k === key)).toHaveLength(1);
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toEqual([{ status: 'succeeded', charge_id: sim.charges.get(key)!.id }]);
    expect((await events(operation.id)).slice(2)).toEqual([
      { from_status: 'sending', to_status: 'unknown', cause: 'no answer: timeout' },
      { from_status: 'unknown', to_status: 'succeeded', cause: 'inquiry: provider has it succeeded' },
    ]);

    // Another janitor pass changes nothing.
    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect(await effects(operation.id)).toHaveLength(1);
  });

  it('a 500 from the provider on a non-idempotent call is unknown, not retried', async () => {
    const key = newKey('500-plain');
    sim.inject(key, 'http500');
    const { operation } = await record({ idempotencyKey: key });
    expect(await t.engine.operations.execute(operation.id)).toMatchObject({ status: 'unknown', error_code: 'provider answered 500' });
    expect(sim.postsFor(key)).toBe(1);
    // Whatever the 500 meant, the provider has no charge: inquiry says so and the operation fails as never received.
    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect((await t.engine.operations.get(operation.id))!.status).toBe('failed');
  });

  it('inquiry that finds nothing at the provider fails the operation as not_found_at_provider', async () => {
    const key = newKey('reset');
    sim.inject(key, 'reset');
    const { operation } = await record({ idempotencyKey: key });
    expect((await t.engine.operations.execute(operation.id)).status).toBe('unknown');
    expect(sim.charges.has(key)).toBe(false);
    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect(await t.engine.operations.get(operation.id)).toMatchObject({ status: 'failed', error_code: 'not_found_at_provider' });
    expect(await effects(operation.id)).toEqual([{ status: 'failed', charge_id: null }]);
    expect((await events(operation.id)).at(-1)).toEqual({ from_status: 'unknown', to_status: 'failed', cause: 'inquiry: provider has no such operation' });
  });

  it('inquiry that keeps saying unknown past the schedule leaves it unknown with no next inquiry, and overdue once past its deadline', async () => {
    const key = newKey('stuck');
    sim.inject(key, 'reset');
    sim.injectInquiry(key, 'unavailable', 'unavailable', 'unavailable');
    const { operation } = await record({ idempotencyKey: key });
    expect((await t.engine.operations.execute(operation.id)).status).toBe('unknown');

    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    const once = (await t.engine.operations.get(operation.id))!;
    expect(once).toMatchObject({ status: 'unknown', inquiries: 1, error_message: 'search is down' });
    expect(once.next_inquiry_at!.getTime()).toBeGreaterThan(Date.now() + 15 * 60_000); // the schedule's second step (20 min)

    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    const twice = (await t.engine.operations.get(operation.id))!;
    expect(twice).toMatchObject({ status: 'unknown', inquiries: 2, next_inquiry_at: null });
    // Nothing more is asked: it needs a person (or reconciliation).
    await t.engine.operations.janitorOnce();
    expect(sim.inquiries.filter((k) => k === key)).toHaveLength(2);

    const listed = async (q: string) => ((await admin(`/admin/v1/operations?${q}`)).json.data as { id: string; overdue: boolean }[]).find((o) => o.id === operation.id);
    expect(await listed('overdue=true')).toBeUndefined();
    expect(await listed('status=unknown')).toMatchObject({ overdue: false });
    await pool().query(`UPDATE operations SET deadline_at = now() - interval '1 minute' WHERE id = $1`, [operation.id]);
    expect(await listed('overdue=true')).toMatchObject({ overdue: true });
  });
});

describe('connection refused, retries and the circuit breaker', () => {
  it('a refused connection fails the operation as not sent (safe to send again), and runs its failure effects', async () => {
    const key = newKey('refused');
    await sim.stop();
    const { operation } = await record({ idempotencyKey: key });
    const done = await t.engine.operations.execute(operation.id);
    expect(done).toMatchObject({ status: 'failed', error_code: 'connection_refused' });
    expect(done.error_message).toMatch(/ECONNREFUSED/);
    expect((await events(operation.id)).at(-1)).toMatchObject({ from_status: 'sending', to_status: 'failed', cause: 'not sent: connection_refused' });
    expect(await effects(operation.id)).toEqual([{ status: 'failed', charge_id: null }]);
    await sim.start();
    expect(sim.postsFor(key)).toBe(0);
    expect(sim.charges.has(key)).toBe(false);
  });

  it('a refused call is retried by the policy even when not idempotent, and refusals count toward the breaker', async () => {
    await sim.stop();
    const refused = await record({ idempotencyKey: newKey('down-1'), provider: 'simdown' });
    expect(await t.engine.operations.execute(refused.operation.id)).toMatchObject({ status: 'failed', error_code: 'connection_refused' });
    await sim.start();
    // One call, two refused attempts: the breaker (2 consecutive failures) is now open, so the next call is not sent.
    const key = newKey('down-2');
    const next = await record({ idempotencyKey: key, provider: 'simdown' });
    expect(await t.engine.operations.execute(next.operation.id)).toMatchObject({ status: 'failed', error_code: 'circuit_open' });
    expect(sim.postsFor(key)).toBe(0);
  });

  it('an idempotent call is retried with the same key after a 500 and succeeds with one charge', async () => {
    const key = newKey('500-idem');
    sim.inject(key, 'http500');
    const { operation } = await record({ idempotencyKey: key, idempotent: true });
    const done = await t.engine.operations.execute(operation.id);
    expect(done.status).toBe('succeeded');
    expect(sim.postsFor(key)).toBe(2);
    expect([...sim.charges.keys()].filter((k) => k === key)).toHaveLength(1);
    expect(await effects(operation.id)).toHaveLength(1);
  });

  it('an idempotent call that times out after success is retried with the same key and gets the first charge back', async () => {
    const key = newKey('hang-idem');
    sim.inject(key, 'hang');
    const { operation } = await record({ idempotencyKey: key, idempotent: true });
    const done = await t.engine.operations.execute(operation.id);
    expect(done.status).toBe('succeeded');
    expect(sim.postsFor(key)).toBe(2);
    expect(done.response).toMatchObject({ id: sim.charges.get(key)!.id });
  });

  it(`opens after ${BREAKER_AFTER} calls without an answer; the next call fails fast as not sent without reaching the provider`, async () => {
    const hung: string[] = [];
    for (let i = 0; i < BREAKER_AFTER; i++) {
      const key = newKey('breaker-hang');
      sim.inject(key, 'hang');
      const { operation } = await record({ idempotencyKey: key, provider: 'simcb' });
      expect((await t.engine.operations.execute(operation.id)).status).toBe('unknown');
      hung.push(key);
    }
    const key = newKey('breaker-blocked');
    const { operation } = await record({ idempotencyKey: key, provider: 'simcb' });
    const done = await t.engine.operations.execute(operation.id);
    expect(done).toMatchObject({ status: 'failed', error_code: 'circuit_open' });
    expect((await events(operation.id)).at(-1)).toMatchObject({ to_status: 'failed', cause: 'not sent: circuit_open' });
    expect(sim.postsFor(key)).toBe(0);
    expect(hung.map((k) => sim.postsFor(k))).toEqual(hung.map(() => 1));
    // The other endpoint has its own breaker.
    const other = await record({ idempotencyKey: newKey('breaker-other') });
    expect((await t.engine.operations.execute(other.operation.id)).status).toBe('succeeded');
  });
});

describe('the janitor after a crash', () => {
  it('sends an operation recorded more than 30 s ago but never sent', async () => {
    const key = newKey('stale-pending');
    const { operation } = await record({ idempotencyKey: key });
    await t.engine.operations.janitorOnce();
    expect((await t.engine.operations.get(operation.id))!.status).toBe('pending'); // too young: its recorder may still send it
    expect(sim.postsFor(key)).toBe(0);
    await pool().query(`UPDATE operations SET created_at = now() - interval '31 seconds' WHERE id = $1`, [operation.id]);
    await t.engine.operations.janitorOnce();
    expect(await t.engine.operations.get(operation.id)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toHaveLength(1);
  });

  it('turns an abandoned sending operation into unknown, then inquiry settles it without sending again', async () => {
    const key = newKey('abandoned');
    const { operation } = await record({ idempotencyKey: key, request: { amount: 4_200 } });
    // The dead process had claimed it and sent the call; then it died before recording the answer.
    await pool().query(`UPDATE operations SET status = 'sending', attempts = 1, sent_at = now(), locked_until = now() + interval '1 minute' WHERE id = $1`, [operation.id]);
    const sent = await request(`${sim.url}/v1/charges`, { method: 'POST', dispatcher: agent, body: JSON.stringify({ amount: 4_200 }), headers: { 'content-type': 'application/json', 'idempotency-key': key } });
    await sent.body.dump();
    await t.engine.operations.janitorOnce();
    expect((await t.engine.operations.get(operation.id))!.status).toBe('sending'); // its lease has not run out

    await pool().query(`UPDATE operations SET locked_until = now() - interval '1 second' WHERE id = $1`, [operation.id]);
    await t.engine.operations.janitorOnce();
    expect(await t.engine.operations.get(operation.id)).toMatchObject({ status: 'unknown', error_code: 'abandoned' });
    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect(await t.engine.operations.get(operation.id)).toMatchObject({ status: 'succeeded', response: { id: sim.charges.get(key)!.id, amount: 4_200 } });
    expect(sim.postsFor(key)).toBe(1);
    expect(await effects(operation.id)).toHaveLength(1);
    expect((await events(operation.id)).slice(1).map((e) => e.cause)).toEqual(['process stopped during the call', 'inquiry: provider has it succeeded']);
  });
});

describe('integration status', () => {
  type Status = { state: string; items: { kind: string; id: string; state: string; status: string; cause: string | null }[] };
  const statusOf = async (entityId: string) => (await admin(`/admin/v1/status/order/${entityId}`)).json as Status;

  it('shows an operation waiting while unknown (with the cause), done after inquiry, failed after a decline', async () => {
    const key = newKey('status-hang');
    sim.inject(key, 'hang');
    const { operation } = await record({ idempotencyKey: key, entity: { type: 'order', id: 'ord_status_1' } });
    expect((await statusOf('ord_status_1')).state).toBe('waiting'); // pending
    await t.engine.operations.execute(operation.id);
    const waiting = await statusOf('ord_status_1');
    expect(waiting).toMatchObject({ state: 'waiting', items: [{ kind: 'operation', id: operation.id, state: 'waiting', status: 'unknown' }] });
    expect(waiting.items[0]!.cause).toMatch(/^timeout: /);

    await makeInquiryDue(operation.id);
    await t.engine.operations.janitorOnce();
    expect(await statusOf('ord_status_1')).toMatchObject({ state: 'done', items: [{ id: operation.id, state: 'done', status: 'succeeded', cause: null }] });

    const declined = await record({ idempotencyKey: newKey('status-decline'), request: { amount: 500_000 }, entity: { type: 'order', id: 'ord_status_2' } });
    await t.engine.operations.execute(declined.operation.id);
    expect(await statusOf('ord_status_2')).toMatchObject({
      state: 'failed', items: [{ id: declined.operation.id, state: 'failed', status: 'failed', cause: 'card_declined: the card has insufficient funds' }],
    });
    expect((await statusOf('ord_nothing')).state).toBe('none');
  });
});

describe('the state machine', () => {
  const STATUSES = Object.keys(OPERATION_TRANSITIONS) as OperationStatus[];
  const FINAL = new Set(STATUSES.filter((s) => OPERATION_TRANSITIONS[s].length === 0));

  /** The states reachable from `s` along the table's edges, `s` included. */
  function reachable(s: OperationStatus): OperationStatus[] {
    const seen = new Set<OperationStatus>([s]);
    const queue = [s];
    while (queue.length > 0) for (const n of OPERATION_TRANSITIONS[queue.shift()!]) if (!seen.has(n)) { seen.add(n); queue.push(n); }
    return [...seen];
  }

  it('has final states succeeded and failed, every other state can reach one, and no state can be re-entered', () => {
    expect([...FINAL].sort()).toEqual(['failed', 'succeeded']);
    for (const s of STATUSES) {
      expect(reachable(s).some((x) => FINAL.has(x)), s).toBe(true);
      for (const n of OPERATION_TRANSITIONS[s]) expect(reachable(n), `${s}→${n}`).not.toContain(s);
    }
  });

  it('for any sequence of attempted transitions, some concurrent, the stored status only follows edges of the table and final states never change', async () => {
    const handled: string[] = [];
    t.engine.operations.onResult('transition-property', async (_tx, op) => { handled.push(op.id); });
    const attempt = fc.record({ from: fc.constantFrom(...STATUSES), to: fc.constantFrom(...STATUSES) });
    await fc.assert(fc.asyncProperty(fc.array(fc.array(attempt, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }), async (batches) => {
      const { operation } = await record({ idempotencyKey: newKey('prop'), kind: 'transition-property' });
      let status: OperationStatus = 'pending';
      for (const batch of batches) {
        // Attempts in a batch race each other, as two workers would.
        const outcomes = await Promise.all(batch.map(async ({ from, to }) => {
          try {
            return await t.engine.operations.transition(operation.id, from, { status: to, cause: `property ${from}→${to}` });
          } catch (e) {
            expect(OPERATION_TRANSITIONS[from]).not.toContain(to); // only edges outside the table are refused
            expect((e as Error).message).toMatch(/is not allowed/);
            return null;
          }
        }));
        const now = (await t.engine.operations.get(operation.id))!.status;
        expect(reachable(status)).toContain(now);
        if (FINAL.has(status)) expect(now).toBe(status);
        // Of racing attempts from the same state, at most one wins (no state is entered twice).
        for (const from of STATUSES) expect(outcomes.filter((o, i) => o !== null && batch[i]!.from === from).length).toBeLessThanOrEqual(1);
        status = now;
      }
      // The recorded history is a walk along the table's edges that ends where the row is.
      const ev = await events(operation.id);
      expect(ev[0]).toMatchObject({ from_status: null, to_status: 'pending' });
      for (let i = 1; i < ev.length; i++) {
        expect(ev[i]!.from_status).toBe(ev[i - 1]!.to_status);
        expect(OPERATION_TRANSITIONS[ev[i]!.from_status as OperationStatus]).toContain(ev[i]!.to_status);
      }
      expect(ev.at(-1)!.to_status).toBe(status);
      // Effects ran exactly once if it ended final, never otherwise.
      expect(handled.filter((id) => id === operation.id)).toHaveLength(FINAL.has(status) ? 1 : 0);
    }), { numRuns: 100 });
  });
});
