// The console's client for the engine's admin API: the repo's generated client (clients/typescript, typed from
// console/openapi.json by `npm run console:openapi`). The session cookie rides along; every call carries the CSRF header.
import type { Middleware } from 'openapi-fetch';
import { createSeigoClient, isProblem, type paths } from '../../clients/typescript/src/index.ts';

export type { paths };
export { isProblem };

/** An RFC 9457 problem as the engine answers it (the fields the console shows). */
export interface Problem { status: number; code: string; detail?: string }

/** Called when the session has ended (401): the app goes back to sign-in with the problem's detail. */
let onSignedOut: (p: Problem) => void = () => {};
export function whenSignedOut(fn: (p: Problem) => void): void {
  onSignedOut = fn;
}

const signedOutWatch: Middleware = {
  async onResponse({ request, response }) {
    if (response.status !== 401) return response;
    const body: unknown = await response.clone().json().catch(() => null);
    const p: Problem = isProblem(body) ? body : { status: 401, code: 'unauthorized', detail: 'sign in again' };
    // A wrong token at sign-in is that form's own problem; no cookie at all on the first load is just "not signed in".
    const session = new URL(request.url).pathname === '/admin/v1/session';
    if (session && (request.method === 'POST' || p.code === 'unauthorized')) return response;
    onSignedOut(p);
    return response;
  },
};

export const api = createSeigoClient({ baseUrl: window.location.origin, credentials: 'same-origin', headers: { 'X-Seigo-CSRF': '1' } });
api.use(signedOutWatch);

/** The data of a call, or throws its problem (so a screen shows code and detail). */
export async function must<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (error !== undefined || !response.ok) {
    throw isProblem(error) ? error : { status: response.status, code: 'http_error', detail: `${response.status} ${response.statusText}` };
  }
  return data as T;
}
