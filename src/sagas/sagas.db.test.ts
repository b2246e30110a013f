// The saga engine on a real PostgreSQL: steps persisted before the next begins, compensation newest
// first, a failed compensation opening a case with the saga's history, unknown outcomes inquired
// about (an operation that timed out after the provider acted), a worker that dies mid-step resumed
// by another without re-running a succeeded step, and a property over random step outcomes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getCase, listCases } from '../cases/index.ts';
import { createDb } from '../kernel/db.ts';
import { err, ok } from '../kernel/errors.ts';
import { silentLogger } from '../kernel/logger.ts';
import type { CallOutcome, InquiryResult, OperationRequest, ProviderAdapter } from '../providers/types.ts';
import { integrationStatus } from '../status/integration-status.ts';
import { admin } from '../../test/helpers/admin.ts';
import { VIEWER_TOKEN, eventually, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';
import {
  SAGA_TRANSITIONS, STEP_TRANSITIONS, Sagas, operationStep, sagaHistory,
  type SagaDefinition, type SagaStatus, type StepContext, type StepResult, type StepStatus,
} from './index.ts';

// ---- a provider outside this machine: records a charge by Idempotency-Key; 'hang' records it and never answers

class ChargeSimulator {
  private server: Server | undefined;
  private readonly held = new Set<ServerResponse>();
  readonly charges = new Map<string, { id: string; amount: number; refunded: boolean }>();
  readonly posts: string[] = [];
  readonly hang = new Set<string>();
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => { void this.handle(req, res); });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const r of this.held) r.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const key = String(req.headers['idempotency-key'] ?? '');
    const url = new URL(req.url ?? '/', this.url);
    if (req.method === 'POST' && url.pathname === '/charges') {
      this.posts.push(key);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { amount: number };
      const charge = this.charges.get(key) ?? { id: `ch_${this.charges.size + 1}`, amount: body.amount, refunded: false };
      this.charges.set(key, charge);
      if (this.hang.delete(key)) return void this.held.add(res);
      return void send(200, charge);
    }
    const m = /^\/charges\/by-key\/(.+)$/.exec(url.pathname);
    if (req.method === 'GET' && m) {
      const charge = this.charges.get(decodeURIComponent(m[1]!));
      return void (charge ? send(200, charge) : send(404, { error: 'no such charge' }));
    }
    send(404, { error: 'no route' });
  }
}

