// ${dataDir}/runtime.json: what a running `seigo start` tells the other seigo commands run in the same
// directory (its pid, port, database URL and the providers its simulators registered), so that they use the
// running engine instead of starting a database of their own; and the claim that keeps a second `start` out.
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { providerSchema } from '../kernel/config.ts';
import { isLiveProcess, processStartTime } from '../kernel/embedded-postgres.ts';

const runtimeSchema = z.object({
  pid: z.number().int().positive(),
  /** The process's start time, so a later process that reuses the pid is not taken for this one. */
  startTime: z.string().optional(),
  since: z.string(),
  /** The HTTP API's port and host. */
  port: z.number().int().min(0).max(65535),
  host: z.string(),
  /** Set once the engine is ready: where its database is, and the providers the simulators play. */
  databaseUrl: z.string().optional(),
  providers: z.record(z.string(), providerSchema).default({}),
});
export type RuntimeInfo = z.output<typeof runtimeSchema>;

export const runtimePath = (dataDir: string) => join(dataDir, 'runtime.json');

function readRuntime(dataDir: string): RuntimeInfo | undefined {
  try {
    const parsed = runtimeSchema.safeParse(JSON.parse(readFileSync(runtimePath(dataDir), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The runtime file of a live seigo process (not this one) in `dataDir`, or undefined. */
export function liveRuntime(dataDir: string): RuntimeInfo | undefined {
  const r = readRuntime(dataDir);
  return r && r.pid !== process.pid && isLiveProcess(r) ? r : undefined;
}

/**
 * Claims `dataDir` for this process: writes the runtime file unless a live seigo holds it (returned then).
 * The file is created exclusively, so of two starts at once only one wins; a dead holder's file is replaced.
 */
export function claimRuntime(
  dataDir: string, at: { port: number; host: string },
): { ok: true } | { ok: false; holder: RuntimeInfo } {
  const startTime = processStartTime(process.pid);
  const since = new Date().toISOString();
  const info: RuntimeInfo = { pid: process.pid, ...(startTime ? { startTime } : {}), since, ...at, providers: {} };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(runtimePath(dataDir), 'wx', 0o600);
      writeSync(fd, `${JSON.stringify(info, null, 2)}\n`);
      closeSync(fd);
      return { ok: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = liveRuntime(dataDir);
    if (holder) return { ok: false, holder };
    rmSync(runtimePath(dataDir), { force: true }); // left by a process that died without cleaning up
  }
  const holder = liveRuntime(dataDir);
  if (holder) return { ok: false, holder };
  throw new Error(`could not claim ${runtimePath(dataDir)}`);
}

/** Adds what the running engine offers (database, providers) to this process's runtime file. Mode 600: it holds secrets. */
export function publishRuntime(dataDir: string, more: { databaseUrl: string; providers: RuntimeInfo['providers'] }): void {
  const current = readRuntime(dataDir);
  if (current?.pid !== process.pid) return;
  const tmp = `${runtimePath(dataDir)}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  writeSync(fd, `${JSON.stringify({ ...current, ...more }, null, 2)}\n`);
  closeSync(fd);
  renameSync(tmp, runtimePath(dataDir));
}

/** Removes the runtime file if it is this process's. */
export function releaseRuntime(dataDir: string): void {
  if (readRuntime(dataDir)?.pid === process.pid) rmSync(runtimePath(dataDir), { force: true });
}
