// The two end-to-end proofs, one piece of code: `seigo sim deposits` (N deposits against the
// simulators with provider faults) and `seigo sim chaos` (the same driver for a duration, two api and
// two worker processes, random SIGKILLs, and a deliberate crash point between a provider call and
// the commit that records it). Both stop the faults, wait until seigo is quiet, and report figures
// computed from the database and the simulators' records; `ok` is false when an invariant broke.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '../kernel/prng.ts';
import { driveDeposits, planDeposits, setUpUsers, type DriveStats } from './drive.ts';
import { computeFigures, violations, waitUntilQuiet, type Figures } from './verify.ts';
import { startWorld, type World } from './world.ts';

export interface ProofOptions {
  seed: number;
  faultRate: number;
  databaseUrl?: string | undefined;
  /** Longest wait for the system to settle after driving. */
  quiesceTimeoutMs?: number | undefined;
  progress?: ((msg: string) => void) | undefined;
}

export interface ProofResult extends Figures {
  seed: number;
  requested: number;
  ok: boolean;
  violations: string[];
  [k: string]: unknown;
}

const DEFAULT_LIMIT = 1_000_000;

async function settleAndCheck(w: World, o: ProofOptions, since: Date, progress: (m: string) => void) {
  progress('faults off; waiting until seigo is quiet');
  w.setProviderFaults(0);
  const first = await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000);
  progress('reconciling with Stripe, KOMOJU, the bank and the wallet backend');
  const reconcile = await reconcileAll(w, since);
  // Repairs go through the normal paths (intake, the janitor): let them finish too.
  const settled = await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000);
  const figures = await computeFigures(w);
  return { settled: { quiet: first.quiet && settled.quiet, waitedMs: first.waitedMs + settled.waitedMs }, figures, reconcile };
}

/**
 * Runs `seigo reconcile` as an operator would, against each source of truth: both providers'
 * histories, the bank's statement (every transfer it reported) and the HTTP deliveries to the
 * wallet backend. Returns each run's counts and repairs.
 */
async function reconcileAll(w: World, since: Date): Promise<Record<string, unknown>> {
  const from = new Date(since.getTime() - 60_000).toISOString();
  const to = new Date(Date.now() + 60_000).toISOString();
  const runs: [string, string[]][] = [
    ['stripe', ['--provider', 'stripe', '--from', from, '--to', to]],
    ['komoju', ['--provider', 'komoju', '--from', from, '--to', to]],
    ['deliveries', ['--deliveries', '--from', from, '--to', to]],
  ];
  const statement = w.bank.statement();
  if (statement) {
    const file = join(w.workDir, 'bank-statement.txt');
    await writeFile(file, statement);
    runs.push(['bank', ['--file', file, '--format', 'zengin']]);
  }
  const out: Record<string, unknown> = {};
  for (const [name, args] of runs) {
    const r = await w.cluster.runCommand(['reconcile', ...args, '--json']);
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
    if (r.code !== 0 || !line) throw new Error(`seigo reconcile (${name}) failed with exit code ${r.code}: ${r.stderr.slice(-2_000)}`);
    const run = JSON.parse(line) as { counts?: unknown; repairs?: unknown; breaks?: unknown; status?: unknown };
    out[name] = { status: run.status, counts: run.counts, breaks: run.breaks, repairs: run.repairs };
  }
  return out;
}

function result(seed: number, stats: DriveStats, s: Awaited<ReturnType<typeof settleAndCheck>>, extra: Record<string, unknown>): ProofResult {
  const v = violations(s.figures, s.settled.quiet);
  for (const [name, run] of Object.entries(s.reconcile)) {
    if ((run as { status?: unknown }).status !== 'succeeded') v.push(`the ${name} reconciliation run did not succeed`);
  }
  return {
    seed, requested: stats.requested, ...s.figures, ok: v.length === 0, violations: v,
    reconcile: s.reconcile, quiesced: s.settled.quiet, quiesce_ms: s.settled.waitedMs,
    drive: stats, ...extra,
  };
}

