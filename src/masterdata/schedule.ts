// Scheduled pulls: one periodic job claims the partners whose pull is due (each source's own
// interval; the claim moves next_pull_at first, so any number of workers pull each once) and pulls them.
import type { PeriodicJob } from '../worker/runtime.ts';
import { withTx } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';
import { pullMaster, type PullDeps, type PullSummary } from './pull.ts';
import { CLAIM_DUE } from './sources.ts';

export async function pullDue(deps: PullDeps, now: Date, limit = 10): Promise<PullSummary[]> {
  const due = await withTx(deps.pool, (tx) => tx.query<{ partner_id: string }>(CLAIM_DUE, [now, limit]));
  const out: PullSummary[] = [];
  for (const { partner_id: partnerId } of due.rows) out.push(await pullMaster(deps, { partnerId, trigger: 'schedule', actor: 'schedule' }));
  return out;
}

export function masterdataJobs(deps: PullDeps, o: { now: () => Date; log: Logger; checkEveryMs?: number }): PeriodicJob[] {
  return [{
    name: 'masterdata.pull', intervalMs: o.checkEveryMs ?? 60_000,
    run: async () => {
      for (const p of await pullDue(deps, o.now())) {
        if (p.status === 'failed') o.log.warn({ pull_id: p.id, partner_id: p.partnerId, error: p.error }, 'scheduled master pull failed');
      }
    },
  }];
}
