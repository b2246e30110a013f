// The deposit state machine as data (a transition table): the status union,
// the table of allowed edges, and the one way a deposit changes state: a conditional UPDATE
// (`WHERE status = ANY($from)`; 0 rows means someone else moved it first, a normal outcome) that
// records the transition with its cause in the same statement.
//
// Realtime (card): pending → processing → succeeded | failed | unknown, unknown →
// succeeded | failed. Reservation (konbini, Pay-easy; reservation.ts, migration 0011): pending →
// processing → awaiting_payment (reserved) → paid_preliminary (速報) → succeeded (確報); a 速報取消
// sends paid_preliminary back to awaiting_payment; awaiting_payment → expired | cancelled, and a
// payment after expiry still ends in succeeded (it cannot be refused). Paid notices may overtake
// the reservation's own answer, hence the edges from processing / unknown. Bank transfer
// (bank-transfer-deposit.ts, no provider call: the user's virtual account is the instruction):
// pending → awaiting_payment → succeeded (a transfer of its amount arrived) | expired; a transfer
// after expiry is booked on its own (importTransfer), the deposit stays expired.
import type { Queryable } from '../kernel/db.ts';

export type DepositMethod = 'card' | 'konbini' | 'payeasy' | 'bank_transfer';
export const DEPOSIT_METHODS: readonly DepositMethod[] = ['card', 'konbini', 'payeasy', 'bank_transfer'];

export type DepositStatus =
  | 'pending' | 'processing' | 'succeeded' | 'failed' | 'unknown' | 'awaiting_payment' | 'paid_preliminary' | 'expired' | 'cancelled';
export const DEPOSIT_STATUSES: readonly DepositStatus[] = [
  'pending', 'processing', 'succeeded', 'failed', 'unknown', 'awaiting_payment', 'paid_preliminary', 'expired', 'cancelled',
];

export const DEPOSIT_TRANSITIONS: Readonly<Record<DepositStatus, readonly DepositStatus[]>> = {
  // Recorded in tx1; `failed` only if the request could not even be recorded as an operation;
  // awaiting_payment at once for a bank transfer (nothing to ask a provider).
  pending: ['processing', 'failed', 'awaiting_payment'],
  // The charge is being made (or was recorded and the process died: the janitor sends it).
  processing: ['succeeded', 'failed', 'unknown', 'awaiting_payment', 'paid_preliminary', 'expired', 'cancelled'],
  // No answer on the return path: resolved by inquiry (janitor) or a late provider webhook.
  unknown: ['succeeded', 'failed', 'awaiting_payment', 'paid_preliminary', 'expired', 'cancelled'],
  // Reservations: waiting for the customer's cash.
  awaiting_payment: ['paid_preliminary', 'succeeded', 'expired', 'cancelled'],
  // 速報 received: the 確報 makes it succeeded, a 速報取消 sends it back to waiting.
  paid_preliminary: ['succeeded', 'awaiting_payment', 'expired', 'cancelled'],
  // Not final: money paid after expiry (or a cancellation) cannot be refused.
  expired: ['succeeded'],
  cancelled: ['succeeded'],
  succeeded: [],
  failed: [],
};

/**
 * Statuses in which money may still arrive: they count toward the user's limit at the pre-check,
 * unless the deposit already counts there through an incoming ledger hold (`hold_id`) or a posting
 * (`ledger_transaction_id`).
 */
export const IN_FLIGHT_STATUSES: readonly DepositStatus[] = ['pending', 'processing', 'unknown', 'awaiting_payment', 'paid_preliminary'];
export const isFinal = (s: DepositStatus): boolean => DEPOSIT_TRANSITIONS[s].length === 0;
export const canTransition = (from: DepositStatus, to: DepositStatus): boolean => DEPOSIT_TRANSITIONS[from].includes(to);

