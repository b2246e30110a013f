export { Operations, OPERATION_TRANSITIONS, type Operation, type OperationStatus, type RecordOperation, type ResultHandler } from './operations.ts';
export { Resilience, NotSentError, classifyCallError, type BreakerState } from './resilience.ts';
