// Where a provider simulator keeps its records between runs: one JSON file, replaced atomically on
// each change, so `npm start` after a restart still finds the payments the demo made (a provider
// that forgot them would turn every one into a reconciliation break).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

/** The saved state, or undefined when there is none yet (a file that does not parse is an error naming it). */
export function readSimulatorState<T>(file: string | undefined): T | undefined {
  if (!file || !existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`the simulator state in ${file} is not JSON (${(e as Error).message}): remove the file to start afresh`);
  }
}

/** Replaces the state file in one rename: a crash leaves the old state or the new, never half of one. */
export function writeSimulatorState(file: string | undefined, state: unknown): void {
  if (!file) return;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, file);
}
