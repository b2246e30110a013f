// One resilience policy per endpoint (provider): bulkhead, circuit breaker and timeout from
// cockatiel, with retries only for calls the caller marked idempotent.
import {
  BrokenCircuitError, BulkheadRejectedError, CircuitState, ConsecutiveBreaker, ExponentialBackoff, TaskCancelledError, TimeoutStrategy,
  bulkhead, circuitBreaker, handleWhen, retry, timeout, wrap, type IPolicy,
} from 'cockatiel';
import type { Config } from '../kernel/config.ts';

type EndpointConfig = Config['endpoints'][string];
const DEFAULT_ENDPOINT: EndpointConfig = { timeoutMs: 10_000, maxAttempts: 3, concurrency: 16, breaker: { consecutiveFailures: 5, halfOpenAfterMs: 30_000 } };

/** A call that we know never reached the provider: safe to retry even when not idempotent. */
export class NotSentError extends Error {
  constructor(readonly reason: 'circuit_open' | 'bulkhead_full' | 'connection_refused' | 'egress_refused', message: string) {
    super(message);
    this.name = 'NotSentError';
  }
}

/** Transport errors that happen before a single byte of the request left. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'SEIGO_EGRESS_REFUSED']);

export function classifyCallError(e: unknown): { kind: 'not_sent'; reason: string } | { kind: 'unknown'; reason: string } {
  if (e instanceof NotSentError) return { kind: 'not_sent', reason: e.reason };
  if (e instanceof BrokenCircuitError) return { kind: 'not_sent', reason: 'circuit_open' };
  if (e instanceof BulkheadRejectedError) return { kind: 'not_sent', reason: 'bulkhead_full' };
  if (e instanceof TaskCancelledError) return { kind: 'unknown', reason: 'timeout' };
  const err = e as { code?: string; cause?: { code?: string }; name?: string; message?: string };
  const code = err.code ?? err.cause?.code;
  if (code === 'egress_refused') return { kind: 'not_sent', reason: 'egress_refused' };
  // The same reason a NotSentError gives, so the breaker counts a refused connection however it arrives.
  if (code === 'ECONNREFUSED') return { kind: 'not_sent', reason: 'connection_refused' };
  if (code && NOT_SENT_CODES.has(code)) return { kind: 'not_sent', reason: code.toLowerCase() };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return { kind: 'unknown', reason: 'timeout' };
  return { kind: 'unknown', reason: (err.message ?? String(e)).slice(0, 200) };
}

interface EndpointPolicies { plain: IPolicy; idempotent: IPolicy; inquiry: IPolicy; leaseMs: number; breaker: BreakerState }

/** A circuit breaker's state as this process holds it (health reports it; the breaker_open alert reads it). */
export interface BreakerState { endpoint: string; state: 'closed' | 'open' | 'half_open' | 'isolated'; changedAt: Date }

const STATE_NAMES: Record<CircuitState, BreakerState['state']> = {
  [CircuitState.Closed]: 'closed', [CircuitState.Open]: 'open', [CircuitState.HalfOpen]: 'half_open', [CircuitState.Isolated]: 'isolated',
};

export class Resilience {
  private readonly endpoints = new Map<string, EndpointPolicies>();
  constructor(private readonly config: Record<string, EndpointConfig> = {}) {}

  private policies(endpoint: string): EndpointPolicies {
    let p = this.endpoints.get(endpoint);
    if (!p) {
      const c = this.config[endpoint] ?? DEFAULT_ENDPOINT;
      const breaker = circuitBreaker(handleWhen((e) => {
        const k = classifyCallError(e);
        return k.kind === 'unknown' || k.reason === 'connection_refused';
      }), {
        halfOpenAfter: c.breaker.halfOpenAfterMs,
        breaker: new ConsecutiveBreaker(c.breaker.consecutiveFailures),
      });
      const state: BreakerState = { endpoint, state: 'closed', changedAt: new Date() };
      breaker.onStateChange((to) => { state.state = STATE_NAMES[to]; state.changedAt = new Date(); });
      const limit = bulkhead(c.concurrency, c.concurrency * 4);
      const time = timeout(c.timeoutMs, TimeoutStrategy.Aggressive);
      // Only failures that certainly did not reach the provider are retried for non-idempotent calls.
      const retryNotSent = retry(handleWhen((e) => classifyCallError(e).kind === 'not_sent' && !(e instanceof BrokenCircuitError) && !(e instanceof BulkheadRejectedError)), {
        maxAttempts: c.maxAttempts - 1, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }),
      });
      const retryAll = retry(handleWhen((e) => !(e instanceof BrokenCircuitError) && !(e instanceof BulkheadRejectedError)), {
        maxAttempts: c.maxAttempts - 1, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }),
      });
      // Inquiries ask about calls already made: an open breaker (the provider failing calls) must not
      // stop us from learning what became of them, so they get a timeout and a bulkhead only.
      const inquiryLimit = bulkhead(Math.max(1, Math.ceil(c.concurrency / 2)), c.concurrency * 4);
      p = {
        plain: wrap(retryNotSent, limit, breaker, time),
        idempotent: wrap(retryAll, limit, breaker, time),
        inquiry: wrap(inquiryLimit, timeout(c.timeoutMs, TimeoutStrategy.Aggressive)),
        // Every attempt's timeout plus the backoff between them, with room to record the result.
        leaseMs: c.maxAttempts * c.timeoutMs + (c.maxAttempts - 1) * 2_000 + 30_000,
        breaker: state,
      };
      this.endpoints.set(endpoint, p);
    }
    return p;
  }

  // Each call gets a signal of its own: without one, cockatiel derives every call's timeout signal
  // from one shared never-aborted signal, and each call in flight adds an abort listener to it (a
  // MaxListenersExceededWarning past ten concurrent calls, and a listener list as long as the load).
  execute<T>(endpoint: string, idempotent: boolean, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const p = this.policies(endpoint);
    return (idempotent ? p.idempotent : p.plain).execute(({ signal }) => fn(signal), new AbortController().signal) as Promise<T>;
  }

  inquire<T>(endpoint: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return this.policies(endpoint).inquiry.execute(({ signal }) => fn(signal), new AbortController().signal) as Promise<T>;
  }

  /** The breakers of every endpoint called so far in this process. */
  breakers(): BreakerState[] {
    return [...this.endpoints.values()].map((p) => ({ ...p.breaker }));
  }

  /** How long a call to this endpoint can take at most, retries included: the lease on a `sending` operation. */
  leaseMs(endpoint: string): number {
    return this.policies(endpoint).leaseMs;
  }
}
