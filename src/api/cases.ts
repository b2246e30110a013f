// Admin API for cases under /admin/v1/cases: list and filter, read one with its history, open one
// by hand, assign, comment, investigate, resolve (optionally with an action performed through the
// normal paths), close as won't fix, and manual ledger adjustments with two-person approval.
// Reads need the viewer role, changes the operator role; the token's name is the actor.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { withTx } from '../kernel/db.ts';
import {
  CASE_STATUSES, CASE_SUBJECT_TYPES, CaseError, approveAdjustment, assignCase, caseEvents, commentCase, getCase, listAdjustments, listCases,
  openCase, logCaseOpened, logCaseClosed, proposeAdjustment, adjustmentProposal, rejectAdjustment, resolveCase, transitionOrThrow, MANUAL_LEDGER_ADJUSTMENT,
  type Adjustment, type Case, type CaseEvent, type CaseStatus,
} from '../cases/index.ts';
import { listOf, listQuery, pageOf, wholeList } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const uuid = z.string().uuid();
const name = z.string().min(1).max(200);
const note = z.string().min(1).max(10_000);
const subjectType = z.enum(CASE_SUBJECT_TYPES);
const subject = z.object({ type: subjectType, id: z.string().min(1).max(255) }).strict();
const statusList = z.string().max(200).transform((s, ctx) => {
  const parts = s.split(',').map((p) => p.trim()).filter(Boolean);
  const bad = parts.filter((p) => !(CASE_STATUSES as readonly string[]).includes(p));
  if (bad.length || parts.length === 0) ctx.addIssue({ code: 'custom', message: `statuses are ${CASE_STATUSES.join(', ')} (comma-separated)` });
  return parts as CaseStatus[];
});

// Response shapes, for /openapi.json (the values below are built by caseJson and friends).
const when = z.string().describe('ISO 8601 time');
const caseResponse = z.object({
  id: z.string(), kind: z.string(), cause: z.string(), status: z.enum(CASE_STATUSES), subject, related: z.array(subject), summary: z.string(),
  details: z.record(z.string(), z.unknown()), assignee: z.string().nullable(), opened_by: z.string(), seen_count: z.number(),
  opened_at: when, last_seen_at: when, updated_at: when, closed_at: when.nullable(), resolution: z.record(z.string(), z.unknown()).nullable(),
});
const adjustmentResponse = z.object({
  id: z.string(), case_id: z.string(), status: z.enum(['proposed', 'posted', 'rejected']),
  entries: z.array(z.object({ account_id: z.string(), amount: z.string().describe('minor units as a decimal string') })), memo: z.string(),
  proposed_by: z.string(), proposed_at: when, decided_by: z.string().nullable(), decided_at: when.nullable(), decision_note: z.string().nullable(),
  ledger_transaction_id: z.string().nullable(),
});
const fullCaseResponse = caseResponse.extend({
  events: z.array(z.object({
    id: z.string(), at: when, actor: z.string(), type: z.string(), from_status: z.string().nullable(), to_status: z.string().nullable(),
    note: z.string().nullable(), data: z.record(z.string(), z.unknown()),
  })),
  adjustments: z.array(adjustmentResponse),
});

/** A case on the wire (API and `seigo cases --json`): snake_case, as every answer. */
export const caseJson = (c: Case) => ({
  id: c.id, kind: c.kind, cause: c.cause, status: c.status, subject: c.subject, related: c.related, summary: c.summary, details: c.details,
  assignee: c.assignee, opened_by: c.openedBy, seen_count: c.seenCount, opened_at: c.openedAt, last_seen_at: c.lastSeenAt,
  updated_at: c.updatedAt, closed_at: c.closedAt, resolution: c.resolution,
});
export const eventJson = (e: CaseEvent) => ({ id: e.id, at: e.at, actor: e.actor, type: e.type, from_status: e.fromStatus, to_status: e.toStatus, note: e.note, data: e.data });
const adjustmentJson = (a: Adjustment) => ({
  id: a.id, case_id: a.caseId, status: a.status, entries: a.entries.map((e) => ({ account_id: e.accountId, amount: e.amount.toString() })), memo: a.memo,
  proposed_by: a.proposedBy, proposed_at: a.proposedAt, decided_by: a.decidedBy, decided_at: a.decidedAt, decision_note: a.decisionNote,
  ledger_transaction_id: a.ledgerTransactionId,
});

/** The operator behind the request: the admin token's configured name. */
const actorOf = (req: FastifyRequest): string => req.admin?.name ?? 'unknown';

