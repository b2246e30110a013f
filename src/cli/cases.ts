// `seigo cases`: read cases from a shell and run the detectors once (after an incident, or at the end
// of a chaos run). Changing a case stays with the admin API, where the operator's identity is known.
import { InvalidArgumentError, type Command } from 'commander';
import { NotFoundError } from '../kernel/errors.ts';
import { runtimeOptions } from './options.ts';
import { CASE_STATUSES, caseEvents, detectCases, getCase, listCases, type CaseStatus } from '../cases/index.ts';
import { isUuid } from '../kernel/ids.ts';
import { openRuntime } from './bootstrap.ts';
import { caseJson, eventJson } from '../api/cases.ts';

const statuses = (v: string): CaseStatus[] => {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of list) if (!(CASE_STATUSES as readonly string[]).includes(s)) throw new InvalidArgumentError(`unknown status ${s} (${CASE_STATUSES.join(', ')})`);
  return list as CaseStatus[];
};
const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidArgumentError('a whole number from 1 to 10000');
  return n;
};

export function casesCommand(program: Command): void {
  const cases = program.command('cases').description('Cases: what a person must resolve (list, show, run the detectors once)');

  runtimeOptions(cases.command('list'))
    .description('List cases, newest first')
    .option('--status <list>', 'comma-separated statuses', statuses, ['open', 'investigating'] as CaseStatus[])
    .option('--kind <kind>', 'only this kind')
    .option('--cause <cause>', 'only this cause')
    .option('--limit <n>', 'at most this many', positive, 50)
    .option('--json', 'one JSON object per line')
    .action(async (o: { status: CaseStatus[]; kind?: string; cause?: string; limit: number; json?: boolean }) => {
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
      try {
        const list = await listCases(rt.db.pool, { status: o.status, kind: o.kind, cause: o.cause, limit: o.limit });
        if (list.length === 0 && !o.json) {
          const also = [o.kind ? `kind ${o.kind}` : '', o.cause ? `cause ${o.cause}` : ''].filter(Boolean).join(', ');
          console.log(`no cases with status ${o.status.join(' or ')}${also ? `, ${also}` : ''}`);
        }
        for (const c of list) {
          console.log(o.json ? JSON.stringify(caseJson(c))
            : [c.id, c.status.padEnd(13), c.cause.padEnd(30), `${c.subject.type}:${c.subject.id}`, c.assignee ?? '-', c.summary].join('  '));
        }
      } finally {
        await rt.close();
      }
    });

  runtimeOptions(cases.command('show'))
    .description('One case with its history, as JSON')
    .argument('<id>', 'case id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      if (!isUuid(id)) cmd.error(`not a case id: ${id}`);
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
      try {
        const c = await getCase(rt.db.pool, id);
        if (!c) throw new NotFoundError('case_not_found', `no case ${id}`);
        console.log(JSON.stringify({ ...caseJson(c), events: (await caseEvents(rt.db.pool, id)).map(eventJson) }, null, 2));
      } finally {
        await rt.close();
      }
    });

  runtimeOptions(cases.command('detect'))
    .description('Run every detector once now (the worker does it each minute) and print what it opened and resolved, as JSON')
    .action(async () => {
      const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
      try {
        const r = await detectCases(rt.db.pool, { log: rt.log });
        console.log(JSON.stringify({ opened: r.opened, auto_resolved: r.autoResolved }));
      } finally {
        await rt.close();
      }
    });
}
