// Real seigo processes for tests (`node bin/seigo.js start|api|worker|migrate`): start, wait until
// ready, kill -9. Used by the "process" test project (files named *.process.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const SEIGO_BIN = join(import.meta.dirname, '..', '..', 'bin', 'seigo.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address() as { port: number };
      s.close(() => resolve(a.port));
    });
  });
}

export interface SeigoProcess { child: ChildProcess; base: string; stderr(): string }

/**
 * Starts `seigo <cmd>` with `env` on top of this process's environment (minus DATABASE_URL unless
 * `env` names it, so embedded mode stays embedded when the tests run on a server).
 */
export function startSeigo(cmd: 'start' | 'api' | 'worker', env: Record<string, string>, port: number): SeigoProcess {
  const { DATABASE_URL: _ignored, ...inherited } = process.env;
  const child = spawn(process.execPath, [SEIGO_BIN, cmd], {
    env: { ...inherited, SEIGO_LOG_LEVEL: 'warn', SEIGO_PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  return { child, base: `http://127.0.0.1:${port}`, stderr: () => stderr };
}

/** Waits until the process answers /readyz (or throws with its stderr if it exits first). */
export async function waitReady(p: SeigoProcess, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (p.child.exitCode !== null) throw new Error(`seigo exited (${p.child.exitCode}): ${p.stderr()}`);
    try {
      const r = await fetch(`${p.base}/readyz`);
      if (r.ok) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`seigo did not become ready: ${p.stderr()}`);
}

/** kill -9, and resolves once the process is gone. */
export async function killNow(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** SIGTERM (a clean shutdown), and resolves once the process is gone. */
export async function stopGently(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await gone;
}

/** Runs `seigo migrate` and resolves with its exit code. */
export async function migrateWith(env: Record<string, string>): Promise<number | null> {
  const m = spawn(process.execPath, [SEIGO_BIN, 'migrate'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  return new Promise((r) => m.once('exit', r));
}
