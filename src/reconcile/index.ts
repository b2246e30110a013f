// Reconciliation: stage the other side's record, match it with ours in
// SQL, repair through the normal paths, hand the rest to a person.
export { reconcileDepsOf, type ReconcileEngine } from './deps.ts';
export { runReconcile, type ReconcileDeps, type ReconcileRequest, type ReconcileOptions, type RunSummary, type Progress } from './run.ts';
export { parseCsvMapping, checkCsvMapping, type CsvMapping } from './csv.ts';
export { ReconcileInputError } from './errors.ts';
export { BREAK_CLASSES, CANONICAL_STATUSES, type BreakClass, type RunCounts } from './classes.ts';
export { listRuns, getRun, listBreaks, breaksCsv, type BreakFilter } from './read.ts';
export { reconcileJobs } from './schedule.ts';
export { reimportRowAction } from './repair.ts';
// Pieces other importers stage with (master data): COPY into a temp table, CSV header lines.
export { copyIn, copyText } from './stage.ts';
export { splitCsvLine } from './csv.ts';
