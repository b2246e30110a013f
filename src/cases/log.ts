// One info line per case opened or closed, written by whoever opened or closed it once its transaction
// committed: an operator tailing the log sees what needs a person without querying the cases table.
import type { Logger } from '../kernel/logger.ts';
import type { CaseSubject } from './cases.ts';

/** Logs a case that `openCase` opened (nothing when it found one already open). */
export function logCaseOpened(log: Logger, r: { id: string; opened: boolean }, c: { cause: string; subject: CaseSubject }): void {
  if (r.opened) log.info({ case_id: r.id, cause: c.cause, subject: `${c.subject.type}:${c.subject.id}` }, 'case opened');
}

/** Logs a case that was closed (resolved or won't fix), by whom. */
export function logCaseClosed(log: Logger, c: { id: string; status: string; cause?: string }, actor: string): void {
  log.info({ case_id: c.id, status: c.status, ...(c.cause ? { cause: c.cause } : {}), actor }, 'case closed');
}
