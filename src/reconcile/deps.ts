// A reconciliation's dependencies taken from a running engine, for the admin API, the CLI, the
// bench, tests and the engine itself. The engine is named by shape, not imported: the engine imports this package.
import type { ReconcileDeps } from './run.ts';

export type ReconcileEngine = { db: { pool: ReconcileDeps['pool'] } } & Omit<ReconcileDeps, 'pool'>;

export const reconcileDepsOf = (engine: ReconcileEngine): ReconcileDeps => ({
  pool: engine.db.pool, providers: engine.providers, inboxWriter: engine.inboxWriter, operations: engine.operations, log: engine.log,
  bankTransferPolicy: engine.bankTransferPolicy,
});
