// The anti-corruption layer: one adapter per provider turns the provider's requests and APIs into
// our canonical terms. Adapters know nothing of our tables.
import type { Result } from '../kernel/errors.ts';

/** What the intake route hands an adapter: the raw bytes exactly as received, and the headers. */
export interface IncomingNotification {
  headers: Readonly<Record<string, string | undefined>>;
  rawBody: Buffer;
  receivedAt: Date;
}

export type VerifyFailure =
  | { code: 'invalid_signature'; message: string }
  | { code: 'unparseable'; message: string };

export interface Verified {
  eventId: string;
  /** The headers worth keeping with the raw body (never the signature itself in logs; the row keeps it for replay). */
  headers: Record<string, string>;
}

/** A provider event in seigo's terms. Handlers are registered by `type`. */
export interface CanonicalEvent {
  type: string;
  entityType?: string;
  entityId?: string;
  occurredAt?: string;
  data: Record<string, unknown>;
  /** Added to the outbox message's attributes (beside provider and source), for subscription filters. */
  attributes?: Record<string, string | number | boolean>;
}

/** What we learn when we ask the provider about one operation whose outcome we do not know. */
export type InquiryResult =
  | { status: 'succeeded'; response: Record<string, unknown> }
  | { status: 'failed'; code: string; message: string; response?: Record<string, unknown> }
  | { status: 'not_found' }
  | { status: 'unknown'; message: string };

export interface OperationRequest {
  id: string;
  kind: string;
  idempotencyKey: string;
  request: Record<string, unknown>;
}

/** The outcome of one outbound call, as the provider's client classifies it. */
export type CallOutcome =
  | { status: 'succeeded'; response: Record<string, unknown> }
  | { status: 'failed'; code: string; message: string; response?: Record<string, unknown>; retryable?: boolean };

export interface HistoryRow {
  externalId: string;
  occurredAt: string;
  amount?: bigint;
  currency?: string;
  status: string;
  raw: Record<string, unknown>;
}

/** A notification we make ourselves, in the provider's own format, for the intake to apply as it would theirs. */
export interface SyntheticNotification {
  /** The provider's event type it carries (what their webhook would have announced). */
  type: string;
  body: Buffer;
}

export interface ProviderAdapter {
  readonly name: string;
  readonly kind: string;
  /** Verifies authenticity and extracts the provider's event id, without trusting anything unverified. */
  verify(req: IncomingNotification): Result<Verified, VerifyFailure>;
  /**
   * For verifiers that must wait (a certificate chain, a remote JWKS): when present the intake awaits
   * this instead of `verify`.
   */
  verifyAsync?(req: IncomingNotification): Promise<Result<Verified, VerifyFailure>>;
  /** The provider's id for this notification, used for dedupe (provider, event id). */
  eventId(req: IncomingNotification): string | undefined;
  /** Turns a stored notification into canonical events; runs in the worker, not in the request. */
  normalize(stored: { headers: Record<string, string>; body: Buffer }): Result<CanonicalEvent[], string>;
  /** Makes one outbound call; throws only on transport failure (the caller classifies timeouts). */
  client?(op: OperationRequest, signal: AbortSignal): Promise<CallOutcome>;
  /** Asks the provider what became of one operation. */
  inquire?(op: OperationRequest, signal: AbortSignal): Promise<InquiryResult>;
  /** The provider's record for reconciliation, paged and streamed. */
  history?(from: Date, to: Date): AsyncIterable<HistoryRow>;
  /**
   * The event the provider would have sent for its payment `object` (as its API returns it) in the
   * state it is in, so that a notice we learnt of by asking (reconciliation, the expiry inquiry) is
   * applied by the code that applies the webhook; undefined when no event of theirs announces that
   * state. The caller names the event id: it is the inbox's dedupe key.
   */
  syntheticNotification?(object: Record<string, unknown>, o: { eventId: string; at: Date }): SyntheticNotification | undefined;
}
