// Retry schedules: durations with full jitter, shared by inbox, deliveries and the operation janitor.
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "5s", "30min", "2h", "250ms" or a number of milliseconds. */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)$/.exec(v.trim());
  if (!m) throw new Error(`not a duration: ${JSON.stringify(v)} (use e.g. "5s", "30min", "2h")`);
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

/** Svix-style default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const DEFAULT_DELIVERY_SCHEDULE = ['5s', '5min', '30min', '2h', '5h', '10h', '10h'];

/**
 * Delay before the attempt after `attempts` failures, or null when the schedule is exhausted.
 * Jitter spreads retries by up to ±20% so that a burst of failures does not come back as a burst.
 */
export function nextDelay(scheduleMs: readonly number[], attempts: number, random = Math.random): number | null {
  const base = scheduleMs[attempts - 1];
  if (base === undefined) return null;
  return Math.round(base * (0.8 + 0.4 * random()));
}
