// `seigo sagas list|show`: read sagas from a shell, with their steps, attempts and causes.
import { InvalidArgumentError, type Command } from 'commander';
import { isUuid } from '../kernel/ids.ts';
import { SAGA_STATUSES, listSagas, sagaHistory, type SagaStatus } from '../sagas/index.ts';
import { openRuntime } from './bootstrap.ts';
import { runtimeOptions } from './options.ts';

const statuses = (v: string): SagaStatus[] => {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!(SAGA_STATUSES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown status ${s} (${SAGA_STATUSES.join(', ')})`);
  return list as SagaStatus[];
};
const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidArgumentError('a whole number from 1 to 10000');
  return n;
};

export function sagasCommand(program: Command): void {
  const sagas = program.command('sagas').description('Sagas: multi-step work with compensation (list, show one with its history)');

  runtimeOptions(sagas.command('list'))
    .description('List sagas, newest first')
    .option('--status <list>', 'comma-separated statuses (running, compensating, completed, compensated, failed)', statuses)
    .option('--name <name>', 'only sagas of this name')
    .option('--before <id>', 'sagas older than this saga id (the next page)')
    .option('--limit <n>', 'at most this many', positive, 50)
    .option('--json', 'one JSON object per line')
    .action(async (o: { status?: SagaStatus[]; name?: string; before?: string; limit: number; json?: boolean }) => {
      if (o.before !== undefined && !isUuid(o.before)) program.error(`--before: not a saga id: ${o.before}`);
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
      try {
        const list = await listSagas(rt.db.pool, { status: o.status, name: o.name, before: o.before, limit: o.limit });
        for (const s of list) {
          console.log(o.json ? JSON.stringify(s)
            : [s.id, s.status.padEnd(12), s.name.padEnd(30), s.current_step ?? '-', s.entity_type ? `${s.entity_type}:${s.entity_id}` : '-', s.last_error ?? ''].join('  '));
        }
      } finally {
        await rt.close();
      }
    });

  runtimeOptions(sagas.command('show'))
    .description('One saga with its steps, attempts and events, as JSON')
    .argument('<id>', 'saga id')
    .action(async (id: string) => {
      if (!isUuid(id)) program.error(`not a saga id: ${id}`);
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
      try {
        const h = await sagaHistory(rt.db.pool, id);
        if (!h) {
          console.log(JSON.stringify({ error: { code: 'saga_not_found', message: `no saga ${id}` } }));
          process.exitCode = 1;
          return;
        }
        console.log(JSON.stringify(h, null, 2));
      } finally {
        await rt.close();
      }
    });
}
