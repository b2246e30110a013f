// `seigo reconcile`: one run now, from a provider's history or from a file, printed as a summary
// (or JSON with --json), with a progress bar on a terminal.
import { readFile } from 'node:fs/promises';
import { createEngine } from '../engine/index.ts';
import { parseCsvMapping, ReconcileInputError, reconcileDepsOf, runReconcile, type Progress, type ReconcileRequest, type RunSummary } from '../reconcile/index.ts';
import { openRuntime } from './bootstrap.ts';
import { problem } from '../kernel/errors.ts';
import { printProblem } from './problem.ts';

export interface ReconcileCliOptions {
  provider?: string;
  from?: Date;
  to?: Date;
  file?: string;
  format?: 'zengin' | 'csv';
  mapping?: string;
  deliveries?: boolean;
  encoding?: 'shift_jis' | 'utf8';
  repair: boolean;
  json?: boolean;
}

/** What to run, or a message saying what is missing. */
export async function reconcileRequest(o: ReconcileCliOptions): Promise<ReconcileRequest | string> {
  if (o.deliveries) {
    if (!o.from || !o.to) return '--deliveries needs --from and --to';
    return { source: 'deliveries', from: o.from, to: o.to };
  }
  if (o.provider) {
    if (o.file) return 'give --provider or --file, not both';
    if (!o.from || !o.to) return '--provider needs --from and --to';
    return { source: 'provider', provider: o.provider, from: o.from, to: o.to };
  }
  if (!o.file) return 'give --provider P --from D --to D, or --file F --format zengin|csv [--mapping M]';
  if (o.format === 'zengin') return { source: 'zengin', file: o.file, encoding: o.encoding, from: o.from, to: o.to };
  if (o.format === 'csv') {
    if (!o.mapping) return '--format csv needs --mapping M (a JSON file naming the columns)';
    const text = await readFile(o.mapping, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new ReconcileInputError('invalid_mapping', `cannot read ${o.mapping}: ${e.code ?? e.message}`);
    });
    return { source: 'csv', file: o.file, mapping: parseCsvMapping(text), from: o.from, to: o.to };
  }
  return '--file needs --format zengin or --format csv';
}

function progressBar(): ((p: Progress) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  const t0 = performance.now();
  let last = 0;
  return (p) => {
    const now = performance.now();
    if (now - last < 100 && p.phase === 'stage') return;
    last = now;
    const width = 24;
    const bar = p.fraction === undefined ? '' : `${'█'.repeat(Math.round(p.fraction * width)).padEnd(width, '░')} ${Math.floor(p.fraction * 100)}% `;
    const line = `reconcile ${bar}${p.phase}${p.rows ? ` ${p.rows.toLocaleString('en')} rows` : ''} ${((now - t0) / 1000).toFixed(1)}s`;
    process.stderr.write(`\r${line.padEnd(78)}${p.phase === 'done' ? '\n' : ''}`);
  };
}

function describe(r: RunSummary): string {
  const c = r.counts;
  return [
    `run ${r.id} (${r.scope}) ${r.window.from} → ${r.window.to}: ${r.external_rows} theirs, ${r.internal_rows} ours`,
    `  matched ${c.matched}, missing here ${c.missing_here}, missing there ${c.missing_there}, amount mismatch ${c.amount_mismatch}, `
      + `status mismatch ${c.status_mismatch}, duplicate there ${c.duplicate_there}; ${r.resolved} earlier breaks resolved`,
    `  repairs: ${r.repairs.notifications} notifications, ${r.repairs.inquiries} inquiries, ${r.repairs.imports} imports, ${r.repairs.cases} cases`,
    `  ${r.timings_ms.total} ms (stage ${r.timings_ms.stage}, match ${r.timings_ms.match}, repair ${r.timings_ms.repair})`,
  ].join('\n');
}

export async function reconcileCommand(o: ReconcileCliOptions, fail: (message: string) => never): Promise<void> {
  let req: ReconcileRequest | string;
  try {
    req = await reconcileRequest(o);
  } catch (e) {
    if (e instanceof ReconcileInputError) fail(e.message);
    throw e;
  }
  if (typeof req === 'string') fail(req);
  const rt = await openRuntime({ role: 'cli', logLevel: 'warn' });
  const engine = createEngine({ config: rt.config, db: rt.db, log: rt.log });
  try {
    const onProgress = o.json ? undefined : progressBar();
    const r = await runReconcile(reconcileDepsOf(engine), req, { trigger: 'manual', repair: o.repair, ...(onProgress ? { onProgress } : {}) });
    console.log(o.json ? JSON.stringify(r) : describe(r));
  } catch (e) {
    if (e instanceof ReconcileInputError) {
      // The API's problem shape; with --json on stdout, where the caller reads the run.
      const p = problem(400, e.code, e.message);
      if (o.json) console.log(JSON.stringify(p));
      else printProblem(p);
      process.exitCode = 2;
      return;
    }
    throw e;
  } finally {
    await engine.close();
    await rt.close();
  }
}
