// Admin API for sagas under /admin/v1/sagas: list (filter by status and name, newest first, paged by
// `before`) and one saga with its steps, every attempt and every transition with its cause.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { NotFoundError } from '../kernel/errors.ts';
import { SAGA_STATUSES, listSagas, sagaHistory, type SagaRow, type SagaStatus } from '../sagas/index.ts';
import { listOf, listQuery, pageOf } from './list.ts';
import { route, type OpenApiRegistry } from './route.ts';

const uuid = z.string().uuid();
const when = z.string().describe('ISO 8601 time');
const statusList = z.string().max(200).transform((s, ctx) => {
  const parts = s.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !(SAGA_STATUSES as readonly string[]).includes(p))) {
    ctx.addIssue({ code: 'custom', message: `statuses are ${SAGA_STATUSES.join(', ')} (comma-separated)` });
  }
  return parts as SagaStatus[];
});

const sagaResponse = z.object({
  id: z.string(), name: z.string(), key: z.string().nullable(), status: z.enum(SAGA_STATUSES), input: z.record(z.string(), z.unknown()),
  entity: z.object({ type: z.string(), id: z.string() }).nullable(), current_step: z.string().nullable(), last_error: z.string().nullable(),
  next_run_at: when, locked_until: when.nullable(), created_at: when, updated_at: when, finished_at: when.nullable(),
});
const fullResponse = sagaResponse.extend({
  steps: z.array(z.object({ position: z.number(), step_id: z.string(), status: z.string(), output: z.record(z.string(), z.unknown()).nullable(), error: z.string().nullable(), updated_at: when })),
  attempts: z.array(z.object({
    id: z.string(), step_id: z.string(), phase: z.enum(['invoke', 'compensate']), attempt: z.number(), status: z.string(), idempotency_key: z.string(),
    inquiries: z.number(), output: z.record(z.string(), z.unknown()).nullable(), error_code: z.string().nullable(), error_message: z.string().nullable(),
    started_at: when, finished_at: when.nullable(),
  })),
  events: z.array(z.object({ id: z.string(), at: when, step_id: z.string().nullable(), from_status: z.string().nullable(), to_status: z.string(), cause: z.string() })),
});

export const sagaJson = (s: SagaRow) => ({
  id: s.id, name: s.name, key: s.key, status: s.status, input: s.input,
  entity: s.entity_type && s.entity_id ? { type: s.entity_type, id: s.entity_id } : null,
  current_step: s.current_step, last_error: s.last_error, next_run_at: s.next_run_at, locked_until: s.locked_until,
  created_at: s.created_at, updated_at: s.updated_at, finished_at: s.finished_at,
});

export async function sagaRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  const pool = engine.db.pool;
  const P = '/admin/v1/sagas';

  route(app, registry, {
    method: 'GET', url: P, tags: ['sagas'], role: 'viewer',
    summary: 'List sagas, newest first; filter by status (comma-separated) and name',
    query: z.object({
      status: statusList.optional(), name: z.string().min(1).max(200).optional(),
      ...listQuery({ max: 500, default: 50 }),
    }),
    response: listOf(sagaResponse),
  }, async ({ query }) => {
    const list = await listSagas(pool, { status: query.status, name: query.name, before: query.starting_after, limit: query.limit + 1 });
    return pageOf(list, query.limit, (s) => s.id, sagaJson);
  });

  route(app, registry, {
    method: 'GET', url: `${P}/:id`, tags: ['sagas'], role: 'viewer', errors: { 404: ['saga_not_found'] },
    summary: 'One saga with its steps, every attempt (with inquiries) and every transition with its cause',
    params: z.object({ id: uuid }), response: fullResponse,
  }, async ({ params }) => {
    const h = await sagaHistory(pool, params.id);
    if (!h) throw new NotFoundError('saga_not_found', `no saga ${params.id}`);
    return {
      ...sagaJson(h.saga),
      steps: h.steps.map((s) => ({ position: s.position, step_id: s.step_id, status: s.status, output: s.output, error: s.error, updated_at: s.updated_at })),
      attempts: h.attempts.map((a) => ({
        id: a.id, step_id: a.step_id, phase: a.phase, attempt: a.attempt, status: a.status, idempotency_key: a.idempotency_key, inquiries: a.inquiries,
        output: a.output, error_code: a.error_code, error_message: a.error_message, started_at: a.started_at, finished_at: a.finished_at,
      })),
      events: h.events,
    };
  });
}
