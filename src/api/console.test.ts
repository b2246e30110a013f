// /console serves the built app: its files, index.html for the app's own routes, and, before a build,
// a page that says how to build it.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleRoutes } from './console.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'seigo-console-'));
  await mkdir(join(dir, 'dist', 'assets'), { recursive: true });
  await writeFile(join(dir, 'dist', 'index.html'), '<!doctype html><div id="root"></div>');
  await writeFile(join(dir, 'dist', 'assets', 'app-1.js'), 'console.log(1)');
  await writeFile(join(dir, 'secret.txt'), 'not for you');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function app(dist: string) {
  const a = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
  await a.register(async (s) => consoleRoutes(s, dist));
  return a;
}

describe('/console', () => {
  it('serves the app, its hashed assets and index.html for its routes, with a strict CSP', async () => {
    const a = await app(join(dir, 'dist') + '/');
    for (const url of ['/console', '/console/', '/console/cases?status=open', '/console/story']) {
      const r = await a.inject(url);
      expect(r.statusCode, url).toBe(200);
      expect(r.headers['content-type']).toContain('text/html');
      expect(r.headers['content-security-policy']).toContain("script-src 'self'");
      expect(r.body).toContain('id="root"');
    }
    const js = await a.inject('/console/assets/app-1.js');
    expect(js.headers['content-type']).toContain('text/javascript');
    expect(js.headers['cache-control']).toContain('immutable');
    expect((await a.inject('/console/assets/missing.js')).statusCode).toBe(404);
    const out = await a.inject('/console/..%2Fsecret.txt');
    expect(out.body).not.toContain('not for you');
    await a.close();
  });

  it('says how to build the console when it is not built', async () => {
    const a = await app(join(dir, 'nothing-here') + '/');
    const r = await a.inject('/console/');
    expect(r.statusCode).toBe(503);
    expect(r.body).toContain('npm run console:build');
    await a.close();
  });
});
