// The words of reconciliation: what a break is, and the statuses both sides are compared in.
export const BREAK_CLASSES = ['missing_here', 'missing_there', 'amount_mismatch', 'status_mismatch', 'duplicate_there'] as const;
export type BreakClass = (typeof BREAK_CLASSES)[number];

/** Both sides' statuses in one vocabulary: money arrived, may still arrive, will not, went back. */
export const CANONICAL_STATUSES = ['paid', 'pending', 'failed', 'refunded'] as const;
export type CanonicalStatus = (typeof CANONICAL_STATUSES)[number];

export type RunSource = 'provider' | 'csv' | 'zengin' | 'deliveries';

export type RunCounts = Record<'matched' | BreakClass, number>;
export const emptyCounts = (): RunCounts => ({ matched: 0, missing_here: 0, missing_there: 0, amount_mismatch: 0, status_mismatch: 0, duplicate_there: 0 });

export interface RepairCounts { notifications: number; inquiries: number; imports: number; cases: number }
