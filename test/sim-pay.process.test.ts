// The demo reaches the end: against a real `seigo start`, `seigo sim pay` pays a konbini, a Pay-easy and a
// bank-transfer deposit as their customers would, and each ends `succeeded`; after a restart the simulators
// still hold those payments, so reconciling KOMOJU and Stripe finds every one matched and no break.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEIGO_BIN, freePort, startSeigo, stopGently, waitReady, type SeigoProcess } from './helpers/process.ts';

interface Ran { code: number; stdout: string; stderr: string }
let dataDir: string;
let port: number;
let engine: SeigoProcess;

function seigo(args: string[]): Promise<Ran> {
  const { DATABASE_URL: _ignored, ...env } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, [SEIGO_BIN, ...args], { env: { ...env, SEIGO_DATA_DIR: dataDir, SEIGO_LOG_LEVEL: 'warn' }, timeout: 90_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function startEngine(): Promise<SeigoProcess> {
  const p = startSeigo('start', { SEIGO_DATA_DIR: dataDir }, port);
  await waitReady(p);
  // Ready for other commands once it has published its database and simulated providers.
  for (let i = 0; !(await readFile(join(dataDir, 'runtime.json'), 'utf8').catch(() => '')).includes('databaseUrl'); i++) {
    if (i > 300) throw new Error('no runtime file');
    await new Promise((r) => setTimeout(r, 100));
  }
  return p;
}

async function v1(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const key = (await readFile(join(dataDir, 'api-key'), 'utf8')).trim();
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: body === undefined ? 'GET' : 'POST', body: body === undefined ? null : JSON.stringify(body),
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
  });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

describe('seigo sim pay', () => {
  const paid: Record<string, string> = {};

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'seigo-simpay-'));
    await chmod(dataDir, 0o755); // PostgreSQL's unprivileged user (when tests run as root) must reach it
    port = await freePort();
    engine = await startEngine();
  });

  afterAll(async () => {
    await stopGently(engine.child);
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ['konbini', { email: 'u1@example.com', store: 'lawson', amount: 3000 }],
    ['payeasy', { email: 'u1@example.com', amount: 4000 }],
    ['bank_transfer', { amount: 20000 }],
  ])('a %s deposit ends succeeded, credited once', async (method, fields) => {
    if (method === 'bank_transfer') expect((await v1('/v1/virtual-accounts', { user_id: 'u1', name_kana: 'ヤマダ タロウ' })).status).toBe(200);
    const created = await v1('/v1/deposits', { method, user_id: 'u1', ...fields });
    expect(created.json.status).toBe('awaiting_payment');
    const r = await seigo(['sim', 'pay', String(created.json.id)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { deposit: { status: string; credited: string } };
    expect(out.deposit).toMatchObject({ status: 'succeeded', credited: String(fields.amount) });
    expect((await v1(`/v1/deposits/${String(created.json.id)}`)).json.status).toBe('succeeded');
    paid[method] = String(created.json.id);
  });

  it('paying again, or paying a card deposit, is refused with a problem', async () => {
    const again = await seigo(['sim', 'pay', paid.konbini!]);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stderr.trim())).toMatchObject({ code: 'not_awaiting_payment' });
    const card = await v1('/v1/deposits', { method: 'card', user_id: 'u1', amount: 5000, payment_method: 'pm_card_visa' });
    expect(card.json.status).toBe('succeeded');
    const r = await seigo(['sim', 'pay', String(card.json.id)]);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ code: 'nothing_to_pay' });
    const none = await seigo(['sim', 'pay', '01a23ce3-0000-7000-8000-000000000000']);
    expect(JSON.parse(none.stderr.trim())).toMatchObject({ code: 'deposit_not_found' });
  });

  it('after a restart the simulators still hold the payments: reconciliation finds no break', async () => {
    await stopGently(engine.child);
    engine = await startEngine();
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 3_600_000).toISOString();
    for (const [provider, rows] of [['komoju', 2], ['stripe', 1]] as const) {
      const r = await seigo(['reconcile', '--provider', provider, '--from', from, '--to', to, '--json']);
      expect(r.stderr).toBe('');
      const run = JSON.parse(r.stdout) as { counts: Record<string, number>; breaks: number };
      expect(run.counts.matched).toBe(rows);
      expect(run.breaks).toBe(0);
    }
  });
});
