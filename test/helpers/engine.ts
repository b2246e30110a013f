// A whole engine on its own test database: real PostgreSQL, real HTTP on loopback.
import type { FastifyInstance } from 'fastify';
import { createServer } from '../../src/api/server.ts';
import { createEngine, type Engine } from '../../src/engine/index.ts';
import { parseConfig, type ConfigInput } from '../../src/kernel/config.ts';
import { createDb } from '../../src/kernel/db.ts';
import { silentLogger, type Logger } from '../../src/kernel/logger.ts';
import { syncConfigSubscriptions } from '../../src/outbox/index.ts';
import type { ProviderAdapter } from '../../src/providers/types.ts';
import type { WorkerRuntime } from '../../src/worker/runtime.ts';
import { createTestDatabase, type TestDatabase } from './db.ts';

export const TEST_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
export const OPERATOR_TOKEN = 'test-operator-token-0123456789';
export const VIEWER_TOKEN = 'test-viewer-token-0123456789ab';

export interface TestEngine {
  engine: Engine;
  app: FastifyInstance;
  url: string;
  tdb: TestDatabase;
  worker: WorkerRuntime | undefined;
  startWorker(): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

export async function startTestEngine(opts: { config?: Partial<ConfigInput>; worker?: boolean; providers?: ProviderAdapter[]; log?: Logger } = {}): Promise<TestEngine> {
  const tdb = await createTestDatabase();
  const config = parseConfig({
    providers: { acme: { kind: 'standard-webhooks', secrets: [TEST_SECRET] } },
    adminTokens: [{ name: 'op', token: OPERATOR_TOKEN, role: 'operator' }, { name: 'view', token: VIEWER_TOKEN, role: 'viewer' }],
    outbound: { allow: ['127.0.0.1', 'localhost', '::1'] },
    worker: { pollIntervalMs: 200, leaseMs: 30_000, batchSize: 100, concurrency: 8 },
    ...opts.config,
  });
  const engine = createEngine({ config, db: tdb.db, log: opts.log ?? silentLogger, ...(opts.providers ? { providers: opts.providers } : {}) });
  await syncConfigSubscriptions(tdb.db.pool, config.subscriptions);
  const app = await createServer(engine);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  const url = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}` : '';
  const te: TestEngine = {
    engine, app, url, tdb, worker: undefined,
    async startWorker() {
      const w = engine.createWorker();
      await w.start();
      te.worker = w;
      return w;
    },
    async close() {
      await te.worker?.shutdown();
      await app.close();
      await engine.close();
      await tdb.drop();
    },
  };
  if (opts.worker) await te.startWorker();
  return te;
}

/** Polls until `fn` returns a truthy value (or throws after `ms`): for waiting on workers, not for timing. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, ms = 20_000, every = 50): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export interface SecondEngine {
  engine: Engine;
  startWorker(): Promise<WorkerRuntime>;
  close(): Promise<void>;
}

/** Another engine with its own pool on the same database: a second worker process, in effect. */
export function secondEngine(t: TestEngine): SecondEngine {
  const db = createDb(t.tdb.url, { max: 10 });
  const engine = createEngine({ config: t.engine.config, db, log: silentLogger });
  let worker: WorkerRuntime | undefined;
  return {
    engine,
    async startWorker() {
      worker = engine.createWorker();
      await worker.start();
      return worker;
    },
    async close() {
      await worker?.shutdown();
      await engine.close();
      await db.close();
    },
  };
}
