// What an operator sees: a Request-Id on every response, echoed when the caller sends one, and
// at `info` one log line per request, per case opened or closed and per reconciliation run, levels as names;
// reconciliation runs record when they really started and finished.
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../kernel/logger.ts';
import { reconcileDepsOf, runReconcile } from '../reconcile/index.ts';
import { OPERATOR_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

let t: TestEngine;
let out = '';
const lines = () => out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  const sink = new Writable({ write(chunk, _enc, cb) { out += chunk.toString(); cb(); } });
  t = await startTestEngine({ log: createLogger('info', { destination: sink, pretty: false }) });
});
afterAll(async () => { await t.close(); });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('Request-Id', () => {
  it('is on every response: ours when none is sent, the caller\'s echoed, and on refusals too', async () => {
    const ours = await request(`${t.url}/admin/v1/cases`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    await ours.body.dump();
    expect(ours.statusCode).toBe(200);
    expect(ours.headers['request-id']).toMatch(UUID);

    for (const [path, status] of [['/admin/v1/cases', 401], ['/nowhere', 404], ['/healthz', 200]] as const) {
      const r = await request(`${t.url}${path}`, { headers: { 'request-id': `req_caller_${status}` } });
      await r.body.dump();
      expect(r.statusCode).toBe(status);
      expect(r.headers['request-id']).toBe(`req_caller_${status}`);
    }
    // One that could forge a log line is replaced, not echoed.
    const bad = await request(`${t.url}/healthz`, { headers: { 'request-id': 'a b' } });
    await bad.body.dump();
    expect(bad.headers['request-id']).toMatch(UUID);
  });

  it('is logged with the request: one info line with method, route, status and ms', async () => {
    const line = lines().find((l) => l.req_id === 'req_caller_401');
    expect(line).toMatchObject({ level: 'info', msg: 'request', method: 'GET', route: '/admin/v1/cases', status: 401 });
    expect(typeof line?.ms).toBe('number');
    // Probes stay out of the info log.
    expect(lines().some((l) => l.req_id === 'req_caller_200')).toBe(false);
  });
});

describe('log lines for what needs a person', () => {
  it('a case opened and closed by hand', async () => {
    const auth = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
    const opened = await request(`${t.url}/admin/v1/cases`, {
      method: 'POST', headers: auth,
      body: JSON.stringify({ kind: 'deposit', cause: 'observed_by_hand', subject: { type: 'deposit', id: 'dep_obs_1' }, summary: 'looks odd' }),
    });
    const c = await opened.body.json() as { id: string };
    expect(opened.statusCode).toBe(201);
    const closed = await request(`${t.url}/admin/v1/cases/${c.id}/wont-fix`, { method: 'POST', headers: auth, body: JSON.stringify({ note: 'fine after all' }) });
    await closed.body.dump();
    expect(closed.statusCode).toBe(200);
    expect(lines()).toEqual(expect.arrayContaining([
      expect.objectContaining({ level: 'info', msg: 'case opened', case_id: c.id, cause: 'observed_by_hand', subject: 'deposit:dep_obs_1' }),
      expect.objectContaining({ level: 'info', msg: 'case closed', case_id: c.id, status: 'wont_fix', actor: 'op' }),
    ]));
  });

  it('a reconciliation run, with its real start and finish times recorded', async () => {
    const before = new Date();
    const r = await runReconcile(reconcileDepsOf(t.engine), { source: 'deliveries', from: new Date(Date.now() - 3_600_000), to: new Date() });
    const after = new Date();
    const row = (await t.tdb.db.pool.query<{ started_at: Date; finished_at: Date }>('SELECT started_at, finished_at FROM reconcile_runs WHERE id = $1', [r.id])).rows[0]!;
    expect(row.started_at.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1);
    expect(row.finished_at.getTime()).toBeGreaterThan(row.started_at.getTime());
    expect(row.finished_at.getTime()).toBeLessThanOrEqual(after.getTime() + 1_000);
    expect(lines()).toContainEqual(expect.objectContaining({ level: 'info', msg: 'reconcile run finished', run_id: r.id, scope: r.scope }));
  });
});
