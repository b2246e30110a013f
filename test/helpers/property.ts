// Settings for fast-check properties: every property runs at least fast-check's default of 100
// cases (more in a nightly-sized run: SEIGO_PROPERTY_RUNS=1000), and with a seed that is printed
// before it runs and in its failure, so a failure repeats with SEIGO_PROPERTY_SEED=<seed>.
import type { Parameters } from 'fast-check';

/** Cases per property: `base` (never under 100), or SEIGO_PROPERTY_RUNS when that is larger. */
export function propertyRuns(base = 100): number {
  const env = Number(process.env.SEIGO_PROPERTY_RUNS ?? 0);
  return Math.max(100, base, Number.isFinite(env) ? Math.floor(env) : 0);
}

/** The seed of this test run: SEIGO_PROPERTY_SEED, or a fresh one (printed either way). */
export function propertySeed(): number {
  const env = process.env.SEIGO_PROPERTY_SEED;
  if (env !== undefined && /^-?\d+$/.test(env)) return Number(env) | 0;
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
}

/**
 * fast-check parameters for the property `name`: its runs and seed, printed now so that even a run
 * killed by a timeout can be repeated; fast-check's own failure message repeats the seed and path.
 */
export function propertyParams<T = unknown>(name: string, o: { runs?: number } = {}): Parameters<T> {
  const seed = propertySeed();
  const numRuns = propertyRuns(o.runs);
  console.info(`property "${name}": ${numRuns} runs, seed ${seed} (repeat with SEIGO_PROPERTY_SEED=${seed})`);
  return { seed, numRuns };
}