export interface DepositRow {
  id: string; user_id: string; method: DepositMethod; amount: string; currency: string; status: DepositStatus; provider: string;
  client_key: string | null; operation_id: string | null; provider_payment_id: string | null;
  failure_code: string | null; failure_message: string | null;
  credited: string; escrowed: string; suspended: string; ledger_transaction_id: string | null;
  created_at: Date; updated_at: Date;
  hold_id: string | null; payment_deadline: Date | null; payment_instructions: Record<string, string> | null;
  credited_at_notice: 'preliminary' | 'final' | null; credit_attempt: number; early_preliminary_cancels: number;
  paid_after_deadline: boolean; shortfall: string;
}

export interface Deposit {
  id: string;
  userId: string;
  method: DepositMethod;
  amount: bigint;
  currency: string;
  status: DepositStatus;
  provider: string;
  clientKey: string | null;
  operationId: string | null;
  providerPaymentId: string | null;
  failureCode: string | null;
  failureMessage: string | null;
  credited: bigint;
  escrowed: bigint;
  suspended: bigint;
  ledgerTransactionId: string | null;
  createdAt: Date;
  updatedAt: Date;
  // Reservations (konbini, Pay-easy) and bank transfers; null / 0 / false for other methods.
  /** The incoming ledger hold while the reservation awaits payment (counts toward the limit). */
  holdId: string | null;
  paymentDeadline: Date | null;
  /** Payment number / receipt codes for the customer; for a bank transfer, the account to transfer to. */
  paymentInstructions: Record<string, string> | null;
  /** Which paid notice credited the wallet; null while not credited. */
  creditedAtNotice: 'preliminary' | 'final' | null;
  creditAttempt: number;
  earlyPreliminaryCancels: number;
  /** The final notice (a bank transfer: the transfer) came after the payment deadline. */
  paidAfterDeadline: boolean;
  /** How far a reversed preliminary credit took the wallet below zero. */
  shortfall: bigint;
}

export const DEPOSIT_COLUMNS = `id, user_id, method, amount::text AS amount, currency, status, provider, client_key, operation_id,
  provider_payment_id, failure_code, failure_message, credited::text AS credited, escrowed::text AS escrowed,
  suspended::text AS suspended, ledger_transaction_id, created_at, updated_at, hold_id, payment_deadline, payment_instructions,
  credited_at_notice, credit_attempt, early_preliminary_cancels, paid_after_deadline, shortfall::text AS shortfall`;

export const toDeposit = (r: DepositRow): Deposit => ({
  id: r.id, userId: r.user_id, method: r.method, amount: BigInt(r.amount), currency: r.currency, status: r.status, provider: r.provider,
  clientKey: r.client_key, operationId: r.operation_id, providerPaymentId: r.provider_payment_id,
  failureCode: r.failure_code, failureMessage: r.failure_message,
  credited: BigInt(r.credited), escrowed: BigInt(r.escrowed), suspended: BigInt(r.suspended),
  ledgerTransactionId: r.ledger_transaction_id, createdAt: r.created_at, updatedAt: r.updated_at,
  holdId: r.hold_id, paymentDeadline: r.payment_deadline, paymentInstructions: r.payment_instructions,
  creditedAtNotice: r.credited_at_notice, creditAttempt: r.credit_attempt, earlyPreliminaryCancels: r.early_preliminary_cancels,
  paidAfterDeadline: r.paid_after_deadline, shortfall: BigInt(r.shortfall),
});

/** A deposit in messages and API answers: snake_case, money as decimal strings. */
export function depositMessage(d: Deposit): Record<string, string | boolean | Record<string, string> | null> {
  return {
    id: d.id, user_id: d.userId, method: d.method, amount: d.amount.toString(), currency: d.currency, status: d.status,
    provider: d.provider, operation_id: d.operationId, provider_payment_id: d.providerPaymentId,
    failure_code: d.failureCode, failure_message: d.failureMessage,
    credited: d.credited.toString(), escrowed: d.escrowed.toString(), suspended: d.suspended.toString(),
    ledger_transaction_id: d.ledgerTransactionId, created_at: d.createdAt.toISOString(), updated_at: d.updatedAt.toISOString(),
    payment_deadline: d.paymentDeadline?.toISOString() ?? null, payment_instructions: d.paymentInstructions,
    credited_at_notice: d.creditedAtNotice, paid_after_deadline: d.paidAfterDeadline, shortfall: d.shortfall.toString(),
  };
}