const sim = new ChargeSimulator();
const agent = new Agent({ keepAliveTimeout: 1_000 });
const chargeAdapter: ProviderAdapter = {
  name: 'charger', kind: 'test-simulator',
  verify: () => err({ code: 'invalid_signature', message: 'no notifications' }),
  eventId: () => undefined,
  normalize: () => ok([]),
  async client(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome> {
    const res = await request(`${sim.url}/charges`, {
      method: 'POST', dispatcher: agent, signal, body: JSON.stringify(op.request),
      headers: { 'content-type': 'application/json', 'idempotency-key': op.idempotencyKey },
    });
    const body = await res.body.json() as Record<string, unknown>;
    if (res.statusCode === 200) return { status: 'succeeded', response: body };
    throw new Error(`provider answered ${res.statusCode}`);
  },
  async inquire(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult> {
    const res = await request(`${sim.url}/charges/by-key/${encodeURIComponent(op.idempotencyKey)}`, { dispatcher: agent, signal });
    const body = await res.body.json() as Record<string, unknown>;
    if (res.statusCode === 404) return { status: 'not_found' };
    return res.statusCode === 200 ? { status: 'succeeded', response: body } : { status: 'unknown', message: `answered ${res.statusCode}` };
  },
};

let t: TestEngine;
const pool = () => t.tdb.db.pool;

beforeAll(async () => {
  await sim.start();
  t = await startTestEngine({
    providers: [chargeAdapter],
    config: {
      endpoints: { charger: { timeoutMs: 300, maxAttempts: 1, breaker: { consecutiveFailures: 1_000, halfOpenAfterMs: 1_000 } } },
      operations: { inquirySchedule: ['10min'], unknownDeadlineMs: '1d' },
    },
  });
});

afterAll(async () => {
  await t?.close();
  await sim.stop();
  await agent.close();
});

// ---- helpers

type Input = { label: string };
const NOW = { retry: { delaysMs: [0], maxAttempts: 3, maxInquiries: 2 } };
const succeed = (output: Record<string, unknown> = {}): StepResult => ({ status: 'succeeded', output });
const fatal = (code: string): StepResult => ({ status: 'failed', code, message: `${code} for good`, retryable: false });

/** Runs a saga until it finishes (every delay is 0 here, so one run normally does it). */
async function settle(sagas: Sagas, id: string): Promise<SagaStatus> {
  for (let i = 0; i < 20; i++) {
    const s = await sagas.run(id);
    if (s && ['completed', 'compensated', 'failed'].includes(s.status)) return s.status;
  }
  throw new Error(`saga ${id} did not finish`);
}

async function startAndSettle(def: SagaDefinition<Input>, label: string): Promise<{ id: string; status: SagaStatus }> {
  const { id } = await t.engine.sagas.start(pool(), def, { label }, { entity: { type: 'test_order', id: label } });
  return { id, status: await settle(t.engine.sagas, id) };
}

/** Every saga and step event took an edge of its transition table. */
async function expectOnlyTableEdges(id: string): Promise<void> {
  const h = (await sagaHistory(pool(), id))!;
  for (const e of h.events) {
    if (e.from_status === null) continue;
    if (e.step_id === null) expect(SAGA_TRANSITIONS[e.from_status as SagaStatus]).toContain(e.to_status);
    else expect(STEP_TRANSITIONS[e.from_status as StepStatus]).toContain(e.to_status);
  }
}

describe('sagas', () => {
  it('runs the steps in order, each start and result committed before the next step begins', async () => {
    const seen: string[] = [];
    const def = t.engine.sagas.define<Input>({
      name: 'test.in-order',
      steps: ['a', 'b', 'c'].map((sid) => ({
        id: sid, ...NOW,
        async invoke(ctx: StepContext<Input>) {
          // What the rows say while this step runs: its own attempt started, every earlier one finished.
          const rows = await pool().query<{ step_id: string; status: string }>(
            'SELECT step_id, status FROM saga_step_attempts WHERE saga_id = $1 ORDER BY id', [ctx.sagaId]);
          seen.push(rows.rows.map((r) => `${r.step_id}:${r.status}`).join(','));
          return succeed({ [sid]: true, before: Object.keys(ctx.outputs) });
        },
      })),
    });
    const { id, status } = await startAndSettle(def, 'order-1');
    expect(status).toBe('completed');
    expect(seen).toEqual(['a:started', 'a:succeeded,b:started', 'a:succeeded,b:succeeded,c:started']);
    const h = (await sagaHistory(pool(), id))!;
    expect(h.steps.map((s) => [s.step_id, s.status])).toEqual([['a', 'succeeded'], ['b', 'succeeded'], ['c', 'succeeded']]);
    expect(h.steps[2]!.output).toEqual({ c: true, before: ['a', 'b'] });
    expect(h.attempts.map((a) => a.idempotency_key)).toEqual(['a', 'b', 'c'].map((s) => `saga:${id}:${s}:invoke:1`));
    await expectOnlyTableEdges(id);
    const st = await integrationStatus(pool(), 'test_order', 'order-1');
    expect(st.items).toContainEqual(expect.objectContaining({ kind: 'saga', id, status: 'completed', state: 'done' }));
  });

  it('compensates the succeeded steps newest first when a step fails for good, after its retries', async () => {
    const log: string[] = [];
    const step = (sid: string, invoke: () => StepResult) => ({
      id: sid, ...NOW,
      invoke: async () => { log.push(`invoke ${sid}`); return invoke(); },
      compensate: async () => { log.push(`compensate ${sid}`); return succeed(); },
    });
    const def = t.engine.sagas.define<Input>({
      name: 'test.compensation-order',
      steps: [
        step('a', () => succeed()), step('b', () => succeed()),
        { id: 'readonly', ...NOW, invoke: async () => { log.push('invoke readonly'); return succeed(); } },
        step('c', () => ({ status: 'failed', code: 'declined', message: 'try again' })),
      ],
    });
    const { id, status } = await startAndSettle(def, 'order-2');
    expect(status).toBe('compensated');
    expect(log).toEqual(['invoke a', 'invoke b', 'invoke readonly', 'invoke c', 'invoke c', 'invoke c', 'compensate b', 'compensate a']);
    const h = (await sagaHistory(pool(), id))!;
    expect(h.steps.map((s) => s.status)).toEqual(['compensated', 'compensated', 'succeeded', 'failed']);
    expect(h.events.filter((e) => e.step_id === null).map((e) => e.to_status)).toEqual(['running', 'compensating', 'compensated']);
    expect(h.events.find((e) => e.to_status === 'compensating' && e.step_id === null)!.cause).toMatch(/invoke #3 of c failed: declined/);
    await expectOnlyTableEdges(id);
  });

  it('a compensation that fails for good stops, fails the saga and opens a case with its whole history', async () => {
    const log: string[] = [];
    const def = t.engine.sagas.define<Input>({
      name: 'test.compensation-fails',
      steps: [
        { id: 'a', ...NOW, invoke: async () => succeed(), compensate: async () => { log.push('compensate a'); return succeed(); } },
        { id: 'b', ...NOW, invoke: async () => succeed(), compensate: async () => { log.push('compensate b'); return fatal('refund_refused'); } },
        { id: 'c', ...NOW, invoke: async () => fatal('out_of_stock') },
      ],
    });
    const { id, status } = await startAndSettle(def, 'order-3');
    expect(status).toBe('failed');
    // b's undo failed: a is left as it is for the person (undoing it under a live b could make things worse).
    expect(log).toEqual(['compensate b']);
    const [c] = await listCases(pool(), { subjectType: 'saga', subjectId: id, limit: 5 });
    expect(c).toMatchObject({ kind: 'saga', cause: 'saga_compensation_failed', status: 'open' });
    const full = await getCase(pool(), c!.id);
    const history = full!.details.history as { steps: { step_id: string; status: string }[]; attempts: unknown[]; events: unknown[] };
    expect(history.steps.map((s) => [s.step_id, s.status])).toEqual([['a', 'succeeded'], ['b', 'compensation_failed'], ['c', 'failed']]);
    expect(history.attempts).toHaveLength(4);
    expect(history.events.length).toBeGreaterThan(5);
    const st = await integrationStatus(pool(), 'test_order', 'order-3');
    expect(st.state).toBe('failed');
    await expectOnlyTableEdges(id);
  });

  it('an operation that timed out after the provider charged is inquired about, not sent again, and the saga goes on', async () => {
    const def = t.engine.sagas.define<Input>({
      name: 'test.charge',
      steps: [
        operationStep<Input>({ pool: pool(), operations: t.engine.operations }, {
          id: 'charge', provider: 'charger', ...NOW, timeoutMs: 5_000,
          invoke: { kind: 'charge', request: () => ({ amount: 500 }) },
          compensate: { kind: 'refund', request: (ctx) => ({ amount: 500, refund_of: ctx.outputs.charge?.id ?? null }) },
          entity: (ctx) => ({ type: 'test_order', id: ctx.input.label }),
        }),
        { id: 'ship', ...NOW, invoke: async () => succeed({ shipped: true }) },
      ],
    });
    const { id } = await t.engine.sagas.start(pool(), def, { label: 'order-4' });
    const key = `saga:${id}:charge:invoke:1`;
    sim.hang.add(key);
    expect(await settle(t.engine.sagas, id)).toBe('completed');
    expect(sim.posts.filter((k) => k === key)).toHaveLength(1);
    const h = (await sagaHistory(pool(), id))!;
    const charge = h.attempts.find((a) => a.step_id === 'charge')!;
    expect(charge).toMatchObject({ status: 'succeeded', inquiries: 1, attempt: 1 });
    expect(h.steps[0]!.output).toMatchObject({ id: sim.charges.get(key)!.id, amount: 500 });
    expect(h.events.some((e) => e.step_id === 'charge' && /outcome unknown/.test(e.cause) === false && /learnt by asking/.test(e.cause))).toBe(true);
    const op = await pool().query('SELECT status, entity_id FROM operations WHERE idempotency_key = $1', [key]);
    expect(op.rows[0]).toEqual({ status: 'succeeded', entity_id: 'order-4' });
  });

  it('an outcome that stays unknown is never compensated: the known steps are undone, the saga fails with a case', async () => {
    const log: string[] = [];
    const def = t.engine.sagas.define<Input>({
      name: 'test.unknown-forever',
      steps: [
        { id: 'a', ...NOW, invoke: async () => succeed(), compensate: async () => { log.push('compensate a'); return succeed(); } },
        {
          id: 'b', ...NOW, timeoutMs: 50,
          invoke: () => new Promise<StepResult>(() => undefined),
          compensate: async () => { log.push('compensate b'); return succeed(); },
          inquire: async () => ({ status: 'unknown', message: 'the partner cannot say' }),
        },
      ],
    });
    const { id, status } = await startAndSettle(def, 'order-5');
    expect(status).toBe('failed');
    expect(log).toEqual(['compensate a']);
    const h = (await sagaHistory(pool(), id))!;
    expect(h.steps.map((s) => s.status)).toEqual(['compensated', 'unknown']);
    expect(h.attempts.find((a) => a.step_id === 'b')).toMatchObject({ status: 'unknown', inquiries: 2 });
    const [c] = await listCases(pool(), { subjectType: 'saga', subjectId: id, limit: 5 });
    expect(c?.cause).toBe('saga_outcome_unknown');
  });

  it('a saga whose worker died mid-step is resumed by another worker, which asks first and re-runs nothing that succeeded', async () => {
    const calls: string[] = [];
    const done = new Set<string>();
    const dyingDb = createDb(t.tdb.url, { max: 2 });
    const def: SagaDefinition<Input> = {
      name: 'test.crash-resume',
      steps: [
        { id: 'one', ...NOW, invoke: async (ctx) => { calls.push(`one ${ctx.attempt}`); return succeed(); } },
        {
          id: 'two', ...NOW, timeoutMs: 200,
          async invoke(ctx) {
            calls.push(`two ${ctx.attempt}`);
            done.add(ctx.idempotencyKey); // the effect happens outside…
            if (ctx.attempt === 1 && calls.filter((c) => c.startsWith('two')).length === 1) {
              await dyingDb.close(); // …and the worker dies before it can record anything
              return new Promise<StepResult>(() => undefined);
            }
            return succeed();
          },
          inquire: async (ctx) => { calls.push(`ask two ${ctx.attempt}`); return done.has(ctx.idempotencyKey) ? succeed({ learnt: true }) : fatal('not_done'); },
        },
        { id: 'three', ...NOW, invoke: async (ctx) => { calls.push(`three ${ctx.attempt}`); return succeed(); } },
      ],
    };
    const dying = new Sagas({ pool: dyingDb.pool, log: silentLogger, leaseSlackMs: 100 });
    dying.define(def);
    t.engine.sagas.define(def);
    const { id } = await dying.start(pool(), def, { label: 'order-6' });
    await expect(dying.run(id)).rejects.toThrow();
    const h1 = (await sagaHistory(pool(), id))!;
    expect(h1.attempts.map((a) => [a.step_id, a.status])).toEqual([['one', 'succeeded'], ['two', 'started']]);
    // The survivor claims it once the dead worker's lease has ended.
    const status = await eventually(async () => {
      const s = await t.engine.sagas.run(id);
      return s && s.status !== 'running' ? s.status : undefined;
    }, 20_000, 100);
    expect(status).toBe('completed');
    expect(calls).toEqual(['one 1', 'two 1', 'ask two 1', 'three 1']);
    const h = (await sagaHistory(pool(), id))!;
    expect(h.steps[1]).toMatchObject({ status: 'succeeded', output: { learnt: true } });
    await expectOnlyTableEdges(id);
  });

  it('the admin API lists sagas by status and name with cursor paging, shows one with steps, attempts and causes, and a record\'s status shows its saga', async () => {
    const def = t.engine.sagas.define<Input>({
      name: 'test.admin',
      steps: [
        { id: 'a', ...NOW, invoke: async () => succeed(), compensate: async () => succeed() },
        { id: 'b', ...NOW, invoke: async () => fatal('no_seat') },
      ],
    });
    const ids: string[] = [];
    for (const label of ['adm-1', 'adm-2', 'adm-3']) ids.push((await startAndSettle(def, label)).id);
    const page1 = await admin<{ data: { id: string; status: string }[]; next_cursor: string | null }>(t.url, 'GET', '/sagas?name=test.admin&status=compensated&limit=2', undefined, VIEWER_TOKEN);
    expect(page1.status).toBe(200);
    expect(page1.json.data.map((s) => s.id)).toEqual([ids[2], ids[1]]);
    const page2 = await admin<{ data: { id: string }[]; next_cursor: string | null }>(t.url, 'GET', `/sagas?name=test.admin&status=compensated&limit=2&starting_after=${page1.json.next_cursor}`, undefined, VIEWER_TOKEN);
    expect(page2.json).toEqual({ object: 'list', data: [expect.objectContaining({ id: ids[0] })], has_more: false, next_cursor: null });
    expect((await admin<{ data: unknown[] }>(t.url, 'GET', '/sagas?name=test.admin&status=completed', undefined, VIEWER_TOKEN)).json.data).toEqual([]);
    const bad = await admin<{ code: string }>(t.url, 'GET', '/sagas?status=sleeping', undefined, VIEWER_TOKEN);
    expect([bad.status, bad.json.code]).toEqual([400, 'invalid_request']);

    const one = await admin<{ status: string; entity: unknown; steps: { step_id: string; status: string }[]; attempts: { step_id: string; phase: string; error_code: string | null }[]; events: { cause: string }[] }>(
      t.url, 'GET', `/sagas/${ids[0]}`, undefined, VIEWER_TOKEN);
    expect(one.json).toMatchObject({ status: 'compensated', entity: { type: 'test_order', id: 'adm-1' } });
    expect(one.json.steps.map((s) => [s.step_id, s.status])).toEqual([['a', 'compensated'], ['b', 'failed']]);
    expect(one.json.attempts.map((a) => [a.step_id, a.phase, a.error_code])).toEqual([['a', 'invoke', null], ['b', 'invoke', 'no_seat'], ['a', 'compensate', null]]);
    expect(one.json.events.map((e) => e.cause)).toContain('invoke #1 of b failed: no_seat: no_seat for good');
    const missing = await admin<{ code: string }>(t.url, 'GET', '/sagas/0190c0de-0000-7000-8000-000000000000', undefined, VIEWER_TOKEN);
    expect([missing.status, missing.json.code]).toEqual([404, 'saga_not_found']);

    const st = await admin<{ state: string; items: { kind: string; id: string; status: string; cause: string | null }[] }>(t.url, 'GET', '/status/test_order/adm-1', undefined, VIEWER_TOKEN);
    expect(st.json.state).toBe('failed');
    expect(st.json.items).toContainEqual(expect.objectContaining({ kind: 'saga', id: ids[0], status: 'compensated', cause: expect.stringMatching(/no_seat/) }));
  });

  it('the worker loop advances a started saga on its own', async () => {
    const def = t.engine.sagas.define<Input>({ name: 'test.worker', steps: [{ id: 'only', ...NOW, invoke: async () => succeed() }] });
    const { id } = await t.engine.sagas.start(pool(), def, { label: 'order-7' });
    await t.startWorker();
    await eventually(async () => (await pool().query('SELECT 1 FROM sagas WHERE id = $1 AND status = $2', [id, 'completed'])).rowCount);
    await t.worker!.shutdown();
    t.worker = undefined;
  });
});

// ---- property: random outcomes of every call, inquiry and compensation

type Call = 'ok' | 'fail' | 'fatal' | 'lost' | 'void';
type Ask = 'answer' | 'silent';
interface StepScript { invoke: Call[]; ask: Ask[]; compensate: Call[] }

const call = fc.constantFrom<Call>('ok', 'fail', 'fatal', 'lost', 'void');
const script = fc.record({
  invoke: fc.array(call, { maxLength: 4 }), ask: fc.array(fc.constantFrom<Ask>('answer', 'silent'), { maxLength: 3 }), compensate: fc.array(call, { maxLength: 4 }),
});

describe('sagas (property)', () => {
  it('ends completed, compensated or failed; every effect happens at most once and, unless it completed, known effects are undone exactly once (or a case says why not)', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(script, { minLength: 1, maxLength: 4 }), async (scripts: StepScript[]) => {
      run++;
      // The world outside: which tries took effect, which undos took effect.
      const applied = new Map<string, number>();
      const undone = new Map<string, number>();
      const invokedAfterSuccess: string[] = [];
      const succeeded = new Set<string>();
      const world = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
      const perform = (c: Call, key: string, m: Map<string, number>): StepResult => {
        if (c === 'ok' || c === 'lost') world(m, key);
        if (c === 'ok') return succeed();
        if (c === 'fail') return { status: 'failed', code: 'busy', message: 'try again' };
        if (c === 'fatal') return fatal('refused');
        return { status: 'unknown', message: 'no answer' };
      };
      const def: SagaDefinition<Input> = {
        name: `prop.${run}`,
        steps: scripts.map((sc, i) => ({
          id: `s${i}`, ...NOW,
          async invoke(ctx) {
            if (succeeded.has(ctx.stepId)) invokedAfterSuccess.push(ctx.stepId);
            const r = perform(sc.invoke.shift() ?? 'ok', ctx.idempotencyKey, applied);
            if (r.status === 'succeeded') succeeded.add(ctx.stepId);
            return r;
          },
          compensate: async (ctx) => perform(sc.compensate.shift() ?? 'ok', ctx.idempotencyKey, undone),
          async inquire(ctx) {
            if ((sc.ask.shift() ?? 'answer') === 'silent') return { status: 'unknown', message: 'cannot say' };
            const happened = (ctx.phase === 'invoke' ? applied : undone).has(ctx.idempotencyKey);
            if (happened && ctx.phase === 'invoke') succeeded.add(ctx.stepId);
            return happened ? succeed() : { status: 'failed', code: 'not_found', message: 'never happened' };
          },
        })),
      };
      t.engine.sagas.define(def);
      const { id } = await t.engine.sagas.start(pool(), def, { label: `prop-${run}` });
      const status = await settle(t.engine.sagas, id);
      const h = (await sagaHistory(pool(), id))!;
      expect(['completed', 'compensated', 'failed']).toContain(status);
      expect(invokedAfterSuccess).toEqual([]);
      const effects = (sid: string, m: Map<string, number>) => [...m].filter(([k]) => k.startsWith(`saga:${id}:${sid}:`)).reduce((n, [, v]) => n + v, 0);
      for (const step of h.steps) {
        // At most one effect per step: a try with an unknown outcome is asked about, never simply repeated.
        expect(effects(step.step_id, applied)).toBeLessThanOrEqual(1);
        expect(effects(step.step_id, undone)).toBeLessThanOrEqual(1);
        if (status === 'completed') expect([step.step_id, step.status, effects(step.step_id, applied)]).toEqual([step.step_id, 'succeeded', 1]);
        if (step.status === 'compensated') expect(effects(step.step_id, undone)).toBe(1);
        if (step.status === 'unknown' || step.status === 'failed') expect(effects(step.step_id, undone)).toBe(0);
        if (status === 'compensated') expect(['compensated', 'failed', 'pending']).toContain(step.status);
        if (status === 'compensated' && step.status === 'failed') expect(effects(step.step_id, applied)).toBe(0);
      }
      const cases = await listCases(pool(), { subjectType: 'saga', subjectId: id, limit: 5 });
      expect(cases.length).toBe(status === 'failed' ? 1 : 0);
      await expectOnlyTableEdges(id);
    }), { numRuns: 100, seed: 1010 });
  }, 300_000);
});
