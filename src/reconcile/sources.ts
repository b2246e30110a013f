// The two sides of each kind of run. The other side (provider history, a Zengin file) becomes
// canonical rows for staging; our side is a SQL relation over the table that holds our record of
// the same money (deposits, bank transfers), with the same columns, so one statement compares them.
import { SeigoError } from '../kernel/errors.ts';
import type { HistoryRow, ProviderAdapter } from '../providers/types.ts';
import type { TransferNotice } from '../providers/zengin/index.ts';
import type { CanonicalStatus } from './classes.ts';
import type { ExternalRow } from './stage.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A payment's status at the provider, in the canonical vocabulary. */
export function providerStatus(kind: string, row: HistoryRow): CanonicalStatus {
  const s = row.status;
  if (kind === 'stripe') {
    if (s === 'succeeded') return 'paid';
    if (s === 'canceled') return 'failed';
    // After a confirm, requires_payment_method with an error is a declined attempt.
    if (s === 'requires_payment_method' && row.raw.last_payment_error) return 'failed';
    return 'pending';
  }
  if (kind === 'komoju') {
    if (s === 'captured') return 'paid';
    if (s === 'refunded') return 'refunded';
    if (s === 'expired' || s === 'cancelled' || s === 'failed') return 'failed';
    return 'pending';
  }
  return s === 'succeeded' || s === 'paid' || s === 'captured' ? 'paid' : s === 'refunded' ? 'refunded' : s === 'failed' || s === 'canceled' || s === 'cancelled' || s === 'expired' ? 'failed' : 'pending';
}

/**
 * Our reference on their row, where we gave them one: Stripe PaymentIntents carry the deposit id
 * in metadata, KOMOJU payments in external_order_num. Rows without one cannot be ours.
 */
export function providerReference(kind: string, row: HistoryRow): string | undefined {
  const raw = row.raw;
  let ref: unknown;
  if (kind === 'stripe') ref = (raw.metadata as Record<string, unknown> | undefined)?.deposit_id;
  else if (kind === 'komoju') ref = raw.external_order_num;
  return typeof ref === 'string' && UUID.test(ref) ? ref.toLowerCase() : undefined;
}

/** The provider's history could not be read (down, refusing, answering garbage): retry later. */
export class ProviderHistoryError extends SeigoError {
  constructor(provider: string, cause: Error) {
    super('provider_unavailable', `reading ${provider}'s history failed: ${cause.message}`, 502, true);
  }
}

export async function* historyRows(adapter: ProviderAdapter, from: Date, to: Date): AsyncGenerator<ExternalRow> {
  const rows = adapter.history!(from, to)[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<HistoryRow>;
    try {
      next = await rows.next();
    } catch (e) {
      throw new ProviderHistoryError(adapter.name, e as Error);
    }
    if (next.done) return;
    const row = next.value;
    const ref = providerReference(adapter.kind, row);
    yield {
      key: ref ?? `external:${row.externalId}`,
      externalId: row.externalId,
      amount: row.amount ?? null,
      currency: row.currency ?? null,
      status: providerStatus(adapter.kind, row),
      at: row.occurredAt,
      raw: { status: row.status, ...(adapter.kind === 'stripe' || adapter.kind === 'komoju' ? { object: row.raw } : {}) },
    };
  }
}

/** Zengin transfer notices: every credited transfer is money that arrived; cancellations are left to an operator. */
export function* zenginRows(transfers: readonly TransferNotice[]): Generator<ExternalRow> {
  for (const t of transfers) {
    if (t.cancelled) continue;
    yield {
      key: t.externalId, externalId: t.externalId, amount: t.amount, currency: 'JPY', status: 'paid', at: `${t.transactionDate}T00:00:00+09:00`,
      raw: {
        externalId: t.externalId,
        account: { accountNumber: t.account.accountNumber, bankCode: t.account.bankCode, branchCode: t.account.branchCode, depositType: t.account.depositType },
        amount: t.amount.toString(), payerName: t.payerName, transactionDate: t.transactionDate,
      },
    };
  }
}

/**
 * Our side as rows of (key, tid, id, amount, currency, status, raw_status, at), `tid` the row's ctid
 * (the match reads a row again by it). `$6`/`$7` are the window
 * widened by the slack, `$5` the provider; `window` reads the rows in the window, `lookup` one row by key (LATERAL, for
 * their rows whose counterpart lies outside the window: a konbini payment captured days after
 * its reservation).
 */
export interface InternalSide {
  type: 'deposit' | 'bank_transfer';
  window: string;
  /** Absent where no index serves a lookup by key. */
  lookup?: (keyExpr: string) => string;
}

// paid_preliminary counts as pending: the provider's record only says paid at the final notice (確報).
const DEPOSIT_STATUS = `CASE WHEN d.status = 'succeeded' THEN 'paid'
  WHEN d.status IN ('failed', 'expired', 'cancelled') THEN 'failed' ELSE 'pending' END`;

export function depositsSide(match: 'reference' | 'external_id'): InternalSide {
  const key = match === 'reference' ? 'd.id::text' : 'd.provider_payment_id';
  const cols = `${key} AS key, d.ctid AS tid, d.id AS id, d.amount, d.currency, ${DEPOSIT_STATUS} AS status, d.status AS raw_status, d.created_at AS at`;
  return {
    type: 'deposit',
    window: `SELECT ${cols} FROM deposits d WHERE d.provider = $5 AND d.created_at >= $6 AND d.created_at < $7${match === 'external_id' ? ' AND d.provider_payment_id IS NOT NULL' : ''}`,
    ...(match === 'reference' ? {
      lookup: (k: string) => `SELECT ${cols} FROM deposits d
        WHERE d.id = CASE WHEN ${k} ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN ${k}::uuid END AND d.provider = $5`,
    } : {}),
  };
}

export const bankTransfersSide: InternalSide = {
  type: 'bank_transfer',
  window: `SELECT b.external_id AS key, b.ctid AS tid, b.external_id AS id, b.amount, b.currency, 'paid'::text AS status, b.status AS raw_status,
      (b.transaction_date::timestamp AT TIME ZONE 'Asia/Tokyo') AS at
    FROM bank_transfers b
    WHERE b.transaction_date >= ($6::timestamptz AT TIME ZONE 'Asia/Tokyo')::date AND b.transaction_date < ($7::timestamptz AT TIME ZONE 'Asia/Tokyo')::date
      -- 取消 records booked by the import are not transfers (zenginRows leaves them out too).
      AND b.status NOT IN ('cancellation', 'unmatched_cancel')`,
  lookup: (k) => `SELECT b.external_id AS key, b.ctid AS tid, b.external_id AS id, b.amount, b.currency, 'paid'::text AS status, b.status AS raw_status,
      (b.transaction_date::timestamp AT TIME ZONE 'Asia/Tokyo') AS at FROM bank_transfers b
    WHERE b.external_id = ${k} AND b.status NOT IN ('cancellation', 'unmatched_cancel')`,
};
