// Outbound HTTP that refuses private, loopback and link-local targets (SSRF), checked on the
// resolved address at connect time, so DNS rebinding and redirects cannot sneak past it.
// Hosts and ranges in `outbound.allow` are let through: the simulators and tests on loopback.
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { SeigoError } from './errors.ts';

const BLOCKED_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.0.2.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4'];
const BLOCKED_V6 = ['::/128', '::1/128', '::ffff:0:0/96', '64:ff9b::/96', '100::/64', '2001:db8::/32', 'fc00::/7', 'fe80::/10', 'ff00::/8'];

function blockListOf(v4: string[], v6: string[]): BlockList {
  const b = new BlockList();
  for (const c of v4) { const [a, p] = c.split('/'); b.addSubnet(a!, Number(p), 'ipv4'); }
  for (const c of v6) { const [a, p] = c.split('/'); b.addSubnet(a!, Number(p), 'ipv6'); }
  return b;
}
const BLOCKED = blockListOf(BLOCKED_V4, BLOCKED_V6);

export class EgressRefused extends SeigoError {
  constructor(host: string, address: string) {
    super('egress_refused', `refused to connect to ${host} (${address}): private, loopback or link-local address; add it to outbound.allow to permit it`, 400, false);
  }
}

export interface EgressPolicy {
  /** Is this (host, resolved address) pair allowed? */
  check(host: string, address: string): boolean;
}

/** Builds a policy from `outbound.allow` entries: host names, IP addresses or CIDR ranges. */
export function egressPolicy(allow: readonly string[]): EgressPolicy {
  const names = new Set<string>();
  const allowed = new BlockList();
  for (const entry of allow) {
    const [addr, prefix] = entry.split('/');
    const fam = isIP(addr ?? '');
    if (fam === 0) { names.add(entry.toLowerCase()); continue; }
    const type = fam === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) allowed.addAddress(addr!, type);
    else allowed.addSubnet(addr!, Number(prefix), type);
  }
  return {
    check(host, address) {
      if (names.has(host.toLowerCase())) return true;
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (allowed.check(address, type)) return true;
      return !BLOCKED.check(address, type);
    },
  };
}

/** Resolves `host` and returns an address the policy allows; every address must pass, so a mixed answer is refused. */
export async function resolveAllowed(policy: EgressPolicy, host: string): Promise<{ address: string; family: number }> {
  const bare = host.replace(/^\[|\]$/g, '');
  const fam = isIP(bare);
  const addrs = fam !== 0 ? [{ address: bare, family: fam }] : await lookup(bare, { all: true });
  for (const a of addrs) if (!policy.check(bare, a.address)) throw new EgressRefused(bare, a.address);
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
      resolveAllowed(policy, options.hostname).then(
        ({ address }) => {
          const servername = options.servername ?? (isIP(options.hostname.replace(/^\[|\]$/g, '')) ? undefined : options.hostname);
          base({ ...options, hostname: address, ...(servername ? { servername } : {}) }, callback);
        },
        (e: Error) => callback(e, null),
      );
    },
  });
}
