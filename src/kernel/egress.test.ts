// Outbound allow-list entries with a port, over real HTTP on loopback, and what `npm start`'s
// simulators add to it: their own ports, not loopback as a whole.
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from './config.ts';
import { egressAgent, egressPolicy, parsePortEntry } from './egress.ts';
import { createLogger } from './logger.ts';
import { startLocalSimulators } from '../sim/local.ts';

const servers: Server[] = [];
const ports: number[] = [];
beforeAll(async () => {
  for (let i = 0; i < 2; i++) {
    const s = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    ports.push((s.address() as { port: number }).port);
  }
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

describe('outbound.allow entries with a port', () => {
  it('parses host:port and [v6]:port, and leaves a bare IPv6 address or a CIDR range alone', () => {
    expect(parsePortEntry('127.0.0.1:4242')).toEqual({ name: undefined, address: '127.0.0.1', port: 4242 });
    expect(parsePortEntry('[::1]:4242')).toEqual({ name: undefined, address: '::1', port: 4242 });
    expect(parsePortEntry('Sim.Local:80')).toEqual({ name: 'sim.local', address: undefined, port: 80 });
    for (const e of ['::1', '127.0.0.1', '10.0.0.0/8', 'fc00::/7', 'localhost', '127.0.0.1:0', '127.0.0.1:70000']) expect(parsePortEntry(e), e).toBeUndefined();
  });

  it('lets through that port only', () => {
    const p = egressPolicy(['127.0.0.1:4242', '[::1]:4243', 'sim.local:80']);
    expect(p.check('127.0.0.1', '127.0.0.1', 4242)).toBe(true);
    expect(p.check('127.0.0.1', '127.0.0.1', 5432)).toBe(false);
    expect(p.check('127.0.0.1', '127.0.0.1')).toBe(false);
    expect(p.check('::1', '::1', 4243)).toBe(true);
    expect(p.check('::1', '::1', 4242)).toBe(false);
    expect(p.check('sim.local', '10.1.2.3', 80)).toBe(true);
    expect(p.check('sim.local', '10.1.2.3', 81)).toBe(false);
    // Public addresses are allowed whatever the list says; entries without a port still allow all ports.
    expect(p.check('example.com', '93.184.216.34', 443)).toBe(true);
    expect(egressPolicy(['127.0.0.1']).check('127.0.0.1', '127.0.0.1', 5432)).toBe(true);
  });

  it('connects to the allowed loopback port and refuses another one, over real HTTP', async () => {
    const agent = egressAgent(egressPolicy([`127.0.0.1:${ports[0]}`]));
    try {
      const ok = await request(`http://127.0.0.1:${ports[0]}/`, { dispatcher: agent });
      expect(await ok.body.text()).toBe('ok');
      await expect(request(`http://127.0.0.1:${ports[1]}/`, { dispatcher: agent })).rejects.toMatchObject({ code: 'egress_refused' });
    } finally {
      await agent.close();
    }
  });
});

describe('the default policy', () => {
  it('allows public addresses, IPv4 and IPv4-mapped IPv6 alike, and refuses private and loopback ones', () => {
    const p = egressPolicy([]);
    for (const a of ['93.184.216.34', '8.8.8.8', '140.82.112.3', '::ffff:8.8.8.8', '2606:4700::1111']) expect(p.check('h', a, 443), a).toBe(true);
    for (const a of ['127.0.0.1', '10.1.2.3', '192.168.1.1', '169.254.169.254', '::1', '::ffff:127.0.0.1', '::ffff:169.254.169.254', 'fd00::1']) {
      expect(p.check('h', a, 443), a).toBe(false);
    }
  });
});

describe('npm start with the simulators', () => {
  it('allows outbound calls to the simulators\' own ports only, and logs them', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'seigo-egress-'));
    const lines: string[] = [];
    const log = createLogger('info', new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } }));
    const config = parseConfig({ dataDir });
    const sims = await startLocalSimulators(config, 'http://127.0.0.1:8787', log);
    try {
      const expected = [new URL(sims.stripe!.url).host, new URL(sims.komoju!.url).host];
      expect(config.outbound.allow).toEqual(expected);
      const policy = egressPolicy(config.outbound.allow);
      expect(policy.check('127.0.0.1', '127.0.0.1', Number(new URL(sims.stripe!.url).port))).toBe(true);
      expect(policy.check('127.0.0.1', '127.0.0.1', 5432)).toBe(false);
      const logged = lines.map((l) => JSON.parse(l) as { msg: string; outboundAllowed?: string[] }).find((l) => l.outboundAllowed);
      expect(logged?.outboundAllowed).toEqual(expected);
    } finally {
      await sims.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
