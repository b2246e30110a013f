// Typed routes: each declares zod schemas for params, query and body; input is validated at the
// edge (400 problem+json naming each bad field) and the same schemas produce /openapi.json.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { BadRequestError } from '../kernel/errors.ts';

export type Role = 'viewer' | 'operator';

export interface RouteDef<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType> {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  summary: string;
  tags: string[];
  /** Admin routes: the least role that may call it. */
  role?: Role;
  /** Routes for API clients (the wallet's backend): bearer API key; POSTs honour Idempotency-Key. */
  apiClient?: boolean;
  /** Partner routes (/partner/v1): a partner API key holding this scope; POSTs honour Idempotency-Key. */
  partnerScope?: string;
  params?: P;
  query?: Q;
  body?: B;
  /** Response schema for the documentation (responses are built by our own code). */
  response?: z.ZodType;
  responseStatus?: number;
}

export interface OpenApiRegistry {
  routes: RouteDef<z.ZodType, z.ZodType, z.ZodType>[];
}

/** Deeper JSON than this is refused: JSON.stringify (and PostgreSQL's jsonb parser) recurse per level. */
const MAX_JSON_DEPTH = 64;
// NUL and unpaired surrogates: PostgreSQL's text and jsonb cannot hold them, so they would fail in SQL as a 500.
const UNSTORABLE_TEXT = /\u0000|\p{Cs}/u;

interface Issue { path: string; message: string }

/** The first value PostgreSQL could not store (or nesting past MAX_JSON_DEPTH), walked without recursion. */
function unstorable(value: unknown): Issue | null {
  const stack: [unknown, (string | number)[]][] = [[value, []]];
  // The path is echoed in the answer, so the offending characters in it are replaced.
  const bad = (path: (string | number)[]) => ({ path: path.join('.').replace(/\u0000|\p{Cs}/gu, '\uFFFD'), message: 'contains a NUL character or an unpaired surrogate, which cannot be stored' });
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (path.length > MAX_JSON_DEPTH) return { path: path.slice(0, 3).join('.') + '…', message: `nests deeper than ${MAX_JSON_DEPTH} levels` };
    if (typeof v === 'string') {
      if (UNSTORABLE_TEXT.test(v)) return bad(path);
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, [...path, i]]));
    } else if (typeof v === 'object' && v !== null && !Buffer.isBuffer(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (UNSTORABLE_TEXT.test(k)) return bad([...path, k]);
        stack.push([x, [...path, k]]);
      }
    }
  }
  return null;
}

function invalid(where: string, issues: Issue[]): BadRequestError {
  return new BadRequestError('invalid_request', `invalid ${where}: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
    { errors: issues.map((i) => ({ in: where, path: i.path, message: i.message })) });
}

function parse<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): z.output<T> {
  if (!schema) return undefined as z.output<T>;
  const u = unstorable(value);
  if (u) throw invalid(where, [u]);
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(where, r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })));
  return r.data;
}

export function route<P extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, B extends z.ZodType = z.ZodUndefined>(
  app: FastifyInstance,
  registry: OpenApiRegistry,
  def: RouteDef<P, Q, B>,
  handler: (input: { params: z.output<P>; query: z.output<Q>; body: z.output<B>; req: FastifyRequest; reply: FastifyReply }) => Promise<unknown>,
): void {
  registry.routes.push(def as unknown as RouteDef<z.ZodType, z.ZodType, z.ZodType>);
  app.route({
    method: def.method,
    url: def.url,
    config: { role: def.role, ...(def.apiClient ? { apiClient: true } : {}), ...(def.partnerScope ? { partnerScope: def.partnerScope } : {}) },
    handler: async (req, reply) => {
      const params = parse(def.params, req.params, 'path parameters');
      const query = parse(def.query, req.query, 'query');
      const body = parse(def.body, req.body, 'body');
      const out = await handler({ params, query, body, req, reply });
      if (def.responseStatus) reply.code(def.responseStatus);
      return out;
    },
  });
}

const toSchema = (s: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;

/** The OpenAPI 3.1 document for every registered route. */
export function openApiDocument(registry: OpenApiRegistry, extra: { title: string; version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of registry.routes) {
    const path = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', r.params], ['query', r.query]] as const) {
      if (!schema) continue;
      const js = toSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, s] of Object.entries(js.properties ?? {})) {
        parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
      }
    }
    const op: Record<string, unknown> = {
      summary: r.summary,
      tags: r.tags,
      parameters,
      responses: {
        [String(r.responseStatus ?? 200)]: { description: 'OK', ...(r.response ? { content: { 'application/json': { schema: toSchema(r.response, 'output') } } } : {}) },
        default: { description: 'Problem (RFC 9457)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } },
      },
    };
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: toSchema(r.body, 'input') } } };
    if (r.role) op.security = [{ bearer: [] }];
    if (r.partnerScope) op.security = [{ partnerKey: [r.partnerScope] }];
    if (r.apiClient || r.partnerScope) {
      if (r.apiClient) op.security = [{ apiKey: [] }];
      if (r.method === 'POST') {
        parameters.push({
          name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', minLength: 1, maxLength: 255 },
          description: 'Same key and parameters replay the first response (kept 24 h); different parameters: 422; while the first runs: 409',
        });
      }
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: extra.title, version: extra.version },
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An admin token from the configuration (role viewer or operator)' },
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API client key from the configuration (apiClients)' },
        partnerKey: { type: 'http', scheme: 'bearer', description: 'A partner API key (`pk_….…`, created by an operator) holding the route\'s scope' },
      },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code'],
          properties: { type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string' }, detail: { type: 'string' } },
        },
      },
    },
  };
}
