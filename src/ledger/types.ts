// The ledger's vocabulary: accounts, balances, postings, holds and the expected refusals.
// Money is bigint minor units (JPY has none: ¥1 = 1n); in SQL it is read as text and converted.

export type AccountKind =
  | 'wallet' | 'clearing' | 'escrow' | 'suspense' | 'refunds_payable' | 'fees' | 'revenue' | 'deferred_revenue'
  // Points (src/points), in their own asset: a user's confirmed and provisional points, the platform's issuing account.
  | 'points' | 'points_provisional' | 'points_issued';
export const ACCOUNT_KINDS: readonly AccountKind[] = [
  'wallet', 'clearing', 'escrow', 'suspense', 'refunds_payable', 'fees', 'revenue', 'deferred_revenue', 'points', 'points_provisional', 'points_issued',
];

export const DEFAULT_CURRENCY = 'JPY';
/** The balance limit when no per-user override exists (¥1,000,000, as for prepaid wallets under the Payment Services Act). */
export const DEFAULT_BALANCE_LIMIT = 1_000_000n;

export interface Account {
  id: string;
  kind: AccountKind;
  /** A user id for wallets (and their escrow / suspense), a provider name for clearing, '' for platform accounts. */
  owner: string;
  currency: string;
  /** Balance rows; more than one only for hot platform accounts (see 0006_ledger.sql). */
  shards: number;
  createdAt: Date;
}

export interface Balance {
  accountId: string;
  currency: string;
  posted: bigint;
  /** Incoming holds: reserved deposits waiting for payment; they count toward the limit. */
  pendingIn: bigint;
  /** Outgoing holds: already promised away. */
  pendingOut: bigint;
  /** posted − pendingOut */
  available: bigint;
}

export interface EntryInput {
  accountId: string;
  /** Positive credits the account, negative debits it. */
  amount: bigint;
}

export interface PostingInput {
  idempotencyKey: string;
  entries: readonly EntryInput[];
  kind?: string | undefined;
  description?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
  reverses?: string | undefined;
}

export interface LimitPolicy {
  /** The limit for wallets without a per-user override; DEFAULT_BALANCE_LIMIT if not given. */
  defaultLimit?: bigint | undefined;
}

export interface PostOptions extends LimitPolicy {
  /**
   * Check wallet limits, funds and restrictions (default true). Only corrections made by an
   * operator turn this off; balance and immutability rules hold regardless.
   */
  enforce?: boolean | undefined;
}

export interface Posted {
  transactionId: string;
  /** The idempotency key had been used: nothing new was posted. */
  duplicate: boolean;
}

export interface LedgerTransaction {
  id: string;
  idempotencyKey: string;
  kind: string;
  description: string | null;
  metadata: Record<string, unknown>;
  reverses: string | null;
  createdAt: Date;
  entries: { id: string; accountId: string; currency: string; amount: bigint }[];
}

/** Expected refusals, returned as values. */
export type LedgerError =
  | { code: 'balance_limit_exceeded'; accountId: string; headroom: bigint }
  | { code: 'insufficient_funds'; accountId: string; available: bigint }
  | { code: 'account_restricted'; accountId: string };

export type HoldStatus = 'active' | 'captured' | 'released' | 'expired';
export type HoldDirection = 'in' | 'out';

export interface Hold {
  id: string;
  idempotencyKey: string;
  accountId: string;
  counterAccountId: string;
  direction: HoldDirection;
  currency: string;
  amount: bigint;
  status: HoldStatus;
  expiresAt: Date | null;
  transactionId: string | null;
  createdAt: Date;
  closedAt: Date | null;
}

export type HoldError =
  | { code: 'hold_not_found'; holdId: string }
  | { code: 'hold_not_active'; holdId: string; status: HoldStatus };
