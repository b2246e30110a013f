// The operator's side of partner master data, under /admin/v1/masterdata: each partner's source,
// pulls on demand (the partner API, or an uploaded CSV), change sets by product, approving and
// rejecting waiting changes (never the importer: maker-checker), rules and their dry run.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { withTx } from '../kernel/db.ts';
import { NotFoundError, SeigoError } from '../kernel/errors.ts';
import { findPartner } from '../partners/index.ts';
import {
  CHANGE_STATUSES, RULE_KINDS, changeJson, changeSet, decideChange, dryRun, getPull, getSource, listChanges, listPulls, listRules,
  pullJson, pullMaster, ruleJson, setRule, setSource, sourceJson, type DecideError, type PullSummary,
} from '../masterdata/index.ts';
import { route, type OpenApiRegistry } from './route.ts';

const P = '/admin/v1/masterdata';
const partnerParam = z.object({ partner: z.string().min(1).max(100) });
const idParam = z.object({ id: z.string().uuid() });
const actorOf = (req: FastifyRequest): string => req.admin?.name ?? 'unknown';

function decideError(e: DecideError): SeigoError {
  switch (e.code) {
    case 'change_not_found': return new NotFoundError(e.code, `no change ${e.id}`);
    case 'change_not_waiting': return new SeigoError(e.code, `change ${e.id} is ${e.status}, not waiting`, 409);
    case 'maker_cannot_approve': return new SeigoError(e.code, `change ${e.id} was imported by ${e.madeBy}: another person must decide it`, 403);
  }
}

/** A refused feed is a 422 naming every bad row; the pull itself is kept, failed. */
function pullAnswer(s: PullSummary) {
  if (s.status === 'failed') {
    throw new SeigoError('master_feed_refused', `pull ${s.id} failed: ${s.error ?? ''}`, 422, false, { pull_id: s.id, rows: s.rowErrors ?? [] });
  }
  return { id: s.id, partner_id: s.partnerId, status: s.status, counts: s.counts };
}