/** Columns a transition may set along with the status (null/undefined: leave as is). */
export interface DepositChange {
  operationId?: string | undefined;
  providerPaymentId?: string | undefined;
  failureCode?: string | undefined;
  failureMessage?: string | undefined;
  credited?: bigint | undefined;
  escrowed?: bigint | undefined;
  suspended?: bigint | undefined;
  ledgerTransactionId?: string | undefined;
}

// The row is locked in `cur` so the status test is re-checked after waiting for a concurrent
// writer (READ COMMITTED re-evaluates the locked row); `from_status` comes from that locked row.
const TRANSITION = `
WITH cur AS (
  SELECT id, status FROM deposits WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE
), upd AS (
  UPDATE deposits d SET status = $3, updated_at = now(),
    operation_id = COALESCE($5::uuid, d.operation_id),
    provider_payment_id = COALESCE($6, d.provider_payment_id),
    failure_code = COALESCE($7, d.failure_code),
    failure_message = COALESCE($8, d.failure_message),
    credited = COALESCE($9::bigint, d.credited),
    escrowed = COALESCE($10::bigint, d.escrowed),
    suspended = COALESCE($11::bigint, d.suspended),
    ledger_transaction_id = COALESCE($12::uuid, d.ledger_transaction_id)
  FROM cur WHERE d.id = cur.id
  RETURNING d.*, cur.status AS from_status
), ev AS (
  INSERT INTO deposit_events (deposit_id, from_status, to_status, cause) SELECT id, from_status, status, $4 FROM upd
)
SELECT ${DEPOSIT_COLUMNS} FROM upd`;

/**
 * Moves deposit `id` from one of `from` to `to`, with `cause` recorded. Returns the deposit as
 * moved, or null when it was in none of `from` (someone else moved it first).
 */
export async function transitionDeposit(
  q: Queryable, id: string, from: DepositStatus | readonly DepositStatus[], to: DepositStatus, cause: string, change: DepositChange = {},
): Promise<Deposit | null> {
  const froms = typeof from === 'string' ? [from] : [...from];
  for (const f of froms) if (!canTransition(f, to)) throw new Error(`deposit transition ${f} → ${to} is not allowed`);
  const r = await q.query<DepositRow>({
    name: 'deposits_transition', text: TRANSITION,
    values: [
      id, froms, to, cause, change.operationId ?? null, change.providerPaymentId ?? null, change.failureCode ?? null,
      change.failureMessage ?? null, change.credited?.toString() ?? null, change.escrowed?.toString() ?? null,
      change.suspended?.toString() ?? null, change.ledgerTransactionId ?? null,
    ],
  });
  return r.rows[0] ? toDeposit(r.rows[0]) : null;
}

/**
 * What this user's deposits still in flight may bring, beyond what already counts at the wallet
 * (postings, incoming holds): the in-flight part of the limit pre-check. Call under the wallet lock.
 */
export async function inFlightSum(q: Queryable, userId: string, currency: string): Promise<bigint> {
  const r = await q.query<{ sum: string }>(
    `SELECT coalesce(sum(amount), 0)::text AS sum FROM deposits
     WHERE user_id = $1 AND currency = $2 AND status = ANY($3::text[]) AND hold_id IS NULL AND ledger_transaction_id IS NULL`,
    [userId, currency, IN_FLIGHT_STATUSES]);
  return BigInt(r.rows[0]!.sum);
}
