// POST /webhooks/:provider — thin on purpose: verify, store durably (group-committed), acknowledge.
// Everything else happens in a worker.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { NotFoundError, SeigoError, UnauthorizedError } from '../kernel/errors.ts';
import { SpanKind, inSpan } from '../kernel/tracing.ts';
import type { Engine } from '../engine/engine.ts';
import { route, type OpenApiRegistry } from './route.ts';

export const webhookAck = z.object({ id: z.string().uuid(), duplicate: z.boolean() });

export async function webhookRoutes(app: FastifyInstance, engine: Engine, registry: OpenApiRegistry): Promise<void> {
  // Every content type arrives as raw bytes: the signature is over the exact body.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: engine.config.intake.maxBodyBytes }, (_req, body, done) => done(null, body));

  route(app, registry, {
    method: 'POST', url: '/webhooks/:provider', tags: ['intake'],
    summary: 'Receive a provider notification: verified, stored durably, then acknowledged',
    params: z.object({ provider: z.string().max(100) }),
    response: webhookAck, auth: 'webhookSignature',
    bodyContent: { '*/*': { schema: { type: 'string', format: 'binary', description: 'the provider\'s exact bytes (its signature is over them)' } } },
    errors: { 400: ['unparseable_payload'], 401: ['invalid_signature'], 404: ['unknown_provider'] },
  }, ({ params, req, reply }) => inSpan('webhook.intake', { kind: SpanKind.SERVER, attributes: { 'seigo.provider': params.provider } }, async (span) => {
    const { provider } = params;
    const adapter = engine.providers.get(provider);
    if (!adapter) {
      engine.metrics.webhooks.inc({ provider: 'unknown', outcome: 'unknown_provider' });
      throw new NotFoundError('unknown_provider', `no provider named "${provider}" is configured`);
    }
    const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const headers: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const incoming = { headers, rawBody, receivedAt: engine.clock.now() };
    const verified = adapter.verifyAsync ? await adapter.verifyAsync(incoming) : adapter.verify(incoming);
    if (!verified.ok) {
      engine.metrics.webhooks.inc({ provider, outcome: verified.error.code });
      if (verified.error.code === 'invalid_signature') throw new UnauthorizedError('invalid_signature', verified.error.message);
      throw new SeigoError('unparseable_payload', verified.error.message, 400);
    }
    const r = await engine.inboxWriter.write({ provider, eventId: verified.value.eventId, headers: verified.value.headers, body: rawBody });
    engine.metrics.webhooks.inc({ provider, outcome: r.duplicate ? 'duplicate' : 'accepted' });
    engine.metrics.webhookDuration.observe({ provider }, reply.elapsedTime / 1000);
    span.setAttributes({ 'seigo.inbox_id': r.id, 'seigo.duplicate': r.duplicate });
    return { id: r.id, duplicate: r.duplicate };
  }));
}
