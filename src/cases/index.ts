// Cases: what a person must resolve, with cause, owner and history.
// `openCase` is the one way in for every module that finds a problem it cannot repair.
export {
  openCase, getCase, caseEvents, listCases, lockCase, assignCase, commentCase, transitionCase, transitionOrThrow, recordEvent, CaseError,
  CASE_SUBJECT_TYPES,
  type Case, type CaseEvent, type CaseEventType, type CaseFilter, type CaseSubject, type CaseSubjectType, type OpenCaseInput, type TransitionInput,
} from './cases.ts';
export { CASE_STATUSES, CASE_TRANSITIONS, OPEN_STATUSES, canTransition, isClosed, sourcesOf, type CaseStatus } from './state.ts';
export { CaseActions, retryOperationAction, redriveDeliveryAction, replayInboxAction, targetOf, type ActionOutcome, type CaseAction, type CaseActionContext } from './actions.ts';
export {
  proposeAdjustment, approveAdjustment, rejectAdjustment, listAdjustments, adjustmentPostingKey, AdjustmentError,
  type Adjustment, type AdjustmentEntry, type AdjustmentStatus,
} from './adjustments.ts';
export { resolveCase, adjustmentProposal, ActionRefusedError, MANUAL_LEDGER_ADJUSTMENT, type ResolveInput, type ResolveOutcome } from './resolve.ts';
export { detectCases, DETECTORS, type DetectResult } from './detect.ts';
export { logCaseOpened, logCaseClosed } from './log.ts';
