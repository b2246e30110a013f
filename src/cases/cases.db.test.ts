// Cases on a real PostgreSQL: one open case per (subject, cause) however many callers race to
// open it, inside the caller's transaction; the state machine as a property (every edge taken is
// in the table, every refusal leaves the case as it was); history with actor and time.
import fc from 'fast-check';
import { propertyParams } from '../../test/helpers/property.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTx } from '../kernel/db.ts';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.ts';
import {
  CASE_STATUSES, CASE_TRANSITIONS, assignCase, caseEvents, commentCase, getCase, listCases, openCase, transitionCase, type CaseStatus, type OpenCaseInput,
} from './index.ts';

let tdb: TestDatabase;
beforeAll(async () => { tdb = await createTestDatabase({ max: 20 }); });
afterAll(async () => { await tdb?.drop(); });

let n = 0;
const input = (over: Partial<OpenCaseInput> = {}): OpenCaseInput => ({
  kind: 'operation', cause: 'operation_unknown_overdue', subject: { type: 'operation', id: `op-${++n}` }, summary: 'still unknown', ...over,
});

describe('openCase', () => {
  it('opens once per subject and cause; seeing it again counts and records an event', async () => {
    const c = input({ related: [{ type: 'deposit', id: 'dep-1' }], details: { provider: 'stripe' } });
    const first = await openCase(tdb.db.pool, c);
    expect(first.opened).toBe(true);
    const again = await openCase(tdb.db.pool, { ...c, summary: 'seen again' });
    expect(again).toEqual({ id: first.id, opened: false });
    const got = (await getCase(tdb.db.pool, first.id))!;
    expect(got).toMatchObject({ status: 'open', seenCount: 2, openedBy: 'system', related: [{ type: 'deposit', id: 'dep-1' }], details: { provider: 'stripe' } });
    expect((await caseEvents(tdb.db.pool, first.id)).map((e) => e.type)).toEqual(['opened', 'seen_again']);
    // Another cause on the same record is another case.
    const other = await openCase(tdb.db.pool, { ...c, cause: 'operation_failed_after_charge' });
    expect(other.opened).toBe(true);
    expect(other.id).not.toBe(first.id);
    // The opening is announced through the outbox (for a Slack digest or an on-call hook).
    const m = await tdb.db.pool.query('SELECT topic, payload FROM outbox_messages WHERE id = $1', [first.id]);
    expect(m.rows[0]).toMatchObject({ topic: 'case.opened', payload: { cause: 'operation_unknown_overdue', subject: c.subject } });
  });

  it('concurrent callers open exactly one case', async () => {
    const c = input();
    const results = await Promise.all(Array.from({ length: 12 }, () => withTx(tdb.db.pool, (tx) => openCase(tx, c))));
    expect(results.filter((r) => r.opened)).toHaveLength(1);
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    const rows = await tdb.db.pool.query('SELECT seen_count FROM cases WHERE subject_id = $1', [c.subject.id]);
    expect(rows.rows).toEqual([{ seen_count: 12 }]);
    // History in the order it happened, past ten events too.
    expect((await caseEvents(tdb.db.pool, results[0]!.id)).map((e) => e.type)).toEqual(['opened', ...Array(11).fill('seen_again')]);
  });

  it('works inside the caller transaction: a rollback leaves no case', async () => {
    const c = input();
    await expect(withTx(tdb.db.pool, async (tx) => {
      await openCase(tx, c);
      throw new Error('caller failed');
    })).rejects.toThrow('caller failed');
    expect(await listCases(tdb.db.pool, { subjectId: c.subject.id, limit: 10 })).toEqual([]);
  });

  it('a closed case does not absorb a new report: the problem coming back opens a new case', async () => {
    const c = input();
    const first = await openCase(tdb.db.pool, c);
    await transitionCase(tdb.db.pool, first.id, 'resolved', { actor: 'alice', note: 'fixed' });
    const second = await openCase(tdb.db.pool, c);
    expect(second.opened).toBe(true);
    expect(second.id).not.toBe(first.id);
  });
});

describe('the case state machine', () => {
  it('takes only edges in its table, and a refusal changes nothing (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.constantFrom(...CASE_STATUSES), { minLength: 1, maxLength: 6 }), async (targets) => {
      const { id } = await openCase(tdb.db.pool, input({ cause: 'prop' }));
      let model: CaseStatus = 'open';
      for (const to of targets) {
        const moved = await transitionCase(tdb.db.pool, id, to, { actor: 'prop', note: `to ${to}` });
        const allowed = CASE_TRANSITIONS[model].includes(to);
        expect(moved !== null).toBe(allowed);
        if (allowed) model = to;
        const now = (await getCase(tdb.db.pool, id))!;
        expect(now.status).toBe(model);
        expect(now.closedAt !== null).toBe(model === 'resolved' || model === 'wont_fix');
      }
      const edges = (await caseEvents(tdb.db.pool, id)).filter((e) => e.type === 'transitioned');
      for (const e of edges) expect(CASE_TRANSITIONS[e.fromStatus!]).toContain(e.toStatus);
      expect(edges.at(-1)?.toStatus ?? 'open').toBe(model);
    }), propertyParams('case transitions follow the table'));
  });

  it('records assignment, notes and transitions with actor and time', async () => {
    const { id } = await openCase(tdb.db.pool, input());
    await withTx(tdb.db.pool, (tx) => assignCase(tx, id, 'alice', 'bob', 'yours'));
    await withTx(tdb.db.pool, (tx) => commentCase(tx, id, 'asked the provider by mail', 'alice'));
    await transitionCase(tdb.db.pool, id, 'investigating', { actor: 'alice' });
    await transitionCase(tdb.db.pool, id, 'wont_fix', { actor: 'alice', note: 'provider confirms nothing happened' });
    const ev = await caseEvents(tdb.db.pool, id);
    expect(ev.map((e) => [e.type, e.actor, e.toStatus])).toEqual([
      ['opened', 'system', 'open'], ['assigned', 'bob', null], ['commented', 'alice', null],
      ['transitioned', 'alice', 'investigating'], ['transitioned', 'alice', 'wont_fix'],
    ]);
    expect(ev.every((e) => e.at instanceof Date)).toBe(true);
    await expect(withTx(tdb.db.pool, (tx) => assignCase(tx, id, 'carol', 'bob'))).rejects.toMatchObject({ code: 'case_closed' });
  });
});
