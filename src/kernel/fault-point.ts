// Deliberate crash points for the chaos harness (`seigo sim chaos`). A random SIGKILL rarely lands
// in the few microseconds between a provider's answer and the commit that records it, so the
// harness names such points: SEIGO_FAULT_POINTS="operations.after-call=0.05" makes this process
// SIGKILL itself there with that probability (SEIGO_FAULT_SEED seeds the draws). Unset, as in every
// normal run, a fault point does nothing.
import { mulberry32 } from './prng.ts';

function parse(spec: string | undefined): Map<string, number> {
  const points = new Map<string, number>();
  for (const part of (spec ?? '').split(',')) {
    const m = /^\s*([a-z0-9._-]+)\s*=\s*(0(?:\.\d+)?|1(?:\.0+)?)\s*$/i.exec(part);
    if (m) points.set(m[1]!, Number(m[2]));
  }
  return points;
}

const points = parse(process.env.SEIGO_FAULT_POINTS);
const draw = mulberry32(Number(process.env.SEIGO_FAULT_SEED ?? 0) >>> 0);

/** Kills this process with SIGKILL if the harness enabled the point `name` and the draw says so. */
export function faultPoint(name: string): void {
  const p = points.get(name);
  if (p !== undefined && draw() < p) process.kill(process.pid, 'SIGKILL');
}