export async function caseRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const P = '/admin/v1/cases';
  const caseParams = z.object({ id: uuid });

  const full = async (id: string) => {
    const c = await getCase(pool, id);
    if (!c) throw new CaseError('case_not_found', `no case ${id}`);
    return { ...caseJson(c), events: (await caseEvents(pool, id)).map(eventJson), adjustments: (await listAdjustments(pool, id)).map(adjustmentJson) };
  };

  route(app, registry, {
    method: 'GET', url: P, tags: ['cases'], role: 'viewer',
    summary: 'List cases, newest first; filter by status (comma-separated), kind, cause, assignee (or unassigned=true), subject, or concerns=type:id (subject or related)',
    query: z.object({
      status: statusList.optional(), kind: z.string().max(100).optional(), cause: z.string().max(200).optional(),
      assignee: name.optional(), unassigned: z.enum(['true', 'false']).optional(),
      subject_type: subjectType.optional(), subject_id: z.string().min(1).max(255).optional(),
      concerns: z.string().max(300).transform((v, ctx) => {
        const [type, ...rest] = v.split(':');
        const parsed = subject.safeParse({ type, id: rest.join(':') });
        if (!parsed.success) ctx.addIssue({ code: 'custom', message: `"type:id" with a type among ${CASE_SUBJECT_TYPES.join(', ')}` });
        return parsed.data;
      }).optional(),
      ...listQuery({ max: 500, default: 50 }),
    }),
    response: listOf(caseResponse),
  }, async ({ query }) => {
    const list = await listCases(pool, {
      status: query.status, kind: query.kind, cause: query.cause,
      assignee: query.unassigned === 'true' ? null : query.assignee,
      subjectType: query.subject_type, subjectId: query.subject_id, concerns: query.concerns,
      before: query.starting_after, limit: query.limit + 1,
    });
    return pageOf(list, query.limit, (c) => c.id, caseJson);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/:id`, tags: ['cases'], role: 'viewer', errors: { 404: ['case_not_found'] }, summary: 'One case with its full history and adjustments', params: caseParams,
    response: fullCaseResponse,
  }, async ({ params }) => full(params.id));

  route(app, registry, {
    method: 'POST', url: P, tags: ['cases'], role: 'operator',
    summary: 'Open a case by hand (201); when one is already open for the subject and cause, it is returned with opened: false (200)',
    body: z.object({
      kind: z.string().min(1).max(100), cause: z.string().regex(/^[a-z0-9_.-]{1,200}$/, 'a stable code: lowercase letters, digits, "_", "." and "-"'),
      subject, related: z.array(subject).max(50).optional(), summary: z.string().min(1).max(2000),
      details: z.record(z.string(), z.unknown()).optional(),
    }).strict(),
    response: fullCaseResponse.extend({ opened: z.boolean() }),
  }, async ({ body, req, reply }) => {
    const r = await withTx(pool, (tx) => openCase(tx, {
      kind: body.kind, cause: body.cause, subject: body.subject, summary: body.summary, actor: actorOf(req),
      ...(body.related ? { related: body.related } : {}), ...(body.details ? { details: body.details } : {}),
    }));
    logCaseOpened(engine.log, r, body);
    reply.code(r.opened ? 201 : 200);
    return { ...(await full(r.id)), opened: r.opened };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/assign`, tags: ['cases'], role: 'operator', errors: { 404: ['case_not_found'], 409: ['case_closed'] }, summary: 'Assign an open case to an operator (null unassigns)', response: fullCaseResponse,
    params: caseParams, body: z.object({ assignee: name.nullable(), note: note.optional() }).strict(),
  }, async ({ params, body, req }) => {
    await withTx(pool, (tx) => assignCase(tx, params.id, body.assignee, actorOf(req), body.note));
    return full(params.id);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/comments`, tags: ['cases'], role: 'operator', errors: { 404: ['case_not_found'], 409: ['case_closed'] }, responseStatus: 201, summary: 'Add a note to a case', response: fullCaseResponse,
    params: caseParams, body: z.object({ note }).strict(),
  }, async ({ params, body, req }) => {
    await withTx(pool, (tx) => commentCase(tx, params.id, body.note, actorOf(req)));
    return full(params.id);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/investigate`, tags: ['cases'], role: 'operator', errors: { 404: ['case_not_found'], 409: ['case_transition_not_allowed'] }, summary: 'Mark an open case as being investigated', response: fullCaseResponse,
    params: caseParams, body: z.object({ note: note.optional() }).strict(),
  }, async ({ params, body, req }) => {
    await withTx(pool, (tx) => transitionOrThrow(tx, params.id, 'investigating', { actor: actorOf(req), note: body.note }));
    return full(params.id);
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/resolve`, tags: ['cases'], role: 'operator', errors: { 400: ['adjustment_invalid', 'adjustment_unbalanced'], 404: ['case_not_found', 'account_not_found'], 409: ['case_transition_not_allowed', 'case_closed'], 422: ['action_not_available'] },
    summary: `Resolve a case, optionally performing an action through the normal paths first (see GET /admin/v1/case-actions); ${MANUAL_LEDGER_ADJUSTMENT} proposes entries that a second operator approves (202)`,
    params: caseParams,
    body: z.object({
      note: note.optional(),
      action: z.object({ type: z.string().min(1).max(100), params: z.record(z.string(), z.unknown()).optional() }).strict().optional(),
    }).strict(),
  }, async ({ params, body, req, reply }) => {
    const out = await resolveCase(pool, engine.caseActions, params.id, { actor: actorOf(req), note: body.note, action: body.action });
    if (!out.resolved) {
      reply.code(202);
      return { ...(await full(params.id)), awaiting_approval: adjustmentJson(out.adjustment) };
    }
    logCaseClosed(engine.log, { id: params.id, status: 'resolved' }, actorOf(req));
    return { ...(await full(params.id)), ...(out.action ? { action: out.action } : {}) };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/wont-fix`, tags: ['cases'], role: 'operator', errors: { 404: ['case_not_found'], 409: ['case_transition_not_allowed'] }, summary: "Close a case as won't fix; the note says why", response: fullCaseResponse,
    params: caseParams, body: z.object({ note }).strict(),
  }, async ({ params, body, req }) => {
    const closed = await withTx(pool, (tx) => transitionOrThrow(tx, params.id, 'wont_fix', { actor: actorOf(req), note: body.note }));
    logCaseClosed(engine.log, closed, actorOf(req));
    return full(params.id);
  });

  // ---- manual ledger adjustments (four eyes)
  const adjustmentParams = z.object({ id: uuid, adjustmentId: uuid });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/adjustments`, tags: ['cases'], role: 'operator', errors: { 400: ['adjustment_invalid', 'adjustment_unbalanced'], 404: ['case_not_found', 'account_not_found'], 409: ['case_closed'] }, responseStatus: 201,
    summary: 'Propose a manual ledger adjustment (balanced entries and a memo) on an open case; a different operator must approve it',
    params: caseParams, body: adjustmentProposal, response: adjustmentResponse,
  }, async ({ params, body, req }) => adjustmentJson(await proposeAdjustment(pool, params.id, {
    entries: body.entries.map((e) => ({ accountId: e.account_id, amount: BigInt(e.amount) })), memo: body.memo, actor: actorOf(req),
  })));

  route(app, registry, {
    method: 'POST', url: `${P}/:id/adjustments/:adjustmentId/approve`, tags: ['cases'], role: 'operator', errors: { 403: ['adjustment_self_approval'], 404: ['case_not_found', 'adjustment_not_found'], 409: ['adjustment_not_pending', 'case_closed'] },
    summary: 'Approve a proposed adjustment (not its proposer: 403 adjustment_self_approval): posts it to the ledger once and resolves the case',
    params: adjustmentParams, body: z.object({ note: note.optional() }).strict(),
    response: adjustmentResponse.extend({ duplicate: z.boolean() }),
  }, async ({ params, body, req }) => {
    const r = await approveAdjustment(pool, params.id, params.adjustmentId, { actor: actorOf(req), note: body.note });
    return { ...adjustmentJson(r.adjustment), duplicate: r.duplicate };
  });

  route(app, registry, {
    method: 'POST', url: `${P}/:id/adjustments/:adjustmentId/reject`, tags: ['cases'], role: 'operator', errors: { 404: ['case_not_found', 'adjustment_not_found'], 409: ['adjustment_not_pending'] },
    summary: 'Reject a proposed adjustment (or withdraw your own); nothing is posted',
    params: adjustmentParams, body: z.object({ note }).strict(), response: adjustmentResponse,
  }, async ({ params, body, req }) => adjustmentJson(await rejectAdjustment(pool, params.id, params.adjustmentId, { actor: actorOf(req), note: body.note })));

  route(app, registry, {
    method: 'GET', url: '/admin/v1/case-actions', tags: ['cases'], role: 'viewer', summary: 'The actions a case may be resolved with in this deployment',
  }, async () => wholeList(
    [...engine.caseActions.list(), { name: MANUAL_LEDGER_ADJUSTMENT, description: 'Post balanced ledger entries once a second operator approves them' }]
      .sort((a, b) => a.name.localeCompare(b.name)),
  ));
}
