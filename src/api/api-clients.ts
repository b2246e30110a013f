// API clients: partners that call the client API with a bearer key from the configuration
// (`apiClients`). Routes opt in with `config: { apiClient: true }`; the caller's name is then on
// `req.apiClient` and scopes what it may see and its idempotency keys.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Engine } from '../engine/engine.ts';
import { problem } from '../kernel/errors.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route is called by API clients: `Authorization: Bearer <key>` from `apiClients` is required. */
    apiClient?: boolean | undefined;
  }
  interface FastifyRequest { apiClient?: ApiClient }
}

export interface ApiClient {
  name: string;
  scopes: readonly string[];
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Adds the onRequest hook that authenticates API clients on routes with `config.apiClient === true`.
 * Call it on the instance that holds those routes (or an ancestor), before they are registered;
 * hooks added inside `app.register(...)` would stay in that plugin's scope.
 */
export function apiClientAuth(app: FastifyInstance, engine: Pick<Engine, 'config'>): void {
  // Digests have one length, so timingSafeEqual never throws and the comparison leaks nothing about the key.
  const clients = engine.config.apiClients.map((c) => ({ name: c.name, scopes: c.scopes ?? [], digest: digest(c.key) }));
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.config.apiClient !== true) return;
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const given = m ? digest(m[1]!) : null;
    let who: (typeof clients)[number] | undefined;
    // Compare against every client, not up to the first match: the time taken does not say which one matched.
    if (given) for (const c of clients) if (timingSafeEqual(c.digest, given)) who = c;
    if (!who) {
      return reply.code(401).header('www-authenticate', 'Bearer').type('application/problem+json')
        .send(problem(401, 'unauthorized', 'a valid API client key is required (Authorization: Bearer <key>)'));
    }
    req.apiClient = { name: who.name, scopes: who.scopes };
  });
}
