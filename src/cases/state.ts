// The case state machine as data (a transition table): open → investigating →
// resolved | wont_fix, and open → resolved | wont_fix directly. Closed cases stay closed: when the
// same problem comes back, a detector opens a new case for it.
export type CaseStatus = 'open' | 'investigating' | 'resolved' | 'wont_fix';
export const CASE_STATUSES: readonly CaseStatus[] = ['open', 'investigating', 'resolved', 'wont_fix'];
/** Statuses in which a case counts as open (at most one per subject and cause). */
export const OPEN_STATUSES: readonly CaseStatus[] = ['open', 'investigating'];

export const CASE_TRANSITIONS: Readonly<Record<CaseStatus, readonly CaseStatus[]>> = {
  open: ['investigating', 'resolved', 'wont_fix'],
  investigating: ['resolved', 'wont_fix'],
  resolved: [],
  wont_fix: [],
};

export const canTransition = (from: CaseStatus, to: CaseStatus): boolean => CASE_TRANSITIONS[from].includes(to);
export const isClosed = (s: CaseStatus): boolean => CASE_TRANSITIONS[s].length === 0;
/** Every status from which `to` may be reached: the `WHERE status = ANY(...)` of the conditional UPDATE. */
export const sourcesOf = (to: CaseStatus): CaseStatus[] => CASE_STATUSES.filter((s) => canTransition(s, to));
