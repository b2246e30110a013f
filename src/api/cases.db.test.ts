// The cases admin API over real HTTP: roles, filters and cursor pagination, the lifecycle with
// actors taken from the admin tokens, problem+json refusals, and manual ledger adjustments with
// two-person approval (the proposer cannot approve; two approvals at once post exactly once).
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCase } from '../cases/index.ts';
import { withTx } from '../kernel/db.ts';
import { ensureAccount, getBalance } from '../ledger/index.ts';
import { admin } from '../../test/helpers/admin.ts';
import { createSeigoClient, must, ProblemError, type operations } from '../../clients/typescript/src/index.ts';
import { OPERATOR_TOKEN, VIEWER_TOKEN, startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const ALICE = 'alice-operator-token-0123456789';
const BOB = 'bob-operator-token-0123456789ab';

let t: TestEngine;
beforeAll(async () => {
  t = await startTestEngine({
    config: {
      adminTokens: [
        { name: 'op', token: OPERATOR_TOKEN, role: 'operator' }, { name: 'view', token: VIEWER_TOKEN, role: 'viewer' },
        { name: 'alice', token: ALICE, role: 'operator' }, { name: 'bob', token: BOB, role: 'operator' },
      ],
    },
  });
});
afterAll(async () => { await t?.close(); });

interface CaseJson {
  id: string; kind: string; cause: string; status: string; assignee: string | null; subject: { type: string; id: string }; opened_by: string;
  resolution: Record<string, unknown> | null; events: { type: string; actor: string; from_status: string | null; to_status: string | null; note: string | null; data: Record<string, unknown> }[];
  adjustments: AdjustmentJson[];
}
interface AdjustmentJson { id: string; status: string; proposed_by: string; decided_by: string | null; ledger_transaction_id: string | null; duplicate?: boolean }

let n = 0;
async function open(over: { kind?: string; cause?: string; type?: 'deposit' | 'operation' | 'delivery'; id?: string } = {}): Promise<string> {
  const r = await withTx(t.tdb.db.pool, (tx) => openCase(tx, {
    kind: over.kind ?? 'deposit', cause: over.cause ?? 'test_cause', subject: { type: over.type ?? 'deposit', id: over.id ?? `rec-${++n}` }, summary: 'a problem',
  }));
  return r.id;
}

describe('roles', () => {
  it('no token is 401, a viewer reads but cannot change (403), all as problem+json', async () => {
    const id = await open();
    const anon = await request(`${t.url}/admin/v1/cases`);
    expect(anon.statusCode).toBe(401);
    expect(anon.headers['content-type']).toContain('application/problem+json');
    expect(await anon.body.json()).toMatchObject({ code: 'unauthorized' });
    expect((await admin(t.url, 'GET', `/cases/${id}`, undefined, VIEWER_TOKEN)).status).toBe(200);
    const denied = await admin(t.url, 'POST', `/cases/${id}/comments`, { note: 'hi' }, VIEWER_TOKEN);
    expect(denied).toMatchObject({ status: 403, json: { code: 'forbidden' } });
  });

  it('documents every case route in /openapi.json', async () => {
    const doc = await (await request(`${t.url}/openapi.json`)).body.json() as { paths: Record<string, Record<string, { security?: unknown }>> };
    const paths = Object.keys(doc.paths).filter((p) => p.startsWith('/admin/v1/case'));
    expect(paths.sort()).toEqual([
      '/admin/v1/case-actions', '/admin/v1/cases', '/admin/v1/cases/{id}', '/admin/v1/cases/{id}/adjustments',
      '/admin/v1/cases/{id}/adjustments/{adjustmentId}/approve', '/admin/v1/cases/{id}/adjustments/{adjustmentId}/reject',
      '/admin/v1/cases/{id}/assign', '/admin/v1/cases/{id}/comments', '/admin/v1/cases/{id}/investigate', '/admin/v1/cases/{id}/resolve',
      '/admin/v1/cases/{id}/wont-fix',
    ]);
    for (const p of paths) for (const op of Object.values(doc.paths[p]!)) expect(op.security).toEqual([{ bearer: [] }, { sessionCookie: [] }]);
  });
});

describe('lifecycle', () => {
  it('open by hand (idempotent), assign, comment, investigate, resolve: every change with the token name as actor', async () => {
    const body = { kind: 'ledger', cause: 'manual_check', subject: { type: 'ledger_account', id: 'acc-1' }, summary: 'balance looks off', details: { seen: 'console' } };
    const first = await admin<CaseJson & { opened: boolean }>(t.url, 'POST', '/cases', body, ALICE);
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ opened: true, status: 'open', opened_by: 'alice', kind: 'ledger' });
    const again = await admin<CaseJson & { opened: boolean }>(t.url, 'POST', '/cases', body, BOB);
    expect(again).toMatchObject({ status: 200, json: { id: first.json.id, opened: false } });
    const id = first.json.id;

    expect((await admin<CaseJson>(t.url, 'POST', `/cases/${id}/assign`, { assignee: 'bob', note: 'you know this account' }, ALICE)).json.assignee).toBe('bob');
    expect((await admin(t.url, 'POST', `/cases/${id}/comments`, { note: 'checked the entries' }, BOB)).status).toBe(201);
    expect((await admin<CaseJson>(t.url, 'POST', `/cases/${id}/investigate`, {}, BOB)).json.status).toBe('investigating');
    const done = await admin<CaseJson>(t.url, 'POST', `/cases/${id}/resolve`, { note: 'rounding in the report, not the ledger' }, BOB);
    expect(done.status).toBe(200);
    expect(done.json.status).toBe('resolved');
    expect(done.json.events.map((e) => [e.type, e.actor, e.to_status])).toEqual([
      ['opened', 'alice', 'open'], ['seen_again', 'bob', null], ['assigned', 'alice', null], ['commented', 'bob', null],
      ['transitioned', 'bob', 'investigating'], ['transitioned', 'bob', 'resolved'],
    ]);
    // Closed stays closed.
    const refused = await admin(t.url, 'POST', `/cases/${id}/wont-fix`, { note: 'changed my mind' });
    expect(refused).toMatchObject({ status: 409, json: { code: 'case_transition_not_allowed', status: 'resolved' } });
    expect((await admin(t.url, 'POST', `/cases/${id}/resolve`, {})).json).toMatchObject({ code: 'case_transition_not_allowed' });
  });

  it('wont-fix needs a note; unknown ids, bad filters and bad bodies are problem+json 4xx', async () => {
    const id = await open();
    expect(await admin(t.url, 'POST', `/cases/${id}/wont-fix`, {})).toMatchObject({ status: 400, json: { code: 'invalid_request' } });
    expect((await admin<CaseJson>(t.url, 'POST', `/cases/${id}/wont-fix`, { note: 'duplicate of another case' })).json.status).toBe('wont_fix');
    expect(await admin(t.url, 'GET', '/cases/0190a000-0000-7000-8000-000000000000')).toMatchObject({ status: 404, json: { code: 'case_not_found' } });
    expect(await admin(t.url, 'GET', '/cases?status=opened')).toMatchObject({ status: 400, json: { code: 'invalid_request' } });
    expect(await admin(t.url, 'POST', '/cases', { kind: 'x', cause: 'Bad Cause', subject: { type: 'deposit', id: '1' }, summary: 's' }))
      .toMatchObject({ status: 400, json: { code: 'invalid_request' } });
  });

  it('resolving with an action that is not available says which are', async () => {
    const id = await open();
    const r = await admin<{ code: string; available: string[] }>(t.url, 'POST', `/cases/${id}/resolve`, { action: { type: 'no_such_action' } });
    expect(r.status).toBe(422);
    expect(r.json.code).toBe('action_not_available');
    expect(r.json.available).toEqual(expect.arrayContaining(['manual_ledger_adjustment', 'redrive_delivery', 'reimport_row', 'retry_operation']));
    expect((await admin<CaseJson>(t.url, 'GET', `/cases/${id}`)).json.status).toBe('open');
    const listed = await admin<{ data: { name: string }[] }>(t.url, 'GET', '/case-actions', undefined, VIEWER_TOKEN);
    expect(listed.json.data.map((a) => a.name)).toEqual(['manual_ledger_adjustment', 'redrive_delivery', 'reimport_row', 'replay_inbox', 'retry_operation']);
    // An action that does not apply to this case (no delivery among its records) is refused and recorded.
    const na = await admin(t.url, 'POST', `/cases/${id}/resolve`, { action: { type: 'redrive_delivery' } });
    expect(na).toMatchObject({ status: 422, json: { code: 'action_not_applicable' } });
    const ev = (await admin<CaseJson>(t.url, 'GET', `/cases/${id}`)).json.events;
    // A case opened by hand may name a record by any text; an action needs a real id.
    const byHand = await admin<CaseJson>(t.url, 'POST', '/cases', { kind: 'operation', cause: 'by_hand', subject: { type: 'operation', id: 'not-a-uuid' }, summary: 's' });
    expect(await admin(t.url, 'POST', `/cases/${byHand.json.id}/resolve`, { action: { type: 'retry_operation' } }))
      .toMatchObject({ status: 422, json: { code: 'action_not_applicable' } });
    expect(await admin(t.url, 'POST', `/cases/${byHand.json.id}/resolve`, { action: { type: 'retry_operation', params: { operation_id: 'x' } } }))
      .toMatchObject({ status: 422, json: { code: 'invalid_action_params' } });
    expect(ev.at(-1)).toMatchObject({ type: 'action_failed', actor: 'op', data: { action: 'redrive_delivery', code: 'action_not_applicable' } });
  });
});