/** `seigo sim deposits`: N deposits across all methods, one api and one worker process, provider faults at `faultRate`. */
export async function runDepositsProof(o: ProofOptions & { count: number }): Promise<ProofResult> {
  const progress = o.progress ?? (() => undefined);
  const w = await startWorld({ seed: o.seed, apis: 1, workers: 1, databaseUrl: o.databaseUrl, defaultLimit: DEFAULT_LIMIT, progress });
  let ok = false;
  try {
    const started = new Date();
    const plan = planDeposits({ seed: o.seed, count: o.count, users: Math.max(6, Math.ceil(o.count / 5)), faultRate: o.faultRate });
    await setUpUsers(w, plan);
    w.setProviderFaults(o.faultRate);
    progress(`driving ${o.count} deposits with faults at ${o.faultRate}`);
    const stats = await driveDeposits(w, plan, { concurrency: 4, faultRate: o.faultRate });
    const s = await settleAndCheck(w, o, started, progress);
    const r = result(o.seed, stats, s, { simulators: simulatorCounters(w) });
    ok = r.ok;
    return r;
  } finally {
    await w.stop(!ok);
  }
}

/**
 * `seigo sim chaos`: two api and two worker processes; deposits for `durationS` seconds with
 * provider faults, while a seigo process is SIGKILLed every few seconds (and a worker or api kills
 * itself right after a provider call with probability `afterCallKill`), then quiet and checks.
 */
export async function runChaos(o: ProofOptions & { durationS: number; afterCallKill?: number | undefined }): Promise<ProofResult> {
  const progress = o.progress ?? (() => undefined);
  const killRand = mulberry32(o.seed ^ 0xc4a05);
  const w = await startWorld({
    seed: o.seed, apis: 2, workers: 2, databaseUrl: o.databaseUrl, defaultLimit: DEFAULT_LIMIT, progress,
    faultPoints: `operations.after-call=${o.afterCallKill ?? 0.05}`,
    restartDelayMs: () => 200 + Math.floor(killRand() * 800),
  });
  let ok = false;
  try {
    const rate = Math.max(4, Math.round(o.durationS * 2));
    const plan = planDeposits({ seed: o.seed, count: rate * 4, users: 30, faultRate: o.faultRate });
    await setUpUsers(w, plan);
    w.setProviderFaults(o.faultRate);
    const until = Date.now() + o.durationS * 1000;
    // The kill schedule comes from the seed: after 2–5 s, a random process; and so on until the end.
    const schedule: { atMs: number; target: string }[] = [];
    for (let t = 0; ;) {
      t += 2_000 + Math.floor(killRand() * 3_000);
      if (t >= o.durationS * 1000) break;
      schedule.push({ atMs: t, target: w.cluster.names[Math.floor(killRand() * w.cluster.names.length)]! });
    }
    progress(`chaos for ${o.durationS} s: ${schedule.length} kills planned, faults at ${o.faultRate}`);
    const started = new Date();
    const killer = (async () => {
      for (const k of schedule) {
        const wait = started.getTime() + k.atMs - Date.now();
        if (wait > 0) await sleep(wait);
        w.cluster.kill(k.target);
      }
    })();
    const stats = await driveDeposits(w, plan, { concurrency: 8, faultRate: o.faultRate, untilMs: until });
    await killer;
    progress('kills over; waiting for every process to be back');
    await w.cluster.allUp();
    const s = await settleAndCheck(w, o, started, progress);
    const r = result(o.seed, stats, s, {
      duration_s: o.durationS,
      processes: { ...w.cluster.counters, planned_kills: schedule.length },
      balancer: w.balancer.counters,
      simulators: simulatorCounters(w),
    });
    ok = r.ok;
    return r;
  } finally {
    await w.stop(!ok);
  }
}

function simulatorCounters(w: World) {
  return { stripe: w.stripe.counters, komoju: w.komoju.counters, bank: { reported: w.bank.reported.length }, wallet_backend: w.receiver.counters };
}
