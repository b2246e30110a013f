// `seigo masterdata`: pull a partner's master on demand (its API, or a CSV file with a mapping)
// and print the pull's counts, or the reason per refused row (exit 1).
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { egressAgent, egressPolicy } from '../kernel/egress.ts';
import { findPartner } from '../partners/index.ts';
import { MasterdataInputError, pullMaster } from '../masterdata/index.ts';
import { openRuntime } from './bootstrap.ts';
import { runtimeOptions } from './options.ts';

interface PullOptions { partner: string; csv?: string; mapping?: string; actor: string }

export function masterdataCommand(program: Command): void {
  const md = program.command('masterdata').description("Partners' master data: pulls, diffs and change sets (/admin/v1/masterdata)");
  runtimeOptions(md.command('pull'))
    .description("Pull a partner's master now (its API, or --csv F --mapping M), diff it with ours and record the change set")
    .requiredOption('--partner <name>', 'the partner (name or id)')
    .option('--csv <file>', 'a master CSV file to read instead of the partner API')
    .option('--mapping <file>', 'the CSV column mapping (JSON); default: the partner source\'s')
    .option('--actor <name>', 'who imports (may not approve its own changes)', process.env.USER ?? 'cli')
    .action(async (o: PullOptions) => {
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn', migrate: true });
      const egress = egressAgent(egressPolicy(rt.config.outbound.allow));
      try {
        const p = await findPartner(rt.db.pool, o.partner);
        if (!p) throw new MasterdataInputError('no_master_source', `no partner ${o.partner}`);
        const csv = o.csv === undefined ? undefined : await readFile(o.csv, 'utf8');
        const mapping = o.mapping === undefined ? undefined : JSON.parse(await readFile(o.mapping, 'utf8')) as unknown;
        const s = await pullMaster({ pool: rt.db.pool, dispatcher: egress }, {
          partnerId: p.id, trigger: csv === undefined ? 'manual' : 'upload', actor: o.actor, csv, mapping,
        });
        console.log(JSON.stringify(s, null, 2));
        if (s.status === 'failed') process.exitCode = 1;
      } finally {
        await egress.close();
        await rt.close();
      }
    });
}
