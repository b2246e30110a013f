// A real nats-server with JetStream for tests and the simulators: on a free loopback port with a temporary
// store, stoppable and restartable on the same port and store (a broker outage, then its return).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CANDIDATES = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];

/** The nats-server binary (SEIGO_NATS_SERVER, PATH, or Debian's /usr/sbin), or null when absent. */
export function natsServerBinary(): string | null {
  if (process.env.SEIGO_NATS_SERVER) return process.env.SEIGO_NATS_SERVER;
  const onPath = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  return CANDIDATES.find((p) => existsSync(p)) ?? null;
}

export interface NatsServer {
  url: string;
  port: number;
  /** Stops the server (SIGTERM, then SIGKILL); the store stays for a restart. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store. */
  start(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect({ port, host: '127.0.0.1' });
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/** Starts nats-server -js on a free port; `config` is extra nats-server configuration (accounts, users). */
export async function startNatsServer(opts: { config?: string } = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  if (!bin) throw new Error('no nats-server binary');
  const dir = await mkdtemp(join(tmpdir(), 'seigo-nats-'));
  const port = await freePort();
  const args = ['-js', '-sd', join(dir, 'store'), '-p', String(port), '-a', '127.0.0.1', '--http_port', '0'];
  if (opts.config) {
    await writeFile(join(dir, 'nats.conf'), opts.config);
    args.push('-c', join(dir, 'nats.conf'));
  }
  let child: ChildProcess | undefined;
  let output = '';
  const start = async () => {
    output = '';
    const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
    c.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
    for (let i = 0; i < 200; i++) {
      if (c.exitCode !== null) throw new Error(`nats-server exited with ${c.exitCode}: ${output.slice(-2000)}`);
      if (/Server is ready/.test(output) && await accepting(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nats-server did not become ready: ${output.slice(-2000)}`);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
