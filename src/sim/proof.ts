// The two end-to-end proofs, one piece of code: `seigo sim deposits` (N deposits against the
// simulators with provider faults) and `seigo sim chaos` (the same driver for a duration, two api and
// two worker processes, random SIGKILLs, and a deliberate crash point between a provider call and
// the commit that records it). Both stop the faults, wait until seigo is quiet, and report figures
// computed from the database and the simulators' records; `ok` is false when an invariant broke.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '../kernel/prng.ts';
import { driveDeposits, planDeposits, setUpUsers, type DriveStats, type Plan } from './drive.ts';
import { computeFigures, violations, waitUntilQuiet, type Figures } from './verify.ts';
import { startWorld, type World } from './world.ts';

export interface ProofOptions {
  seed: number;
  faultRate: number;
  /** The least deposits per minute of driving, for each method driven, below which the run fails (default MIN_PER_MINUTE). */
  minPerMinute?: number | undefined;
  /** An injected fault that makes the driver do too little: each lane waits this long before each deposit. */
  throttleMs?: number | undefined;
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
/**
 * The least work a run must do to pass: deposits completed per minute of driving, for each method.
 * `sim deposits` on a loaded 2-core machine did 5–12 times this (README, "Proving it end to end"); a
 * run that stalls (keys held by dead processes, a wedged worker) does less, and fails saying so.
 */
export const MIN_PER_MINUTE = 6;
/** Share of the transfers the bank reports that it later withdraws (取消), at most. */
const CANCEL_RATE = 0.2;

export interface Workload {
  /** Minutes of driving: from the first request until the last was answered (or the run's time was up). */
  minutes: number;
  /** Per method driven: deposits completed (a final state; for bank transfers, every transfer booked) and per minute. */
  per_method: Record<string, { completed: number; per_minute: number }>;
  min: number;
  ok: boolean;
  /** Why not, when not ok. */
  reason?: string;
}

// Completed: a deposit in a final state (paid, failed, expired, cancelled), or a bank transfer
// booked on its own (one nobody announced; an announced one completes its deposit).
const COMPLETED = `
SELECT method, count(*)::int AS n FROM deposits
WHERE created_at >= $1 AND status IN ('succeeded', 'failed', 'expired', 'cancelled') GROUP BY method
UNION ALL
SELECT 'bank_transfer', count(*)::int FROM bank_transfers
WHERE received_at >= $1 AND deposit_id IS NULL AND cancels IS NULL AND status NOT IN ('cancellation', 'unmatched_cancel')`;

/** The run's workload per method against `min` per minute; a method the plan never drew is not judged. */
export async function measureWorkload(w: World, since: Date, driveMs: number, methods: readonly string[], min: number): Promise<Workload> {
  const r = await w.pool.query<{ method: string; n: number }>(COMPLETED, [since]);
  const minutes = Math.max(driveMs, 1) / 60_000;
  const per_method: Workload['per_method'] = {};
  for (const m of methods) {
    const completed = r.rows.filter((x) => x.method === m).reduce((a, x) => a + x.n, 0);
    per_method[m] = { completed, per_minute: Math.round((completed / minutes) * 10) / 10 };
  }
  const short = Object.entries(per_method).filter(([, x]) => x.per_minute < min);
  return {
    minutes: Math.round(minutes * 100) / 100, per_method, min, ok: short.length === 0,
    ...(short.length > 0 ? { reason: `too little work: ${short.map(([m, x]) => `${m} ${x.per_minute}/min`).join(', ')} (at least ${min}/min per method)` } : {}),
  };
}

async function settleAndCheck(w: World, o: ProofOptions, since: Date, progress: (m: string) => void) {
  progress('faults off; waiting until seigo is quiet');
  w.setProviderFaults(0);
  const first = await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000);
  progress('reconciling with Stripe, KOMOJU, the bank and the wallet backend');
  const reconcile = await reconcileAll(w, since);
  // Repairs go through the normal paths (intake, the janitor): let them finish too.
  const settled = await waitUntilQuiet(w, o.quiesceTimeoutMs ?? 180_000);
  const figures = await computeFigures(w);
  // What was still under way when a wait gave up: the counts that `unsettled` in the figures details.
  const backlog = !first.quiet ? first.backlog : !settled.quiet ? settled.backlog : undefined;
  return { settled: { quiet: first.quiet && settled.quiet, waitedMs: first.waitedMs + settled.waitedMs, backlog }, figures, reconcile };
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

function result(seed: number, stats: DriveStats, s: Awaited<ReturnType<typeof settleAndCheck>>, workload: Workload, extra: Record<string, unknown>): ProofResult {
  const v = violations(s.figures, s.settled.quiet);
  for (const [name, run] of Object.entries(s.reconcile)) {
    if ((run as { status?: unknown }).status !== 'succeeded') v.push(`the ${name} reconciliation run did not succeed`);
  }
  if (!workload.ok) v.push(workload.reason!);
  return {
    seed, requested: stats.requested, workload, ...s.figures, ok: v.length === 0, violations: v,
    reconcile: s.reconcile, quiesced: s.settled.quiet, quiesce_ms: s.settled.waitedMs, ...(s.settled.backlog ? { backlog: s.settled.backlog } : {}),
    drive: stats, ...extra,
  };
}

/** The methods a plan drew: the ones whose workload is judged. */
const methodsOf = (plan: Plan) => [...new Set(plan.deposits.map((d) => d.method))].sort();

/** Storm settings: every provider notification 1…STORM_COPIES times, spread over STORM_SPREAD_MS. */
export const STORM_COPIES = 6;
const STORM_SPREAD_MS = 1_500;

/**
 * `seigo sim deposits`: N deposits across all methods, one api and one worker process, provider
 * faults at `faultRate`. With `storm`, every provider notification (Stripe's and KOMOJU's webhooks,
 * the bank's files) goes 1–6 times, concurrently and out of order, and more lanes drive at once.
 */
export async function runDepositsProof(o: ProofOptions & { count: number; storm?: boolean | undefined }): Promise<ProofResult> {
  const progress = o.progress ?? (() => undefined);
  const w = await startWorld({ seed: o.seed, apis: 1, workers: 1, databaseUrl: o.databaseUrl, defaultLimit: DEFAULT_LIMIT, progress });
  let ok = false;
  try {
    const started = new Date();
    const plan = planDeposits({ seed: o.seed, count: o.count, users: Math.max(6, Math.ceil(o.count / 5)), faultRate: o.faultRate });
    await setUpUsers(w, plan);
    w.setProviderFaults(o.faultRate, o.storm ? { copies: STORM_COPIES, spreadMs: STORM_SPREAD_MS } : undefined);
    progress(`driving ${o.count} deposits with faults at ${o.faultRate}${o.storm ? ', every notification 1–6 times' : ''}`);
    const stats = await driveDeposits(w, plan, {
      concurrency: o.storm ? 32 : 4, faultRate: o.faultRate, cancelRate: Math.min(CANCEL_RATE, o.faultRate),
      stormCopies: o.storm ? STORM_COPIES : 0, throttleMs: o.throttleMs,
    });
    const workload = await measureWorkload(w, started, stats.laneMs, methodsOf(plan), o.minPerMinute ?? MIN_PER_MINUTE);
    const s = await settleAndCheck(w, o, started, progress);
    const r = result(o.seed, stats, s, workload, { storm: o.storm === true, simulators: simulatorCounters(w) });
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
    const stats = await driveDeposits(w, plan, {
      concurrency: 8, faultRate: o.faultRate, untilMs: until, cancelRate: Math.min(CANCEL_RATE, o.faultRate), throttleMs: o.throttleMs,
    });
    await killer;
    // Judged over the run's duration: what its requests completed, however long the last ones took.
    const workload = await measureWorkload(w, started, o.durationS * 1000, methodsOf(plan), o.minPerMinute ?? MIN_PER_MINUTE);
    progress('kills over; waiting for every process to be back');
    await w.cluster.allUp();
    const s = await settleAndCheck(w, o, started, progress);
    const r = result(o.seed, stats, s, workload, {
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
  return {
    stripe: w.stripe.counters, komoju: w.komoju.counters, bank: { reported: w.bank.reported.length, cancellations: w.bank.cancellations.length },
    wallet_backend: w.receiver.counters,
  };
}
