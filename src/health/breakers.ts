// Circuit breakers live in each process's memory (cockatiel); every flush reports this process's to
// `breaker_states`, so the Health screen and the breaker_open alert see them all. A report older than
// BREAKER_STALE_MS is of a process that stopped, and no longer counts.
import type { Queryable } from '../kernel/db.ts';
import type { BreakerState } from '../operations/index.ts';

export const BREAKER_STALE_MS = 60_000;

const REPORT = `
INSERT INTO breaker_states AS b (endpoint, process_id, state, changed_at, reported_at)
SELECT e, $2, s, c, now() FROM unnest($1::text[], $3::text[], $4::timestamptz[]) AS t(e, s, c)
ON CONFLICT (endpoint, process_id) DO UPDATE SET state = EXCLUDED.state, changed_at = EXCLUDED.changed_at, reported_at = now()`;

/** Reports this process's breakers (none called yet: nothing to report). */
export async function reportBreakers(q: Queryable, processId: string, breakers: readonly BreakerState[]): Promise<void> {
  if (breakers.length === 0) return;
  await q.query(REPORT, [breakers.map((b) => b.endpoint), processId, breakers.map((b) => b.state), breakers.map((b) => b.changedAt)]);
}
