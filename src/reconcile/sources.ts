// The two sides of each kind of run. The other side (provider history, a Zengin file) becomes
// canonical rows for staging; our side is a SQL relation over the table that holds our record of
// the same money (deposits, bank transfers), with the same columns, so one statement compares them.
import { SeigoError } from '../kernel/errors.ts';
import type { HistoryRow, ProviderAdapter } from '../providers/types.ts';
import { accountTypeOf } from '../deposits/index.ts';
import type { TransferNotice, TransferNoticeGroup } from '../providers/zengin/index.ts';
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
        account: {
          accountNumber: t.account.accountNumber, bankCode: t.account.bankCode, branchCode: t.account.branchCode, depositType: t.account.depositType,
        },
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

// What a bank's transfer-notice file covers: per group (one per account: banks send one file per
// account, or one group each), the account its header names and its 勘定日 range. Our side is
// compared only there: a transfer of an account, or of a day, the file does not cover is not
// "missing there". Staged per run (ON COMMIT DROP), as the file's rows are.
export const COVER_TABLE = 'recon_cover';
export const CREATE_COVER = `CREATE TEMP TABLE ${COVER_TABLE} (bank_code text NOT NULL, branch_code text NOT NULL, deposit_type text NOT NULL,
  account_type text NOT NULL, account_number text NOT NULL, from_date date NOT NULL, to_date date NOT NULL) ON COMMIT DROP`;
export const INSERT_COVER = `INSERT INTO ${COVER_TABLE}
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::date[])`;

/** The cover rows of a parsed file, as INSERT_COVER's parameters (one array per column). */
export function coverParams(groups: readonly TransferNoticeGroup[]): string[][] {
  const cols: string[][] = [[], [], [], [], [], [], []];
  for (const { header: h } of groups) {
    const row = [h.bankCode, h.branchCode, h.depositType, accountTypeOf(h.depositType), h.accountNumber, h.accountingFrom, h.accountingTo];
    row.forEach((v, i) => cols[i]!.push(v));
  }
  return cols;
}

const BANK_TRANSFER_COLUMNS = `b.external_id AS key, b.ctid AS tid, b.external_id AS id, b.amount, b.currency, 'paid'::text AS status,
  b.status AS raw_status, (b.transaction_date::timestamp AT TIME ZONE 'Asia/Tokyo') AS at`;

/** Our bank transfers of the accounts and days the staged file covers (COVER_TABLE). */
export const bankTransfersSide: InternalSide = {
  type: 'bank_transfer',
  window: `SELECT ${BANK_TRANSFER_COLUMNS}
    FROM bank_transfers b JOIN ${COVER_TABLE} c ON c.account_number = b.account_number AND c.bank_code = b.bank_code
      AND c.branch_code = b.branch_code AND c.account_type = b.account_type AND b.transaction_date BETWEEN c.from_date AND c.to_date
    WHERE b.transaction_date >= ($6::timestamptz AT TIME ZONE 'Asia/Tokyo')::date AND b.transaction_date < ($7::timestamptz AT TIME ZONE 'Asia/Tokyo')::date
      -- 取消 records booked by the import are not transfers (zenginRows leaves them out too).
      AND b.status NOT IN ('cancellation', 'unmatched_cancel')`,
  lookup: (k) => `SELECT ${BANK_TRANSFER_COLUMNS} FROM bank_transfers b
    WHERE b.external_id = ${k} AND b.status NOT IN ('cancellation', 'unmatched_cancel')`,
};

/**
 * An open break of a Zengin run lies in what the staged file covers: its day, and its account —
 * our transfer's (missing there), or the one the file's id names (zengin:<bank>-<branch>-<type>-<number>:…).
 * A run resolves only such breaks: a file for one account says nothing of the others.
 */
export const BREAK_COVERED = `EXISTS (
  SELECT 1 FROM ${COVER_TABLE} c LEFT JOIN bank_transfers t ON t.external_id = reconcile_breaks.internal_id
  WHERE (reconcile_breaks.occurred_at AT TIME ZONE 'Asia/Tokyo')::date BETWEEN c.from_date AND c.to_date
    AND ((t.bank_code, t.branch_code, t.account_type, t.account_number) = (c.bank_code, c.branch_code, c.account_type, c.account_number)
      OR starts_with(reconcile_breaks.match_key,
        'zengin:' || c.bank_code || '-' || c.branch_code || '-' || c.deposit_type || '-' || c.account_number || ':')))`;
