// `seigo partners`: an operator creates partners and manages their API keys from a shell (the same
// functions as /admin/v1/partners). A key's secret is printed once, when it is created or rotated.
import { InvalidArgumentError, type Command } from 'commander';
import { parseDuration } from '../kernel/backoff.ts';
import { withTx } from '../kernel/db.ts';
import {
  PARTNER_SCOPES, createKey, createPartner, getKey, keyJson, listKeys, listPartners, revokeKey, rotateKey,
  type PartnerAdminError, type PartnerScope,
} from '../partners/index.ts';
import { openRuntime, type Runtime } from './bootstrap.ts';
import { runtimeOptions } from './options.ts';

const scopes = (v: string): PartnerScope[] => {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!(PARTNER_SCOPES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown scope ${s} (${PARTNER_SCOPES.join(', ')})`);
  if (list.length === 0) throw new InvalidArgumentError('at least one scope');
  return list as PartnerScope[];
};
const rate = (v: string): { requests: number; windowSeconds: number } => {
  const m = /^(\d+)\/(\S+)$/.exec(v);
  const requests = Number(m?.[1]);
  let windowMs = NaN;
  try { windowMs = m ? parseDuration(m[2]!) : NaN; } catch { /* refused below */ }
  if (!m || !Number.isInteger(requests) || requests < 1 || !(windowMs >= 1000 && windowMs <= 86_400_000)) {
    throw new InvalidArgumentError('requests per window, e.g. 600/60s or 10000/1h');
  }
  return { requests, windowSeconds: Math.round(windowMs / 1000) };
};
const overlap = (v: string): number => {
  const ms = parseDuration(v);
  if (ms > 30 * 86_400_000) throw new InvalidArgumentError('at most 30 days');
  return ms;
};

async function run(fn: (rt: Runtime) => Promise<unknown>): Promise<void> {
  const rt = await openRuntime({ role: 'cli', logLevel: 'warn', migrate: true });
  try {
    const out = await fn(rt);
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await rt.close();
  }
}

function refused(e: PartnerAdminError): { error: PartnerAdminError } {
  process.exitCode = 1;
  return { error: e };
}

export function partnersCommand(program: Command): void {
  const partners = program.command('partners').description('Partners of the partner API (/partner/v1) and their API keys');

  runtimeOptions(partners.command('create')).description('Create a partner').argument('<name>', 'lowercase letters, digits, ".", "_" and "-"')
    .action((name: string) => run(async (rt) => {
      const r = await createPartner(rt.db.pool, name);
      return r.ok ? r.value : refused(r.error);
    }));

  runtimeOptions(partners.command('list')).description('List partners with their keys (never their secrets)')
    .action(() => run(async (rt) => Promise.all((await listPartners(rt.db.pool)).map(async (p) => ({ ...p, keys: (await listKeys(rt.db.pool, p.id)).map(keyJson) })))));

  const keys = partners.command('keys').description('API keys: create, revoke, rotate');
  runtimeOptions(keys.command('create')).description('Create a key; its secret is printed once')
    .argument('<partner>', 'partner name or id')
    .requiredOption('--scopes <list>', `comma-separated: ${PARTNER_SCOPES.join(', ')}`, scopes)
    .option('--name <name>', 'what the key is for')
    .option('--rate <n/window>', 'rate limit, e.g. 600/60s (default: partners.rateLimit)', rate)
    .action((partner: string, o: { scopes: PartnerScope[]; name?: string; rate?: { requests: number; windowSeconds: number } }) => run(async (rt) => {
      const r = await createKey(rt.db.pool, { partner, name: o.name, scopes: o.scopes, rateLimit: o.rate ?? rt.config.partners.rateLimit });
      return r.ok ? keyJson(r.value) : refused(r.error);
    }));

  runtimeOptions(keys.command('revoke')).description('Revoke a key at once').argument('<key-id>', 'pk_…')
    .action((id: string) => run(async (rt) => {
      const r = await revokeKey(rt.db.pool, id);
      return r.ok ? keyJson(r.value) : refused(r.error);
    }));

  runtimeOptions(keys.command('rotate')).description('Issue a replacement key; the old one keeps working for the overlap').argument('<key-id>', 'pk_…')
    .option('--overlap <duration>', 'how long the old key stays valid', overlap, 86_400_000)
    .action((id: string, o: { overlap: number }) => run(async (rt) => {
      if (!(await getKey(rt.db.pool, id))) return refused({ code: 'key_not_found', keyId: id });
      const r = await withTx(rt.db.pool, (tx) => rotateKey(tx, id, new Date(Date.now() + o.overlap)));
      return r.ok ? keyJson(r.value) : refused(r.error);
    }));
}
