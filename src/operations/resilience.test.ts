// The resilience policies under concurrency: hundreds of calls in flight at once through one
// endpoint must not pile listeners onto one shared AbortSignal (MaxListenersExceededWarning).
import { afterEach, describe, expect, it } from 'vitest';
import { Resilience } from './resilience.ts';

const warnings: Error[] = [];
const onWarning = (w: Error) => { warnings.push(w); };
afterEach(() => { process.off('warning', onWarning); });

describe('Resilience under concurrent load', () => {
  it('runs 300 calls at once (plain, idempotent and inquiries) without a MaxListenersExceededWarning', async () => {
    process.on('warning', onWarning);
    const r = new Resilience({
      loaded: { timeoutMs: 60_000, maxAttempts: 2, concurrency: 300, breaker: { consecutiveFailures: 5, halfOpenAfterMs: 30_000 } },
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    let started = 0;
    const call = async (signal: AbortSignal) => { started++; await gate; return signal.aborted; };
    const calls = Array.from({ length: 300 }, (_, i) =>
      i % 3 === 0 ? r.execute('loaded', false, call) : i % 3 === 1 ? r.execute('loaded', true, call) : r.inquire('loaded', call));
    // All 300 in flight at once (the inquiry bulkhead queues what it cannot run), then released.
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBeGreaterThanOrEqual(200);
    release();
    expect(await Promise.all(calls)).toEqual(calls.map(() => false));
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message)).toEqual([]);
  });
});
