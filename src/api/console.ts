// Serves the operator console's built assets (console/dist, built by `npm install`'s prepare step) at
// /console; a path without a file is the single-page app's own route, answered with index.html.
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

export const CONSOLE_DIST = fileURLToPath(new URL('../../console/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.json': 'application/json', '.map': 'application/json',
};
// The console talks only to this origin; nothing inline, nothing framed.
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>seigo console</title>
<h1>The console is not built</h1>
<p>Build it with <code>npm run console:build</code> (npm install runs it too), then reload this page.</p>`;

/** The file under `dist` a URL path names, or null when it would leave the folder. */
export function consoleFile(dist: string, path: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return null;
  }
  const rel = normalize(decoded).replace(/^([/\\])+/, '');
  const full = join(dist, rel);
  return full.startsWith(dist.endsWith(sep) ? dist : dist + sep) || full === dist ? full : null;
}

async function send(reply: FastifyReply, file: string): Promise<FastifyReply> {
  const body = await readFile(file);
  const ext = extname(file);
  // Vite's hashed assets never change under their name; index.html must be fetched fresh.
  const cache = file.includes(`${sep}assets${sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache';
  return reply.type(TYPES[ext] ?? 'application/octet-stream').header('cache-control', cache)
    .header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').send(body);
}

export async function consoleRoutes(app: FastifyInstance, dist = CONSOLE_DIST): Promise<void> {
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const index = join(dist, 'index.html');
    if (!existsSync(index)) return reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT);
    const wanted = (req.params as { '*'?: string })['*'] ?? '';
    const file = consoleFile(dist, wanted);
    if (file && wanted !== '' && (await stat(file).catch(() => null))?.isFile()) return send(reply, file);
    if (extname(wanted) !== '') return reply.code(404).type('text/plain').send('not found');
    return send(reply, index);
  };
  app.get('/console', handler);
  app.get('/console/*', handler);
}
