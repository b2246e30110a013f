// @seigo/client: a typed client for seigo's HTTP API, generated from its OpenAPI document
// (console/openapi.json → src/schema.ts by `npm run console:openapi`). Paths, parameters, bodies and
// answers are checked by the compiler; a refusal comes back as a typed RFC 9457 problem.
import createClient, { type Client, type ClientOptions, type Middleware } from 'openapi-fetch';
import type { components, operations, paths } from './schema.ts';

export type { components, operations, paths };
export type SeigoClient = Client<paths>;

/** An RFC 9457 problem as seigo answers it: `code` is stable, `detail` is for people. */
export type Problem = components['schemas']['Problem'];

export function isProblem(v: unknown): v is Problem {
  return typeof v === 'object' && v !== null && typeof (v as Problem).code === 'string' && typeof (v as Problem).status === 'number';
}

/** A refusal thrown by `must`, carrying the problem. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.code}${problem.detail ? `: ${problem.detail}` : ''}`);
    this.name = 'ProblemError';
  }
}

export interface SeigoClientOptions extends ClientOptions {
  /** An admin token, API client key or partner key, sent as `Authorization: Bearer …`. */
  token?: string;
}

/** A client for one engine (`baseUrl`, e.g. http://127.0.0.1:8787). */
export function createSeigoClient(o: SeigoClientOptions = {}): SeigoClient {
  const { token, ...options } = o;
  const client = createClient<paths>(options);
  if (token !== undefined) client.use(bearer(token));
  return client;
}

function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set('authorization', `Bearer ${token}`);
      return request;
    },
  };
}

/** The data of a call, or throws its problem as a ProblemError (a non-problem failure becomes code `http_error`). */
export async function must<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw new ProblemError(isProblem(error) ? error
      : { type: 'about:blank', title: response.statusText, status: response.status, code: 'http_error', detail: `${response.status} ${response.statusText}` });
  }
  return data as T;
}
