// What a person must look at, handed to the cases module as a case: one open case per
// record and cause, so reporting the same thing again only finds it. Callers keep their own
// record too (escrow_reports, the transfer's status), which says what is waiting, case or not.
import { openCase, transitionCase, type CaseSubject } from '../cases/index.ts';
import type { Queryable } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';

export interface CaseReport {
  kind: string;
  cause: string;
  subject: CaseSubject & { type: 'deposit' | 'bank_transfer' };
  summary: string;
  details?: Record<string, unknown>;
}

/** Opens (or finds) the case for `report`, in the caller's transaction. */
export async function reportCase(q: Queryable, log: Logger, report: CaseReport): Promise<{ id: string; opened: boolean }> {
  const c = await openCase(q, {
    kind: report.kind, cause: report.cause, subject: report.subject, summary: report.summary, ...(report.details ? { details: report.details } : {}),
  });
  log.warn({ case_id: c.id, opened: c.opened, cause: report.cause, subject: `${report.subject.type}:${report.subject.id}`, summary: report.summary },
    c.opened ? 'case opened' : 'case still open');
  return c;
}

/** Resolves cases whose cause went away by itself (a refund started for escrow that waited). */
export async function resolveReportedCases(q: Queryable, caseIds: readonly string[], note: string, resolution: Record<string, unknown>): Promise<void> {
  for (const id of caseIds) await transitionCase(q, id, 'resolved', { actor: 'system', note, resolution });
}
