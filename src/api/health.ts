// GET /admin/v1/health: the console's Health screen (src/health/report.ts), for the viewer role.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.ts';
import { healthReport } from '../health/index.ts';
import { route, type OpenApiRegistry } from './route.ts';

const figures = { requests: z.number().int(), errors: z.number().int(), p95_ms: z.number().int().nullable().describe('bucket bound; -1 means over 30 s') };
const healthResponse = z.object({
  object: z.literal('health'),
  from: z.string(), to: z.string(), step_minutes: z.number().int(),
  subjects: z.array(z.object({ source: z.enum(['route', 'webhook', 'provider', 'delivery']), name: z.string(), ...figures })),
  series: z.array(z.object({ at: z.string(), ...figures })),
  inbox: z.object({ pending: z.number().int(), failed: z.number().int() }),
  subscriptions: z.array(z.object({ subscription: z.string(), pending: z.number().int(), dead: z.number().int() })),
  dlq_size: z.number().int(),
  unknown_operations: z.object({ count: z.number().int(), oldest_at: z.string().nullable() }),
  breakers: z.array(z.object({ endpoint: z.string(), process_id: z.string(), state: z.string(), changed_at: z.string() })),
});

export async function healthRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  route(app, registry, {
    method: 'GET', url: '/admin/v1/health', tags: ['health'], role: 'viewer',
    summary: 'Request and error rates and p95 per route and provider over the last hours, queue depths, oldest unknown, DLQ, breakers',
    query: z.object({
      hours: z.coerce.number().int().min(1).max(72).default(6),
      step_minutes: z.coerce.number().int().min(1).max(360).default(10),
    }),
    response: healthResponse,
  }, async ({ query }) => {
    await engine.flushHealth();
    const r = await healthReport(engine.db.pool, engine.clock.now(), query.hours, query.step_minutes);
    return { object: 'health' as const, ...r, subjects: r.subjects as z.output<typeof healthResponse>['subjects'] };
  });
}