export async function masterdataRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const deps = { pool, dispatcher: engine.egress };
  const mustFind = async (idOrName: string) => {
    const p = await findPartner(pool, idOrName);
    if (!p) throw new NotFoundError('partner_not_found', `no partner ${idOrName}`);
    return p;
  };

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/source`, tags: ['masterdata'], role: 'operator',
    summary: "Set where the partner's master comes from: its HTTP API (pulled every interval_ms) or CSV uploads read with a mapping",
    params: partnerParam,
    body: z.object({
      kind: z.enum(['http', 'csv']), url: z.string().url().optional(), mapping: z.unknown().optional(),
      interval_ms: z.number().int().min(60_000).max(30 * 86_400_000).nullable().optional(), trusted: z.boolean().optional(),
    }).strict(),
  }, async ({ params, body }) => {
    const p = await mustFind(params.partner);
    return sourceJson(await setSource(pool, p.id, { kind: body.kind, url: body.url, mapping: body.mapping, intervalMs: body.interval_ms, trusted: body.trusted }));
  });

  route(app, registry, { method: 'GET', url: `${P}/:partner/source`, tags: ['masterdata'], role: 'viewer', summary: "The partner's master source", params: partnerParam },
    async ({ params }) => {
      const s = await getSource(pool, (await mustFind(params.partner)).id);
      if (!s) throw new NotFoundError('no_master_source', `partner ${params.partner} has no master source`);
      return sourceJson(s);
    });

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/pulls`, tags: ['masterdata'], role: 'operator', responseStatus: 201,
    summary: "Pull the partner's master now (or read an uploaded CSV), diff it with ours and record the change set; a bad feed is a 422 naming each bad row",
    params: partnerParam,
    body: z.object({ csv: z.string().min(1).max(50_000_000).optional(), mapping: z.unknown().optional() }).strict().default({}),
  }, async ({ params, body, req }) => {
    const p = await mustFind(params.partner);
    return pullAnswer(await pullMaster(deps, {
      partnerId: p.id, trigger: body.csv === undefined ? 'manual' : 'upload', actor: actorOf(req), csv: body.csv, mapping: body.mapping,
    }));
  });

  route(app, registry, { method: 'GET', url: `${P}/:partner/pulls`, tags: ['masterdata'], role: 'viewer', summary: "The partner's pulls, newest first", params: partnerParam },
    async ({ params }) => ({ data: (await listPulls(pool, (await mustFind(params.partner)).id)).map(pullJson) }));

  route(app, registry, { method: 'GET', url: `${P}/pulls/:id`, tags: ['masterdata'], role: 'viewer', summary: 'One pull with its change set, grouped by product', params: idParam },
    async ({ params }) => {
      const p = await getPull(pool, params.id);
      if (!p) throw new NotFoundError('pull_not_found', `no pull ${params.id}`);
      const products = await changeSet(pool, p.id);
      return { ...pullJson(p), products: products.map((x) => ({ product_code: x.productCode, changes: x.changes.map(changeJson) })) };
    });

  route(app, registry, {
    method: 'GET', url: `${P}/:partner/changes`, tags: ['masterdata'], role: 'viewer', summary: "The partner's changes (e.g. ?status=waiting), oldest first",
    params: partnerParam, query: z.object({ status: z.enum(CHANGE_STATUSES).optional(), limit: z.coerce.number().int().min(1).max(5000).default(500) }).strict(),
  }, async ({ params, query }) => ({ data: (await listChanges(pool, (await mustFind(params.partner)).id, query.status ?? null, query.limit)).map(changeJson) }));

  for (const [verb, decision] of [['approve', 'approved'], ['reject', 'rejected']] as const) {
    route(app, registry, {
      method: 'POST', url: `${P}/changes/:id/${verb}`, tags: ['masterdata'], role: 'operator',
      summary: `${verb === 'approve' ? 'Approve (and apply)' : 'Reject'} a waiting change; the person who imported it may not`,
      params: idParam, body: z.object({ reason: decision === 'rejected' ? z.string().min(1).max(2000) : z.string().max(2000).optional() }).strict(),
    }, async ({ params, body, req }) => {
      const r = await withTx(pool, (tx) => decideChange(tx, params.id, decision, actorOf(req), body.reason ?? null));
      if (!r.ok) throw decideError(r.error);
      return changeJson(r.value);
    });
  }

  route(app, registry, { method: 'GET', url: `${P}/:partner/rules`, tags: ['masterdata'], role: 'viewer', summary: "The partner's auto-approval rules", params: partnerParam },
    async ({ params }) => ({ data: (await listRules(pool, (await mustFind(params.partner)).id)).map(ruleJson) }));

  route(app, registry, {
    method: 'POST', url: `${P}/:partner/rules/:kind`, tags: ['masterdata'], role: 'operator',
    summary: 'Set an auto-approval rule: price_within {pct}, capacity_change {max_pct?}, trusted_text {}',
    params: partnerParam.extend({ kind: z.enum(RULE_KINDS) }),
    body: z.object({ params: z.record(z.string(), z.unknown()).default({}), enabled: z.boolean().default(true) }).strict(),
  }, async ({ params, body, req }) => {
    const p = await mustFind(params.partner);
    try {
      return ruleJson(await setRule(pool, p.id, params.kind, body.params, body.enabled, actorOf(req)));
    } catch (e) {
      if (e instanceof z.ZodError) throw new SeigoError('invalid_rule', `invalid params for ${params.kind}: ${e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, 400);
      throw e;
    }
  });

  route(app, registry, {
    method: 'GET', url: `${P}/:partner/rules/dry-run`, tags: ['masterdata'], role: 'viewer',
    summary: "How many of the last days' sensitive changes each of the partner's rules would have applied",
    params: partnerParam, query: z.object({ days: z.coerce.number().int().min(1).max(365).default(30) }).strict(),
  }, async ({ params, query }) => {
    const p = await mustFind(params.partner);
    const since = new Date(engine.clock.now().getTime() - query.days * 86_400_000);
    const d = await dryRun(pool, p.id, await listRules(pool, p.id), (await getSource(pool, p.id))?.trusted ?? false, since);
    return { since: d.since, sensitive_changes: d.sensitiveChanges, by_rule: d.byRule, covered_by_any: d.coveredByAny };
  });
}
