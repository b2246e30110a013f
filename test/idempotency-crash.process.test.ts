// Idempotency-Keys across real `seigo api` processes on one database: a key whose process was
// SIGKILLed mid-request is free at once for a retry on another process (its owner lock died with
// its connection), while live processes sharing a key still run it exactly once.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StripeSimulator } from '../src/providers/stripe/simulator.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { eventually } from './helpers/engine.ts';
import { freePort, killNow, startSeigo, stopGently, waitReady, type SeigoProcess } from './helpers/process.ts';

const API_KEY = 'wallet-backend-key-0123456789abcdef';
const WEBHOOK_SECRET = 'whsec_test_seigo_crash';
let sim: StripeSimulator;
let tdb: TestDatabase;
let dir: string;
let env: Record<string, string>;
const started: SeigoProcess[] = [];

async function api(): Promise<SeigoProcess> {
  const p = startSeigo('api', env, await freePort());
  started.push(p);
  await waitReady(p);
  return p;
}

beforeAll(async () => {
  sim = new StripeSimulator({ seed: 17, secretKey: 'sk_test_seigo', webhookSecret: WEBHOOK_SECRET });
  const { url } = await sim.start();
  tdb = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'seigo-idem-crash-'));
  const config = join(dir, 'seigo.config.json');
  await writeFile(config, JSON.stringify({
    providers: { stripe: { kind: 'stripe', secretKey: 'sk_test_seigo', webhookSecrets: [WEBHOOK_SECRET], apiBase: url, searchLagSeconds: 0 } },
    apiClients: [{ name: 'wallet', key: API_KEY }],
    outbound: { allow: ['127.0.0.1'] },
    // The provider call is held for minutes on purpose: nothing but the kill may end the first attempt.
    endpoints: { stripe: { timeoutMs: 600_000, maxAttempts: 1 } },
  }));
  env = { DATABASE_URL: tdb.url, SEIGO_CONFIG: config };
});
afterAll(async () => {
  for (const p of started) await stopGently(p.child);
  await sim?.stop();
  await tdb?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function post(base: string, key: string, payload: Record<string, unknown>) {
  const res = await request(`${base}/v1/deposits`, {
    method: 'POST', body: JSON.stringify(payload),
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'idempotency-key': key },
  });
  return { status: res.statusCode, replayed: res.headers['idempotent-replayed'] === 'true', body: await res.body.json() as Record<string, unknown> };
}

async function deposits(userId: string): Promise<number> {
  const r = await tdb.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM deposits WHERE user_id = $1', [userId]);
  return r.rows[0]!.n;
}

describe('Idempotency-Key across seigo api processes', () => {
  it('frees the key of a process SIGKILLed mid-request at once: the retry on another process runs (not 409)', async () => {
    const [a, b] = await Promise.all([api(), api()]);
    const key = randomUUID();
    const payload = { method: 'card', user_id: 'crash-u1', amount: 2_500, payment_method: 'pm_card_visa' };
    sim.setFaults({ latencyMs: 300_000 });
    const before = sim.counters.requests;
    const first = post(a.base, key, payload).catch((e: Error) => e);
    // Mid-request: the key is claimed and the provider has the call.
    await eventually(async () => sim.counters.requests > before);
    await killNow(a.child);
    expect(await first).toBeInstanceOf(Error);
    const held = await tdb.db.pool.query('SELECT status FROM idempotency_keys WHERE key = $1', [key]);
    expect(held.rows).toEqual([{ status: 'in_progress' }]);

    sim.setFaults({ latencyMs: 0 });
    const retry = await post(b.base, key, payload);
    expect(retry.status).toBe(201);
    expect(retry.replayed).toBe(false);
    expect(await deposits('crash-u1')).toBe(1);
    const again = await post(b.base, key, payload);
    expect(again).toMatchObject({ status: 201, replayed: true });
    expect(again.body.id).toBe(retry.body.id);
  }, 240_000);

  it('runs a key once when live processes get it concurrently: one run, the others 409 or the replay', async () => {
    const [a, b] = await Promise.all([api(), api()]);
    sim.setFaults({ latencyMs: 1_000 });
    const key = randomUUID();
    const payload = { method: 'card', user_id: 'crash-u2', amount: 1_200, payment_method: 'pm_card_visa' };
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => post(i % 2 ? a.base : b.base, key, payload)));
    sim.setFaults({ latencyMs: 0 });
    expect(await deposits('crash-u2')).toBe(1);
    expect(answers.filter((r) => r.status === 201 && !r.replayed)).toHaveLength(1);
    for (const r of answers) expect([201, 409]).toContain(r.status);
    expect(new Set(answers.filter((r) => r.status === 201).map((r) => r.body.id)).size).toBe(1);
  }, 240_000);
});
