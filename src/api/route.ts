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
  /** Stable name for generated clients; derived from method and path when not given (see operationIdOf). */
  operationId?: string;
  /** Problem codes by status that the handler answers, beyond those its declaration implies (impliedErrors). */
  errors?: Partial<Record<number, readonly string[]>>;
  /** Routes with no admin, client or partner auth: `public` (sign-in, sign-out) or `webhookSignature` (provider webhooks). */
  auth?: 'public' | 'webhookSignature';
  /** The documented request body when it is not JSON described by `body` (raw bytes, several media types). */
  bodyContent?: Record<string, { schema: Record<string, unknown> }>;
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

const pascal = (s: string) => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');

/** `GET /admin/v1/cases/:id` → `adminGetCasesById`: the area (admin, partner; none for /v1), the verb, the path. */
export function operationIdOf(r: { method: string; url: string; operationId?: string | undefined }): string {
  if (r.operationId) return r.operationId;
  const segs = r.url.split('/').filter(Boolean);
  const area = segs[0] === 'admin' || segs[0] === 'partner' ? segs.shift()! : '';
  if (segs[0] === 'v1') segs.shift();
  const words = segs.map((s) => (s.startsWith(':') ? `By${pascal(s.slice(1))}` : pascal(s))).join('');
  const verb = r.method.toLowerCase();
  return area ? `${area}${pascal(verb)}${words}` : `${verb}${words}`;
}

type ErrorMap = Map<number, Set<string>>;
const addErrors = (m: ErrorMap, status: number, codes: readonly string[]) => {
  const set = m.get(status) ?? new Set<string>();
  for (const c of codes) set.add(c);
  m.set(status, set);
};

/** Every problem a route can answer, by status: what its declaration implies (validation, auth, idempotency) plus its own. */
export function errorsOf(r: RouteDef<z.ZodType, z.ZodType, z.ZodType>): ErrorMap {
  const m: ErrorMap = new Map();
  if (r.params || r.query || r.body || r.bodyContent) addErrors(m, 400, ['invalid_request']);
  if (r.body || r.bodyContent) {
    addErrors(m, 413, ['payload_too_large']);
    addErrors(m, 415, ['unsupported_media_type']);
  }
  if (r.role) {
    addErrors(m, 401, ['unauthorized', 'session_expired', 'session_invalid']);
    addErrors(m, 403, r.method === 'GET' ? ['forbidden'] : ['forbidden', 'csrf_header_required']);
  }
  if (r.apiClient) addErrors(m, 401, ['unauthorized']);
  if (r.partnerScope) {
    addErrors(m, 401, ['unauthorized', 'invalid_key', 'key_revoked', 'key_expired']);
    addErrors(m, 403, ['insufficient_scope']);
    addErrors(m, 429, ['rate_limited']);
  }
  if ((r.apiClient || r.partnerScope) && r.method === 'POST') {
    addErrors(m, 400, ['invalid_idempotency_key']);
    addErrors(m, 409, ['idempotency_conflict']);
    addErrors(m, 422, ['idempotency_mismatch']);
  }
  for (const [status, codes] of Object.entries(r.errors ?? {})) addErrors(m, Number(status), codes ?? []);
  return m;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found', 409: 'Conflict', 413: 'Payload too large',
  415: 'Unsupported media type', 422: 'Unprocessable', 429: 'Too many requests', 502: 'Bad gateway', 503: 'Unavailable',
};

/** The problem+json response of one status, its `code` narrowed to the ones the route answers. */
export function problemResponse(status: number, codes: Iterable<string>): Record<string, unknown> {
  const list = [...codes].sort();
  return {
    description: `${STATUS_TEXT[status] ?? 'Problem'}: ${list.join(', ')}`,
    content: {
      'application/problem+json': {
        schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', properties: { code: { type: 'string', enum: list } } }] },
      },
    },
  };
}

const text = (description: string, type = 'text/plain') => ({ description, content: { [type]: { schema: { type: 'string' } } } });
const unavailable = (codes: string[]) => problemResponse(503, codes);
/** Probes and the scrape target, served outside the typed routes. */
const OPS_PATHS: Record<string, unknown> = {
  '/healthz': { get: {
    operationId: 'getHealthz', summary: 'Liveness: the process answers', tags: ['operations'], security: [],
    responses: { 200: { description: 'alive', content: { 'application/json': { schema: {
      type: 'object', required: ['status'], properties: { status: { type: 'string', const: 'ok' } }, additionalProperties: false,
    } } } } },
  } },
  '/readyz': { get: {
    operationId: 'getReadyz', summary: 'Readiness: the database answers and the process is not stopping', tags: ['operations'], security: [],
    responses: {
      200: { description: 'ready', content: { 'application/json': { schema: {
        type: 'object', required: ['status'], properties: { status: { type: 'string', const: 'ready' } }, additionalProperties: false,
      } } } },
      503: unavailable(['database_unavailable', 'shutting_down']),
    },
  } },
  '/metrics': { get: {
    operationId: 'getMetrics', summary: 'Prometheus metrics (text exposition format)', tags: ['operations'], security: [],
    responses: { 200: text('metrics in the Prometheus text format', 'text/plain; version=0.0.4') },
  } },
  '/openapi.json': { get: {
    operationId: 'getOpenapi', summary: 'This document', tags: ['operations'], security: [],
    responses: { 200: { description: 'the OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } } },
  } },
};

/** The OpenAPI 3.1 document for every registered route. */
export function openApiDocument(registry: OpenApiRegistry, extra: { title: string; version: string; serverUrl: string }): Record<string, unknown> {
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
    const responses: Record<string, unknown> = {
      [String(r.responseStatus ?? 200)]: { description: 'OK', ...(r.response ? { content: { 'application/json': { schema: toSchema(r.response, 'output') } } } : {}) },
    };
    for (const [status, codes] of [...errorsOf(r)].sort(([a], [b]) => a - b)) responses[String(status)] = problemResponse(status, codes);
    responses.default = { description: 'Problem (RFC 9457): an unexpected error (500 internal_error) or the service stopping (503)', content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } };
    const op: Record<string, unknown> = { operationId: operationIdOf(r), summary: r.summary, tags: r.tags, parameters, responses };
    if (r.bodyContent) op.requestBody = { required: true, content: r.bodyContent };
    else if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: toSchema(r.body, 'input') } } };
    if (r.role) op.security = [{ bearer: [] }, { sessionCookie: [] }];
    if (r.auth) op.security = r.auth === 'public' ? [] : [{ webhookSignature: [] }];
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
    info: {
      title: extra.title, version: extra.version, license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      description: 'Conventions (snake_case fields, lists, problems, idempotency): docs/api.md',
    },
    servers: [{ url: extra.serverUrl, description: 'this engine (the configured host and port)' }],
    paths: { ...paths, ...OPS_PATHS },
    components: {
      securitySchemes: {
        sessionCookie: { type: 'apiKey', in: 'cookie', name: 'seigo_session', description: 'The console\'s session (POST /admin/v1/session); changes need the X-Seigo-CSRF header' },
        webhookSignature: {
          type: 'apiKey', in: 'header', name: 'webhook-signature',
          description: 'The provider\'s signature over the exact body, checked by its adapter: Standard Webhooks (webhook-id, webhook-timestamp, '
            + 'webhook-signature), Stripe-Signature, X-Komoju-Signature, or the provider\'s own header; a bad one is 401 invalid_signature',
        },
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
