// Supervises seigo as a deployment runs it: separate `seigo api` and `seigo worker` processes
// (`node bin/seigo.js api|worker`) on one database. The chaos harness kills them with SIGKILL and
// the supervisor starts them again, as systemd or Kubernetes would; a process that dies by itself
// (a fault point's SIGKILL) is restarted too. Everything it started is stopped by `stop()`, and
// killed outright if the harness's own process exits first.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const SEIGO_BIN = fileURLToPath(new URL('../../bin/seigo.js', import.meta.url));

export type Role = 'api' | 'worker';

interface Slot {
  name: string;
  role: Role;
  port: number | undefined;
  child: ChildProcess | undefined;
  starts: number;
  /** Set just before the supervisor kills it, so its exit is not counted as a crash. */
  killedByUs: boolean;
}

export interface ClusterOptions {
  apis: number;
  workers: number;
  /** Environment for every process: DATABASE_URL, SEIGO_CONFIG, … */
  env: NodeJS.ProcessEnv;
  /** Each process's output goes to <logDir>/<name>.log. */
  logDir: string;
  /** SEIGO_FAULT_POINTS for every process (see src/kernel/fault-point.ts); each start gets its own seed. */
  faultPoints?: string | undefined;
  seed: number;
  /** Wait before starting a process again after it died. */
  restartDelayMs?: (() => number) | undefined;
}

export class SeigoCluster {
  readonly counters = { starts: 0, kills: 0, selfKills: 0, crashes: 0 };
  private readonly slots: Slot[] = [];
  private stopping = false;
  private readonly onExit = () => this.killAllNow();

  constructor(private readonly opts: ClusterOptions) {
    for (let i = 1; i <= opts.apis; i++) this.slots.push({ name: `api-${i}`, role: 'api', port: undefined, child: undefined, starts: 0, killedByUs: false });
    for (let i = 1; i <= opts.workers; i++) this.slots.push({ name: `worker-${i}`, role: 'worker', port: undefined, child: undefined, starts: 0, killedByUs: false });
  }

  get names(): string[] {
    return this.slots.map((s) => s.name);
  }

  /** Ports of the API processes (fixed per slot, so a restarted process answers where the old one did). */
  apiPorts(): number[] {
    return this.slots.filter((s) => s.role === 'api' && s.port !== undefined).map((s) => s.port!);
  }

  async start(): Promise<void> {
    process.once('exit', this.onExit);
    for (const s of this.slots) if (s.role === 'api') s.port = await freePort();
    for (const s of this.slots) this.launch(s);
    await Promise.all(this.slots.filter((s) => s.role === 'api').map((s) => this.ready(s)));
  }

  /** SIGKILLs one process; the supervisor starts it again after the restart delay. */
  kill(name: string): void {
    const s = this.slots.find((x) => x.name === name);
    if (!s?.child || s.child.exitCode !== null || s.child.signalCode !== null) return;
    s.killedByUs = true;
    this.counters.kills++;
    s.child.kill('SIGKILL');
  }

  /** Resolves when every process is running and every API process answers /readyz. */
  async allUp(timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const down = this.slots.filter((s) => !s.child || s.child.exitCode !== null || s.child.signalCode !== null);
      if (down.length === 0) break;
      if (Date.now() > end) throw new Error(`seigo processes not running: ${down.map((s) => s.name).join(', ')}`);
      await sleep(100);
    }
    await Promise.all(this.slots.filter((s) => s.role === 'api').map((s) => this.ready(s, timeoutMs)));
  }

  /** Runs one `seigo <args>` command (reconcile, say) with the cluster's environment and returns its output. */
  async runCommand(args: string[], timeoutMs = 300_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const child = spawn(process.execPath, [SEIGO_BIN, ...args], { env: this.opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
    clearTimeout(t);
    return { code, stdout, stderr };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    process.removeListener('exit', this.onExit);
    const live = this.slots.filter((s) => s.child && s.child.exitCode === null && s.child.signalCode === null);
    await Promise.all(live.map(async (s) => {
      const child = s.child!;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }));
  }

  private launch(s: Slot): void {
    s.starts++;
    this.counters.starts++;
    s.killedByUs = false;
    const log = openSync(join(this.opts.logDir, `${s.name}.log`), 'a');
    const env: NodeJS.ProcessEnv = { ...this.opts.env, SEIGO_FAULT_SEED: String((this.opts.seed * 31 + this.counters.starts) >>> 0) };
    if (s.port !== undefined) env.SEIGO_PORT = String(s.port);
    if (this.opts.faultPoints) env.SEIGO_FAULT_POINTS = this.opts.faultPoints;
    const child = spawn(process.execPath, [SEIGO_BIN, s.role], { env, stdio: ['ignore', log, log] });
    closeSync(log);
    s.child = child;
    child.once('exit', (_code, signal) => {
      if (this.stopping) return;
      if (!s.killedByUs) {
        if (signal === 'SIGKILL') this.counters.selfKills++;
        else this.counters.crashes++;
      }
      const delay = this.opts.restartDelayMs?.() ?? 300;
      setTimeout(() => { if (!this.stopping) this.launch(s); }, delay);
    });
  }

  private async ready(s: Slot, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(`http://127.0.0.1:${s.port}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) throw new Error(`${s.name} did not become ready within ${timeoutMs} ms (see ${join(this.opts.logDir, `${s.name}.log`)})`);
      await sleep(200);
    }
  }

  private killAllNow(): void {
    for (const s of this.slots) if (s.child && s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