describe('list', () => {
  // Through the generated TypeScript client (clients/typescript): the query and the page are typed by the OpenAPI document.
  it('filters by status, kind, cause, assignee, subject; pages with starting_after / next_cursor without gaps or repeats', async () => {
    const viewer = createSeigoClient({ baseUrl: t.url, token: VIEWER_TOKEN });
    const kind = `k${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await open({ kind, cause: i % 2 ? 'odd' : 'even', type: 'operation', id: `op-list-${i}` }));
    await admin(t.url, 'POST', `/cases/${ids[0]}/assign`, { assignee: 'carol' });
    await admin(t.url, 'POST', `/cases/${ids[1]}/investigate`, {});
    await admin(t.url, 'POST', `/cases/${ids[2]}/wont-fix`, { note: 'noise' });

    type CasePage = operations['adminGetCases']['responses']['200']['content']['application/json'];
    type Query = Omit<NonNullable<operations['adminGetCases']['parameters']['query']>, 'kind'>;
    const q = async (query: Query) => (await must(viewer.GET('/admin/v1/cases', { params: { query: { kind, ...query } } }))).data.map((c) => c.id);
    expect(await q({ cause: 'odd' })).toEqual([ids[5], ids[3], ids[1]]);
    expect(await q({ status: 'investigating,wont_fix' })).toEqual([ids[2], ids[1]]);
    expect(await q({ status: 'open', cause: 'even' })).toEqual([ids[6], ids[4], ids[0]]);
    expect(await q({ assignee: 'carol' })).toEqual([ids[0]]);
    expect((await q({ unassigned: 'true' })).length).toBe(6);
    expect(await q({ subject_type: 'operation', subject_id: 'op-list-3' })).toEqual([ids[3]]);
    const related = await withTx(t.tdb.db.pool, (tx) => openCase(tx, {
      kind, cause: 'odd', subject: { type: 'delivery', id: 'dl-1' }, related: [{ type: 'operation', id: 'op-list-3' }], summary: 'names op-list-3 too',
    }));
    expect(await q({ concerns: 'operation:op-list-3' })).toEqual([related.id, ids[3]]);
    const refused = await must(viewer.GET('/admin/v1/cases', { params: { query: { concerns: 'wallet:1' } } })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ProblemError);
    expect((refused as ProblemError).problem).toMatchObject({ status: 400, code: 'invalid_request' });
    await admin(t.url, 'POST', `/cases/${related.id}/wont-fix`, { note: 'listed above' });

    const seen: string[] = [];
    const pages: { n: number; has_more: boolean }[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const query: Query & { kind: string } = { kind, limit: 3, ...(cursor ? { starting_after: cursor } : {}) };
      const r: CasePage = await must(viewer.GET('/admin/v1/cases', { params: { query } }));
      expect(r.object).toBe('list');
      seen.push(...r.data.map((c) => c.id));
      pages.push({ n: r.data.length, has_more: r.has_more });
      cursor = r.next_cursor;
      if (!cursor) break;
    }
    expect(seen).toEqual([related.id, ...[...ids].reverse()]);
    // 8 cases in pages of 3: the last page says there is no more, and no page is empty.
    expect(pages).toEqual([{ n: 3, has_more: true }, { n: 3, has_more: true }, { n: 2, has_more: false }]);
    // Open cases are a gauge an alert can watch: 6 of the 7 wait for a person (one is won't fix).
    const metrics = await (await request(`${t.url}/metrics`)).body.text();
    expect(metrics).toContain(`seigo_cases_open{kind="${kind}",cause="even"} 3`);
    expect(metrics).toContain(`seigo_cases_open{kind="${kind}",cause="odd"} 3`);
  });
});

describe('manual ledger adjustment with two-person approval', () => {
  async function accounts() {
    const suspense = await ensureAccount(t.tdb.db.pool, { kind: 'suspense', owner: `unmatched-${++n}`, currency: 'JPY' });
    const wallet = await ensureAccount(t.tdb.db.pool, { kind: 'wallet', owner: `user-${++n}`, currency: 'JPY' });
    return { suspense, wallet };
  }

  it('the proposer cannot approve; another operator approves and the posting is made once, resolving the case', async () => {
    const { suspense, wallet } = await accounts();
    // Money that landed in suspense (as an unmatched transfer would), to be moved to the right wallet.
    const seed = await ensureAccount(t.tdb.db.pool, { kind: 'clearing', owner: `bank-${n}`, currency: 'JPY' });
    const { post } = await import('../ledger/index.ts');
    await post(t.tdb.db.pool, { idempotencyKey: `seed-${n}`, entries: [{ accountId: seed.id, amount: -7_000n }, { accountId: suspense.id, amount: 7_000n }] });
    const id = await open({ kind: 'deposit', cause: 'bank_transfer_suspense' });
    const entries = [{ account_id: suspense.id, amount: '-7000' }, { account_id: wallet.id, amount: '7000' }];

    const proposed = await admin<CaseJson & { awaiting_approval: AdjustmentJson }>(t.url, 'POST', `/cases/${id}/resolve`,
      { note: 'payer confirmed by phone', action: { type: 'manual_ledger_adjustment', params: { entries, memo: 'move unmatched transfer to its owner' } } }, ALICE);
    expect(proposed.status).toBe(202);
    expect(proposed.json.status).toBe('open');
    const adj = proposed.json.awaiting_approval;
    expect(adj).toMatchObject({ status: 'proposed', proposed_by: 'alice', ledger_transaction_id: null });
    expect((await getBalance(t.tdb.db.pool, wallet.id))!.posted).toBe(0n);

    const self = await admin(t.url, 'POST', `/cases/${id}/adjustments/${adj.id}/approve`, {}, ALICE);
    expect(self).toMatchObject({ status: 403, json: { code: 'adjustment_self_approval' } });
    expect((await getBalance(t.tdb.db.pool, wallet.id))!.posted).toBe(0n);

    // Two other operators approve at the same moment: one posting, the other sees it as done.
    const [a, b] = await Promise.all([
      admin<AdjustmentJson>(t.url, 'POST', `/cases/${id}/adjustments/${adj.id}/approve`, { note: 'checked' }, BOB),
      admin<AdjustmentJson>(t.url, 'POST', `/cases/${id}/adjustments/${adj.id}/approve`, { note: 'checked too' }, OPERATOR_TOKEN),
    ]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect([a.json.duplicate, b.json.duplicate].sort()).toEqual([false, true]);
    expect(a.json.ledger_transaction_id).toBe(b.json.ledger_transaction_id);
    const tx = await t.tdb.db.pool.query<{ id: string; kind: string; sum: string; n: string }>(
      `SELECT t.id, t.kind, sum(e.amount)::text AS sum, count(*)::text AS n FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id
       WHERE t.idempotency_key = $1 GROUP BY t.id, t.kind`, [`case-adjustment:${adj.id}`]);
    expect(tx.rows).toEqual([{ id: a.json.ledger_transaction_id, kind: 'manual_adjustment', sum: '0', n: '2' }]);
    expect((await getBalance(t.tdb.db.pool, wallet.id))!.posted).toBe(7_000n);
    expect((await getBalance(t.tdb.db.pool, suspense.id))!.posted).toBe(0n);

    const c = (await admin<CaseJson>(t.url, 'GET', `/cases/${id}`)).json;
    expect(c.status).toBe('resolved');
    expect(c.resolution).toMatchObject({ action: 'manual_ledger_adjustment', adjustment_id: adj.id, proposed_by: 'alice' });
    expect(c.adjustments).toEqual([expect.objectContaining({ id: adj.id, status: 'posted', proposed_by: 'alice' })]);
    expect(c.events.map((e) => e.type)).toEqual(['opened', 'adjustment_proposed', 'adjustment_approved', 'transitioned']);
  });

  it('refuses unbalanced entries and unknown accounts; a rejected proposal posts nothing and cannot be approved', async () => {
    const { suspense, wallet } = await accounts();
    const id = await open();
    const unbalanced = await admin(t.url, 'POST', `/cases/${id}/adjustments`,
      { entries: [{ account_id: suspense.id, amount: '-100' }, { account_id: wallet.id, amount: '90' }], memo: 'oops' }, ALICE);
    expect(unbalanced).toMatchObject({ status: 400, json: { code: 'adjustment_unbalanced' } });
    const unknown = await admin(t.url, 'POST', `/cases/${id}/adjustments`,
      { entries: [{ account_id: suspense.id, amount: '-100' }, { account_id: '0190a000-0000-7000-8000-000000000000', amount: '100' }], memo: 'oops' }, ALICE);
    expect(unknown).toMatchObject({ status: 404, json: { code: 'account_not_found' } });

    const p = await admin<AdjustmentJson>(t.url, 'POST', `/cases/${id}/adjustments`,
      { entries: [{ account_id: suspense.id, amount: '-100' }, { account_id: wallet.id, amount: '100' }], memo: 'move 100' }, ALICE);
    expect(p.status).toBe(201);
    expect((await admin<AdjustmentJson>(t.url, 'POST', `/cases/${id}/adjustments/${p.json.id}/reject`, { note: 'wrong wallet' }, BOB)).json.status).toBe('rejected');
    expect(await admin(t.url, 'POST', `/cases/${id}/adjustments/${p.json.id}/approve`, {}, OPERATOR_TOKEN))
      .toMatchObject({ status: 409, json: { code: 'adjustment_not_pending' } });
    expect((await getBalance(t.tdb.db.pool, wallet.id))!.posted).toBe(0n);
    expect((await admin<CaseJson>(t.url, 'GET', `/cases/${id}`)).json.status).toBe('open');

    // A proposal left pending when the case is closed another way posts nothing.
    const late = await admin<AdjustmentJson>(t.url, 'POST', `/cases/${id}/adjustments`,
      { entries: [{ account_id: suspense.id, amount: '-100' }, { account_id: wallet.id, amount: '100' }], memo: 'move 100 to the right wallet' }, ALICE);
    expect((await admin(t.url, 'POST', `/cases/${id}/wont-fix`, { note: 'customer withdrew the claim' }, BOB)).status).toBe(200);
    expect(await admin(t.url, 'POST', `/cases/${id}/adjustments/${late.json.id}/approve`, {}, BOB))
      .toMatchObject({ status: 409, json: { code: 'case_closed' } });
    expect((await getBalance(t.tdb.db.pool, wallet.id))!.posted).toBe(0n);
  });
});
