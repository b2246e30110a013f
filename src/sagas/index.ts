// Sagas: named lists of steps `{ id, invoke, compensate }`, persisted step by step and
// resumed by any worker; compensations newest first; a compensation that fails for good opens a case.
export {
  DEFAULT_RETRY, DEFAULT_STEP_TIMEOUT_MS, stepKey,
  type Json, type RetryPolicy, type SagaDefinition, type SagaStep, type StepContext, type StepPhase, type StepResult,
} from './define.ts';
export { Sagas, LeaseLost, callWithin, type SagasDeps } from './runner.ts';
export { decide, type Next, type SagaState } from './decide.ts';
export { operationStep, resultOfOperation, type OperationCall, type OperationStepSpec } from './operation-step.ts';
export {
  getSaga, listSagas, sagaHistory,
  type AttemptRow, type EventRow, type SagaFilter, type SagaHistory, type SagaRow, type StartSaga, type StepRow,
} from './store.ts';
export {
  ACTIVE_STATUSES, SAGA_STATUSES, SAGA_TRANSITIONS, STEP_STATUSES, STEP_TRANSITIONS, canSagaTransition, canStepTransition, isFinished,
  type SagaStatus, type StepStatus,
} from './state.ts';
