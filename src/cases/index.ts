// Cases (issue 5, MISSION G3): what a person must resolve, with cause, owner and history.
// `openCase` is the one way in for every module that finds a problem it cannot repair.
export {
  openCase, getCase, caseEvents, listCases, lockCase, assignCase, commentCase, transitionCase, transitionOrThrow, recordEvent, CaseError,
  CASE_SUBJECT_TYPES,
  type Case, type CaseEvent, type CaseEventType, type CaseFilter, type CaseSubject, type CaseSubjectType, type OpenCaseInput, type TransitionInput,
} from './cases.ts';
export { CASE_STATUSES, CASE_TRANSITIONS, OPEN_STATUSES, canTransition, isClosed, sourcesOf, type CaseStatus } from './state.ts';
