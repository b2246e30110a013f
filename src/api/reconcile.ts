// Reconciliation in the admin API: runs with their counts, a run's breaks (by class, cursor
// pagination), the breaks as CSV, and starting a run (a provider's window, the deliveries, or a
// Zengin / CSV file sent in the body).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError } from '../kernel/errors.ts';
import {
  BREAK_CLASSES, breaksCsv, checkCsvMapping, getRun, listBreaks, listRuns, reconcileDepsOf, runReconcile, type ReconcileRequest,
} from '../reconcile/index.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const uuid = z.string().uuid();
const isoDate = z.coerce.date()
  .min(new Date('0001-01-01T00:00:00Z'), 'must be a date from 0001-01-01')
  .max(new Date('9999-12-31T23:59:59.999Z'), 'must be a date until 9999-12-31');
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const base64 = z.string().min(1).max(64 * 1024 * 1024).refine((s) => BASE64.test(s.replace(/\s+/g, '')) && s.replace(/\s+/g, '').length % 4 === 0, 'must be base64');

const startBody = z.discriminatedUnion('source', [
  z.object({ source: z.literal('provider'), provider: z.string().min(1).max(100), from: isoDate, to: isoDate }).strict(),
  z.object({ source: z.literal('deliveries'), from: isoDate, to: isoDate, deadline_ms: z.number().int().min(0).max(365 * 86_400_000).optional() }).strict(),
  z.object({ source: z.literal('zengin'), file_base64: base64, encoding: z.enum(['shift_jis', 'utf8']).optional(), from: isoDate.optional(), to: isoDate.optional() }).strict(),
  z.object({ source: z.literal('csv'), csv: z.string().min(1), mapping: z.unknown(), from: isoDate.optional(), to: isoDate.optional() }).strict(),
]);

// Response shapes, for /openapi.json and the console's generated types (read.ts builds the values).
const runResponse = z.object({
  id: z.string(), source: z.string(), scope: z.string(), provider: z.string().nullable(), file_name: z.string().nullable(),
  window_from: z.string().nullable(), window_to: z.string().nullable(), status: z.string(), trigger: z.string(), external_rows: z.number(),
  internal_rows: z.number(), counts: z.record(z.string(), z.number()), repairs: z.record(z.string(), z.number()),
  timings: z.record(z.string(), z.number()), error: z.string().nullable(), started_at: z.string(), finished_at: z.string().nullable(),
});
const breakResponse = z.object({
  id: z.string(), class: z.string(), status: z.string(), scope: z.string(), external_id: z.string().nullable(), internal_type: z.string().nullable(),
  internal_id: z.string().nullable(), external_amount: z.string().nullable(), internal_amount: z.string().nullable(), currency: z.string().nullable(),
  external_status: z.string().nullable(), internal_status: z.string().nullable(), occurred_at: z.string().nullable(), repair: z.string(),
  repair_ref: z.string().nullable(), case_id: z.string().nullable(), seen_count: z.number(), first_seen_at: z.string(),
}).catchall(z.unknown());

export async function reconcileRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const P = '/admin/v1/reconcile';

  route(app, registry, {
    method: 'GET', url: `${P}/runs`, tags: ['reconcile'], role: 'viewer', summary: 'Reconciliation runs, newest first, with their counts per class',
    query: z.object({ scope: z.string().min(1).max(200).optional(), ...listQuery({ max: 1000, default: 100 }) }),
    response: listOf(runResponse),
  }, async ({ query }) => pageOf(await listRuns(pool, { scope: query.scope, before: query.starting_after, limit: query.limit + 1 }), query.limit, (r) => r.id, (r) => r));

  route(app, registry, {
    method: 'GET', url: `${P}/runs/:id`, tags: ['reconcile'], role: 'viewer', errors: { 404: ['not_found'] }, summary: 'One run: window, counts per class, repairs and timings',
    params: z.object({ id: uuid }),
  }, async ({ params }) => {
    const run = await getRun(pool, params.id);
    if (!run) throw new NotFoundError('not_found', `no reconcile run ${params.id}`);
    return run;
  });

  const breaksQuery = z.object({
    class: z.enum(BREAK_CLASSES).optional(), ...listQuery({ max: 1000, default: 100, cursor: z.string().regex(/^[0-9]{1,18}$/, 'must be a break id') }),
  });
  route(app, registry, {
    method: 'GET', url: `${P}/runs/:id/breaks`, tags: ['reconcile'], role: 'viewer', errors: { 404: ['not_found'] },
    summary: "A run's breaks (the ones it saw last), by class, in the order they were found",
    params: z.object({ id: uuid }), query: breaksQuery, response: listOf(breakResponse),
  }, async ({ params, query }) => {
    if (!(await getRun(pool, params.id))) throw new NotFoundError('not_found', `no reconcile run ${params.id}`);
    const rows = await listBreaks(pool, { runId: params.id, class: query.class, after: query.starting_after, limit: query.limit + 1 });
    return pageOf(rows, query.limit, (b) => b.id, (b) => b);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/runs/:id/breaks.csv`, tags: ['reconcile'], role: 'viewer', errors: { 404: ['not_found'] }, summary: "A run's breaks as CSV (text/csv)",
    params: z.object({ id: uuid }), query: z.object({ class: z.enum(BREAK_CLASSES).optional() }),
  }, async ({ params, query, reply }) => {
    if (!(await getRun(pool, params.id))) throw new NotFoundError('not_found', `no reconcile run ${params.id}`);
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="reconcile-${params.id}-breaks.csv"`)
      .send(Readable.from(breaksCsv(pool, params.id, query.class)));
  });

  route(app, registry, {
    method: 'POST', url: `${P}/runs`, tags: ['reconcile'], role: 'operator', responseStatus: 201, errors: { 400: ['invalid_csv', 'invalid_mapping', 'invalid_transfer_notice', 'unknown_provider', 'no_history', 'invalid_window'], 502: ['provider_unavailable'] },
    summary: 'Run a reconciliation now: a provider window, the deliveries, or a Zengin / CSV file in the body; answers with the run',
    body: startBody,
  }, async ({ body }) => {
    const deps = reconcileDepsOf(engine);
    if (body.source === 'provider') return runReconcile(deps, { source: 'provider', provider: body.provider, from: body.from, to: body.to }, { trigger: 'api' });
    if (body.source === 'deliveries') return runReconcile(deps, { source: 'deliveries', from: body.from, to: body.to, deadlineMs: body.deadline_ms }, { trigger: 'api' });
    // Files go through the same path as the CLI's, from a private temporary file.
    const dir = await mkdtemp(join(tmpdir(), 'seigo-reconcile-'));
    try {
      const file = join(dir, body.source === 'zengin' ? 'transfer-notice.txt' : 'upload.csv');
      let req: ReconcileRequest;
      if (body.source === 'zengin') {
        await writeFile(file, Buffer.from(body.file_base64.replace(/\s+/g, ''), 'base64'), { mode: 0o600 });
        req = { source: 'zengin', file, encoding: body.encoding, from: body.from, to: body.to };
      } else {
        const mapping = checkCsvMapping(body.mapping);
        await writeFile(file, body.csv, { mode: 0o600 });
        req = { source: 'csv', file, mapping, from: body.from, to: body.to };
      }
      return await runReconcile(deps, req, { trigger: 'api' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
