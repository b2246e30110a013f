// Calls the admin API over real HTTP with a real bearer token.
import { request } from 'undici';
import { OPERATOR_TOKEN } from './engine.ts';

export interface AdminResponse<T = Record<string, unknown>> { status: number; json: T }

export async function admin<T = Record<string, unknown>>(base: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown, token = OPERATOR_TOKEN): Promise<AdminResponse<T>> {
  const res = await request(`${base}/admin/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: (text ? JSON.parse(text) : {}) as T };
}
