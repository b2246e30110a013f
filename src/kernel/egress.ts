// Outbound HTTP that refuses private, loopback and link-local targets (SSRF), checked on the
// resolved address at connect time, so DNS rebinding and redirects cannot sneak past it.
// Hosts and ranges in `outbound.allow` are let through: the simulators and tests on loopback. An
// entry with a port (`127.0.0.1:4242`, `[::1]:4242`, `sim.local:80`) lets through that port only.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { SeigoError } from './errors.ts';

const BLOCKED_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4'];
// No '::ffff:0:0/96' (IPv4-mapped): node's BlockList matches IPv4 addresses against mapped IPv6
// rules, so that range blocked every IPv4 address; a mapped address is checked against the IPv4
// rules above instead (BlockList maps it itself).
const BLOCKED_V6 = ['::/128', '::1/128', '64:ff9b::/96', '100::/64', '2001:db8::/32', 'fc00::/7', 'fe80::/10', 'ff00::/8'];

function blockListOf(v4: string[], v6: string[]): BlockList {
  const b = new BlockList();
  for (const c of v4) { const [a, p] = c.split('/'); b.addSubnet(a!, Number(p), 'ipv4'); }
  for (const c of v6) { const [a, p] = c.split('/'); b.addSubnet(a!, Number(p), 'ipv6'); }
  return b;
}
const BLOCKED = blockListOf(BLOCKED_V4, BLOCKED_V6);

export class EgressRefused extends SeigoError {
  constructor(host: string, address: string, port?: number) {
    const target = port === undefined ? `${host} (${address})` : `${host}:${port} (${address})`;
    super('egress_refused', `refused to connect to ${target}: private, loopback or link-local address; add it to outbound.allow to permit it`, 400, false);
  }
}

export interface EgressPolicy {
  /** Is this (host, resolved address, port) allowed? Without a port, only entries without one count. */
  check(host: string, address: string, port?: number): boolean;
}

/** One `outbound.allow` entry with a port: a host name or an address, on that port only. */
interface PortEntry { name: string | undefined; address: string | undefined; port: number }

/** `host:port` or `[v6]:port`, or undefined for an entry without a port (a bare IPv6 address has colons too). */
export function parsePortEntry(entry: string): PortEntry | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(entry) ?? /^([^:/[\]]+):(\d{1,5})$/.exec(entry);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1]!.toLowerCase();
  return isIP(host) ? { name: undefined, address: host, port } : { name: host, address: undefined, port };
}

/** Builds a policy from `outbound.allow` entries: host names, IP addresses or CIDR ranges, each with or without `:port`. */
export function egressPolicy(allow: readonly string[]): EgressPolicy {
  const names = new Set<string>();
  const allowed = new BlockList();
  const withPort: PortEntry[] = [];
  for (const entry of allow) {
    const p = parsePortEntry(entry);
    if (p) { withPort.push(p); continue; }
    const [addr, prefix] = entry.split('/');
    const fam = isIP(addr ?? '');
    if (fam === 0) { names.add(entry.toLowerCase()); continue; }
    const type = fam === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) allowed.addAddress(addr!, type);
    else allowed.addSubnet(addr!, Number(prefix), type);
  }
  return {
    check(host, address, port) {
      if (names.has(host.toLowerCase())) return true;
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (allowed.check(address, type)) return true;
      if (port !== undefined && withPort.some((e) => e.port === port && (e.name === host.toLowerCase() || e.address === address))) return true;
      return !BLOCKED.check(address, type);
    },
  };
}

/** Resolves `host` and returns an address the policy allows; every address must pass, so a mixed answer is refused. */
export async function resolveAllowed(policy: EgressPolicy, host: string, port?: number): Promise<{ address: string; family: number }> {
  const bare = host.replace(/^\[|\]$/g, '');
  const fam = isIP(bare);
  const addrs = fam !== 0 ? [{ address: bare, family: fam }] : await lookup(bare, { all: true });
  for (const a of addrs) if (!policy.check(bare, a.address, port)) throw new EgressRefused(bare, a.address, port);
  const first = addrs[0];
  if (!first) throw new SeigoError('dns_no_address', `no address for ${bare}`, 502, true);
  return first;
}

/** An undici dispatcher whose every connection (including redirect hops) passes the policy. */
export function egressAgent(policy: EgressPolicy, opts: { connections?: number } = {}): Agent {
  const base = buildConnector({ timeout: 10_000 });
  return new Agent({
    connections: opts.connections ?? 64,
    keepAliveTimeout: 4_000,
    connect(options, callback) {
      const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
      resolveAllowed(policy, options.hostname, port).then(
        ({ address }) => {
          const servername = options.servername ?? (isIP(options.hostname.replace(/^\[|\]$/g, '')) ? undefined : options.hostname);
          base({ ...options, hostname: address, ...(servername ? { servername } : {}) }, callback);
        },
        (e: Error) => callback(e, null),
      );
    },
  });
}
