// What a person must look at, handed to the cases module (issue 5). Until "Cases core" is merged
// into main this is the one place that stands in for `openCase` from src/cases: it logs, and the
// caller keeps its own durable record (escrow_reports), so nothing is lost when the call changes.
import type { Queryable } from '../kernel/db.ts';
import type { Logger } from '../kernel/logger.ts';

export interface CaseReport {
  kind: string;
  cause: string;
  subject: { type: 'deposit' | 'bank_transfer'; id: string };
  summary: string;
  details?: Record<string, unknown>;
}

/** Opens (or finds) the case for `report`; returns its id, or null while no cases module exists. */
export async function reportCase(_q: Queryable, log: Logger, report: CaseReport): Promise<{ id: string } | null> {
  log.warn({ kind: report.kind, cause: report.cause, subject: report.subject, details: report.details }, report.summary);
  return null;
}
