// Scheduled runs (periodic jobs, one run across any number of workers): each day, every provider
// whose adapter has a history, and the HTTP deliveries to internal services. Windows overlap by an
// hour and stop an hour short of now, so late rows on either side are seen by the next day's run;
// a break seen twice is one break.
import type { PeriodicJob } from '../worker/runtime.ts';
import { runReconcile, type ReconcileDeps } from './run.ts';

const HOUR = 3_600_000;
export const DAILY = 24 * HOUR;

export function reconcileJobs(deps: ReconcileDeps, o: { intervalMs?: number | undefined; deliveryDeadlineMs?: number | undefined } = {}): PeriodicJob[] {
  const intervalMs = o.intervalMs ?? DAILY;
  const window = () => {
    const to = new Date(Date.now() - HOUR);
    return { from: new Date(to.getTime() - intervalMs - HOUR), to };
  };
  const jobs: PeriodicJob[] = [];
  for (const [name, adapter] of deps.providers) {
    if (!adapter.history) continue;
    jobs.push({ name: `reconcile.provider.${name}`, intervalMs, run: async () => { await runReconcile(deps, { source: 'provider', provider: name, ...window() }, { trigger: 'schedule' }); } });
  }
  jobs.push({ name: 'reconcile.deliveries', intervalMs, run: async () => { await runReconcile(deps, { source: 'deliveries', ...window(), deadlineMs: o.deliveryDeadlineMs }, { trigger: 'schedule' }); } });
  return jobs;
}
