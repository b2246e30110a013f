// Refunds of escrowed money: a paid notice that cannot be refused is booked, and only the amount over
// the limit is set aside and refunded by a separate process (超えた金額のみを退避し、別処理で返金). A deposit over the limit (or paid after
// expiry, or a bank transfer beyond the limit) leaves its excess in the user's escrow account; this
// module pays it back to the bank account the user registered through the wallet's backend.
//
//   start (one transaction, per escrow source): the refund row `pending`, its outbound operation
//        recorded, escrow → refunds payable posted, `deposit.refund_started` published.
//   ---  the payout request, outside any transaction (operations.execute; unknown → the janitor's inquiry).
//   result (the operation's final transition, in ITS transaction): accepted → `sent`; refused →
//        `failed`: refunds payable → escrow again, `deposit.refund_failed`, a case.
//   settle (the sweep asks the provider about `sent` payouts): completed → `succeeded`: refunds payable
//        cleared against the provider's clearing account with the fee, `deposit.refund_succeeded`;
//        rejected (a wrong account) → `failed` as above.
//
// Payout routes. A KOMOJU payment (konbini, Pay-easy) is refunded with KOMOJU's refund request on
// that payment (POST /api/v1/payments/:id/refund_request: KOMOJU transfers the money to the
// customer's bank account by hand, later, and may reject it). Money that came from a Zengin
// transfer-notice file (or a card, whose escrow this module treats alike) has no KOMOJU payment to
// refund: it goes out as a KOMOJU disbursement (POST /api/v1/disbursements, a transfer from the
// merchant's KOMOJU balance to any Japanese account, keyed by our refund id as external_id). The
// ledger books that payout against KOMOJU's clearing account, so the bank's clearing account keeps
// the deposit and treasury evens the two out as it does for every settlement.
//
// Fee. The provider charges per payout (deposits.refundFee.amount). The user gets back "the amount
// that exceeded", so by default the platform bears the fee: the user receives the whole
// escrow and the fee is the platform's expense. With payer 'user' it is deducted from the payout
// and booked as recovered (revenue); escrow smaller than the fee is then not refunded but reported.
//
// Started by the sweep (a periodic job) for every refundable source, and at once when the user
// registers an account. No account: the escrow stays and is reported once (a case,
// `escrow_no_refund_account`); registering one later starts every refund that waited for it.
import type pg from 'pg';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { BadRequestError } from '../kernel/errors.ts';
import { isUuid, uuidv7 } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import { ensureAccounts, post } from '../ledger/index.ts';
import type { Operation, Operations } from '../operations/index.ts';
import { publish } from '../outbox/publish.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import { reportCase, resolveReportedCases } from './report-case.ts';

export type RefundStatus = 'pending' | 'sent' | 'succeeded' | 'failed';
export const REFUND_STATUSES: readonly [RefundStatus, ...RefundStatus[]] = ['pending', 'sent', 'succeeded', 'failed'];
export const REFUND_TRANSITIONS: Readonly<Record<RefundStatus, readonly RefundStatus[]>> = {
  pending: ['sent', 'succeeded', 'failed'],
  sent: ['succeeded', 'failed'],
  succeeded: [],
  failed: [],
};
export type RefundRoute = 'komoju_refund_request' | 'komoju_disbursement';
export type FeePayer = 'platform' | 'user';
export type BankAccountType = 'ordinary' | 'checking' | 'savings';
export const BANK_ACCOUNT_TYPES: readonly BankAccountType[] = ['ordinary', 'checking', 'savings'];

export interface RefundAccountInput {
  userId: string;
  bankCode: string;
  bankName?: string | undefined;
  branchCode: string;
  branchName?: string | undefined;
  accountType: BankAccountType;
  accountNumber: string;
  /** 口座名義 in half-width katakana, as the bank holds it. */
  holderKana: string;
}

export interface RefundAccount extends Required<Omit<RefundAccountInput, 'bankName' | 'branchName'>> {
  bankName: string | null;
  branchName: string | null;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface Refund {
  id: string;
  userId: string;
  sourceType: 'deposit' | 'bank_transfer';
  sourceId: string;
  route: RefundRoute;
  provider: string;
  currency: string;
  amount: bigint;
  payoutAmount: bigint;
  fee: bigint;
  feePayer: FeePayer;
  status: RefundStatus;
  operationId: string | null;
  providerRefundId: string | null;
  failureCode: string | null;
  failureMessage: string | null;
  createdAt: Date;
  updatedAt: Date;
}

interface RefundRow {
  id: string; user_id: string; source_type: 'deposit' | 'bank_transfer'; source_id: string; route: RefundRoute; provider: string; currency: string;
  amount: string; payout_amount: string; fee: string; fee_payer: FeePayer; status: RefundStatus; account_version: number; operation_id: string | null;
  provider_refund_id: string | null; failure_code: string | null; failure_message: string | null; created_at: Date; updated_at: Date;
}
const REFUND_COLUMNS = `id, user_id, source_type, source_id, route, provider, currency, amount::text AS amount, payout_amount::text AS payout_amount,
  fee::text AS fee, fee_payer, status, account_version, operation_id, provider_refund_id, failure_code, failure_message, created_at, updated_at`;
/** The fee a provider's payout answer reports (minor units, tax included), if it reports one. */
function reportedFee(response: Record<string, unknown>): bigint | undefined {
  return typeof response.fee === 'string' && /^\d{1,15}$/.test(response.fee) ? BigInt(response.fee) : undefined;
}
// Newest first; $2 (the last id of the previous page) pages on by keyset.
const LIST_USER_REFUNDS = `SELECT ${REFUND_COLUMNS} FROM deposit_refunds
  WHERE user_id = $1 AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM deposit_refunds WHERE id = $2))
  ORDER BY created_at DESC, id DESC LIMIT $3`;
const LIST_ALL_REFUNDS = `SELECT ${REFUND_COLUMNS} FROM deposit_refunds
  WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM deposit_refunds WHERE id = $2))
  ORDER BY created_at DESC, id DESC LIMIT $3`;

const toRefund = (r: RefundRow): Refund => ({
  id: r.id, userId: r.user_id, sourceType: r.source_type, sourceId: r.source_id, route: r.route, provider: r.provider, currency: r.currency,
  amount: BigInt(r.amount), payoutAmount: BigInt(r.payout_amount), fee: BigInt(r.fee), feePayer: r.fee_payer, status: r.status,
  operationId: r.operation_id, providerRefundId: r.provider_refund_id, failureCode: r.failure_code, failureMessage: r.failure_message,
  createdAt: r.created_at, updatedAt: r.updated_at,
});

/** A refund in messages and API answers: snake_case, money as decimal strings. */
export function refundMessage(r: Refund): Record<string, string | null> {
  return {
    id: r.id, user_id: r.userId, source_type: r.sourceType, source_id: r.sourceId,
    deposit_id: r.sourceType === 'deposit' ? r.sourceId : null, bank_transfer_id: r.sourceType === 'bank_transfer' ? r.sourceId : null,
    route: r.route, provider: r.provider, currency: r.currency, amount: r.amount.toString(), payout_amount: r.payoutAmount.toString(),
    fee: r.fee.toString(), fee_payer: r.feePayer, status: r.status, provider_refund_id: r.providerRefundId,
    failure_code: r.failureCode, failure_message: r.failureMessage, created_at: r.createdAt.toISOString(), updated_at: r.updatedAt.toISOString(),
  };
}

interface AccountRow {
  user_id: string; bank_code: string; bank_name: string | null; branch_code: string; branch_name: string | null; account_type: BankAccountType;
  account_number: string; holder_kana: string; version: number; created_at: Date; updated_at: Date;
}
const toAccount = (r: AccountRow): RefundAccount => ({
  userId: r.user_id, bankCode: r.bank_code, bankName: r.bank_name, branchCode: r.branch_code, branchName: r.branch_name,
  accountType: r.account_type, accountNumber: r.account_number, holderKana: r.holder_kana, version: r.version, createdAt: r.created_at, updatedAt: r.updated_at,
});

/**
 * Characters a Zengin transfer accepts in a holder name: half-width katakana (no small kana, which
 * banks do not use in 口座名義), ﾞ ﾟ, digits, upper-case Latin letters, space and ( ) . , - /.
 */
const HOLDER_KANA = /^[\uFF66\uFF71-\uFF9F0-9A-Z ().,\-/]+$/;

/** Validates and normalises what the wallet's backend registers; throws 400 problems naming the field. */
export function checkRefundAccount(input: RefundAccountInput): RefundAccountInput {
  if (input.userId.length < 1 || input.userId.length > 255) throw new BadRequestError('invalid_user_id', 'user_id must have 1 to 255 characters');
  if (!/^\d{4}$/.test(input.bankCode)) throw new BadRequestError('invalid_bank_code', 'bank_code must be the 4-digit Zengin bank code');
  if (!/^\d{3}$/.test(input.branchCode)) throw new BadRequestError('invalid_branch_code', 'branch_code must be the 3-digit Zengin branch code');
  if (!BANK_ACCOUNT_TYPES.includes(input.accountType)) throw new BadRequestError('invalid_account_type', 'account_type must be ordinary, checking or savings');
  if (!/^\d{1,7}$/.test(input.accountNumber)) throw new BadRequestError('invalid_account_number', 'account_number must be 1 to 7 digits');
  const holder = input.holderKana.trim().replace(/ {2,}/g, ' ');
  if (holder.length < 1 || holder.length > 30) throw new BadRequestError('invalid_holder_kana', 'holder_kana must have 1 to 30 characters');
  if (!HOLDER_KANA.test(holder)) {
    throw new BadRequestError('invalid_holder_kana', 'holder_kana must be in half-width katakana as the bank holds it (ｱ-ﾝ, ﾞ, ﾟ, digits, A-Z, space, ( ) . , - /; no small kana)');
  }
  for (const [k, v] of [['bank_name', input.bankName], ['branch_name', input.branchName]] as const) {
    if (v !== undefined && (v.trim().length < 1 || v.trim().length > 60)) throw new BadRequestError(`invalid_${k}`, `${k} must have 1 to 60 characters`);
  }
  return {
    ...input, accountNumber: input.accountNumber.padStart(7, '0'), holderKana: holder,
    bankName: input.bankName?.trim(), branchName: input.branchName?.trim(),
  };
}

export interface RefundsEngine {
  db: { pool: pg.Pool };
  log: Logger;
  operations: Operations;
  providers: ProviderRegistry;
}

export interface RefundsOptions {
  /** The provider that pays refunds out (KOMOJU: refund requests and disbursements). */
  provider: string;
  /** The provider whose payments a refund request can refer to (konbini / Pay-easy deposits). */
  reservationProvider: string;
  fee: bigint;
  feePayer: FeePayer;
  /** A sent payout with no settled notice is asked about after this long (default SETTLE_POLL_MS). */
  settlePollMs?: number | undefined;
}

export interface SweepCounts { started: number; reported: number; sent: number; settled: number }

export interface Refunds {
  /** Registers (or replaces) the user's refund account and starts every refund that waited for one. */
  registerAccount(input: RefundAccountInput): Promise<{ account: RefundAccount; started: Refund[] }>;
  getAccount(userId: string): Promise<RefundAccount | null>;
  getRefund(id: string): Promise<Refund | null>;
  /** Newest first; `startingAfter` is the last id of the previous page. */
  listRefunds(userId: string, limit?: number, startingAfter?: string): Promise<Refund[]>;
  /** Every user's refunds, newest first, optionally of one status (operators). */
  listAllRefunds(o?: { status?: RefundStatus | undefined; limit?: number | undefined; startingAfter?: string | undefined }): Promise<Refund[]>;
  /**
   * The sweep: starts refunds of waiting escrow (or reports it), sends recorded payouts, and asks
   * about sent ones not asked about for SETTLE_POLL_MS (all of them with `askAll`).
   */
  runOnce(limit?: number, opts?: { askAll?: boolean }): Promise<SweepCounts>;
}

interface Source {
  source_type: 'deposit' | 'bank_transfer'; source_id: string; user_id: string; amount: string; currency: string;
  provider: string; provider_payment_id: string | null; account_version: number | null;
}

// Escrow not refunded yet: from deposits whose credit is final (a preliminary credit may still be
// withdrawn) and from credited bank transfers (a bank-transfer deposit's escrow is its transfer's:
// refunded once, as the transfer's); not while a refund of it is live or succeeded. After
// a failure: a refusal that retrying cannot change (the account rejected, the request invalid)
// waits for the account to change; any other failure (KOMOJU unreachable, never received) is
// tried again after RETRY_AFTER. Reported sources without an account wait for one quietly.
const REFUNDABLE = `
WITH src AS (
  SELECT 'deposit'::text AS source_type, d.id::text AS source_id, d.user_id, d.escrowed AS amount, d.currency, d.provider, d.provider_payment_id
  FROM deposits d WHERE d.escrowed > 0 AND d.status = 'succeeded' AND d.method <> 'bank_transfer' AND ($1::text IS NULL OR d.user_id = $1)
  UNION ALL
  SELECT 'bank_transfer', t.external_id, t.user_id, t.escrowed, t.currency, 'zengin', NULL
  FROM bank_transfers t WHERE t.escrowed > 0 AND t.status = 'credited' AND t.user_id IS NOT NULL AND ($1::text IS NULL OR t.user_id = $1)
)
SELECT src.source_type, src.source_id, src.user_id, src.amount::text AS amount, src.currency, src.provider, src.provider_payment_id,
       a.version AS account_version
FROM src LEFT JOIN refund_accounts a ON a.user_id = src.user_id
WHERE NOT EXISTS (SELECT 1 FROM deposit_refunds r WHERE r.source_type = src.source_type AND r.source_id = src.source_id
                  AND (r.status <> 'failed' OR (r.account_version = a.version
                       AND (r.failure_code = ANY($3::text[]) OR r.updated_at > now() - $4::bigint * interval '1 millisecond'))))
  AND NOT EXISTS (SELECT 1 FROM escrow_reports e WHERE e.source_type = src.source_type AND e.source_id = src.source_id
                  AND (e.cause = 'escrow_below_refund_fee' OR (e.cause = 'escrow_no_refund_account' AND a.user_id IS NULL)))
LIMIT $2`;

/** Failures that the same request to the same account would meet again. */
const ACCOUNT_FAILURES = ['payout_rejected', 'invalid_parameter', 'missing_parameter', 'invalid_payment_status', 'invalid_request'];
/** How long another failure waits before the refund is tried again. */
const RETRY_AFTER_MS = 10 * 60_000;
/** KOMOJU carries refund requests out by hand within a business day or two: asking every few minutes is plenty. */
const SETTLE_POLL_MS = 5 * 60_000;

export function createRefunds(engine: RefundsEngine, opts: RefundsOptions): Refunds {
  const pool = engine.db.pool;
  const { operations, log } = engine;
  const { provider } = opts;

  async function loadAccount(q: Queryable, userId: string): Promise<RefundAccount | null> {
    const r = await q.query<AccountRow>('SELECT * FROM refund_accounts WHERE user_id = $1', [userId]);
    return r.rows[0] ? toAccount(r.rows[0]) : null;
  }

  async function lockRefund(tx: Tx, where: 'id' | 'operation_id', value: string): Promise<Refund | null> {
    const r = await tx.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM deposit_refunds WHERE ${where} = $1 FOR UPDATE`, [value]);
    return r.rows[0] ? toRefund(r.rows[0]) : null;
  }

  /** The conditional UPDATE of the state machine, with its event; null when the refund was elsewhere. */
  async function transition(tx: Tx, id: string, from: RefundStatus, to: RefundStatus, cause: string,
    change: { providerRefundId?: string | undefined; failureCode?: string | undefined; failureMessage?: string | undefined } = {}): Promise<Refund | null> {
    if (!REFUND_TRANSITIONS[from].includes(to)) throw new Error(`refund transition ${from} → ${to} is not allowed`);
    const r = await tx.query<RefundRow>(
      `UPDATE deposit_refunds SET status = $3, updated_at = now(), provider_refund_id = COALESCE($4, provider_refund_id),
         failure_code = COALESCE($5, failure_code), failure_message = COALESCE($6, failure_message)
       WHERE id = $1 AND status = $2 RETURNING ${REFUND_COLUMNS}`,
      [id, from, to, change.providerRefundId ?? null, change.failureCode ?? null, change.failureMessage ?? null]);
    if (!r.rows[0]) return null;
    await tx.query('INSERT INTO deposit_refund_events (refund_id, from_status, to_status, cause) VALUES ($1, $2, $3, $4)', [id, from, to, cause]);
    return toRefund(r.rows[0]);
  }

  const emit = (tx: Tx, topic: string, r: Refund) => publish(tx, topic, refundMessage(r), {
    id: uuidv7(), key: r.sourceId, entity: { type: 'deposit_refund', id: r.id }, attributes: { route: r.route, provider: r.provider },
  });

  async function accountsFor(tx: Queryable, r: { userId: string; currency: string }) {
    const [escrow, payable, clearing, fees, revenue] = await ensureAccounts(tx, [
      { kind: 'escrow', owner: r.userId, currency: r.currency },
      { kind: 'refunds_payable', owner: '', currency: r.currency },
      { kind: 'clearing', owner: provider, currency: r.currency },
      { kind: 'fees', owner: provider, currency: r.currency },
      { kind: 'revenue', owner: 'refund_fees', currency: r.currency },
    ]);
    return { escrow: escrow!, payable: payable!, clearing: clearing!, fees: fees!, revenue: revenue! };
  }

  async function posting(tx: Tx, key: string, description: string, refund: Refund, entries: { accountId: string; amount: bigint }[]): Promise<void> {
    const p = await post(tx, {
      idempotencyKey: key, kind: 'deposit_refund', description, entries: entries.filter((e) => e.amount !== 0n),
      metadata: { refund_id: refund.id, source_type: refund.sourceType, source_id: refund.sourceId, user_id: refund.userId },
    });
    // Escrow, refunds payable, clearing, fees and revenue have no limit, funds check or restriction.
    if (!p.ok) throw new Error(`refund posting ${key} refused: ${p.error.code}`);
  }

  /** Escrow → refunds payable (in flight). */
  async function bookStart(tx: Tx, r: Refund): Promise<void> {
    const a = await accountsFor(tx, r);
    await posting(tx, `refund:${r.id}:start`, `refund ${r.id} of escrow started`, r,
      [{ accountId: a.escrow.id, amount: -r.amount }, { accountId: a.payable.id, amount: r.amount }]);
  }

  /**
   * Refunds payable cleared: the provider paid the user and charged its fee. The fee charged is
   * the one the provider reports when it reports one (a disbursement does), else the configured
   * one, so that the clearing account follows what the provider really took.
   */
  async function bookPaid(tx: Tx, r: Refund, reportedFee: bigint | undefined): Promise<void> {
    const a = await accountsFor(tx, r);
    const charged = reportedFee ?? r.fee;
    const entries = [
      { accountId: a.payable.id, amount: -r.amount },
      // The provider pays out from what it holds for us, and keeps its fee from it too.
      { accountId: a.clearing.id, amount: r.payoutAmount + charged },
      // The fee is an expense; when the user bears it, the part of the escrow that covered it (the
      // configured fee, deducted from the payout) is recovered revenue.
      { accountId: a.fees.id, amount: -charged },
    ];
    if (r.feePayer === 'user') entries.push({ accountId: a.revenue.id, amount: r.fee });
    await posting(tx, `refund:${r.id}:paid`, `refund ${r.id} paid out`, r, entries);
  }

  /** Refunds payable → escrow again: the payout did not happen. */
  async function bookReturned(tx: Tx, r: Refund): Promise<void> {
    const a = await accountsFor(tx, r);
    await posting(tx, `refund:${r.id}:returned`, `refund ${r.id} failed: back to escrow`, r,
      [{ accountId: a.payable.id, amount: -r.amount }, { accountId: a.escrow.id, amount: r.amount }]);
  }

  async function succeed(tx: Tx, r: Refund, cause: string, response: Record<string, unknown>, providerRefundId?: string): Promise<void> {
    const moved = await transition(tx, r.id, r.status, 'succeeded', cause, { providerRefundId });
    if (!moved) return;
    await bookPaid(tx, moved, reportedFee(response));
    await emit(tx, 'deposit.refund_succeeded', moved);
  }

  async function fail(tx: Tx, r: Refund, cause: string, code: string, message: string, providerRefundId?: string): Promise<void> {
    const moved = await transition(tx, r.id, r.status, 'failed', cause, { providerRefundId, failureCode: code, failureMessage: message });
    if (!moved) return;
    await bookReturned(tx, moved);
    await emit(tx, 'deposit.refund_failed', moved);
    await report(tx, moved.sourceType, moved.sourceId, moved.userId, moved.amount, 'refund_failed',
      `refund of ${moved.amount} ${moved.currency} escrow failed (${code}): the money is back in escrow`, { refund_id: moved.id, failure_message: message });
  }

  /** Reports escrow that waits for a person, once per source and cause. */
  async function report(tx: Queryable, sourceType: 'deposit' | 'bank_transfer', sourceId: string, userId: string, amount: bigint, cause: string, summary: string,
    details: Record<string, unknown> = {}): Promise<boolean> {
    const ins = await tx.query(
      `INSERT INTO escrow_reports (source_type, source_id, cause, user_id, amount) VALUES ($1, $2, $3, $4, $5::bigint)
       ON CONFLICT (source_type, source_id, cause) DO NOTHING`, [sourceType, sourceId, cause, userId, amount.toString()]);
    if (!ins.rowCount) return false;
    const c = await reportCase(tx, log, {
      kind: 'deposit', cause, subject: { type: sourceType, id: sourceId }, summary,
      details: { source_type: sourceType, user_id: userId, amount: amount.toString(), ...details },
    });
    await tx.query('UPDATE escrow_reports SET case_id = $4 WHERE source_type = $1 AND source_id = $2 AND cause = $3', [sourceType, sourceId, cause, c.id]);
    return true;
  }

  /** Starts the refund of one source, or reports why it cannot. Returns the operation to send after commit. */
  async function startOne(tx: Tx, s: Source, account: RefundAccount | null): Promise<{ refund: Refund; operationId: string } | 'reported' | null> {
    const amount = BigInt(s.amount);
    if (!account) {
      return (await report(tx, s.source_type, s.source_id, s.user_id, amount, 'escrow_no_refund_account',
        `${amount} ${s.currency} in escrow for ${s.user_id}: no bank account registered for the refund`)) ? 'reported' : null;
    }
    const fee = opts.fee;
    const payout = opts.feePayer === 'user' ? amount - fee : amount;
    if (payout <= 0n) {
      return (await report(tx, s.source_type, s.source_id, s.user_id, amount, 'escrow_below_refund_fee',
        `${amount} ${s.currency} in escrow for ${s.user_id} does not cover the refund fee of ${fee}`)) ? 'reported' : null;
    }
    const route: RefundRoute = s.source_type === 'deposit' && s.provider === opts.reservationProvider && s.provider_payment_id
      ? 'komoju_refund_request' : 'komoju_disbursement';
    const id = uuidv7();
    const ins = await tx.query<RefundRow>(
      `INSERT INTO deposit_refunds (id, user_id, source_type, source_id, route, provider, currency, amount, payout_amount, fee, fee_payer, status, account_version)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9::bigint, $10::bigint, $11, 'pending', $12)
       ON CONFLICT (source_type, source_id) WHERE status <> 'failed' DO NOTHING RETURNING ${REFUND_COLUMNS}`,
      [id, s.user_id, s.source_type, s.source_id, route, provider, s.currency, amount.toString(), payout.toString(), fee.toString(), opts.feePayer, account.version]);
    if (!ins.rows[0]) return null; // a concurrent start won
    const refund = toRefund(ins.rows[0]);
    await tx.query('INSERT INTO deposit_refund_events (refund_id, from_status, to_status, cause) VALUES ($1, NULL, $2, $3)',
      [id, 'pending', `escrow of ${s.source_type} ${s.source_id} to ${account.bankCode}-${account.branchCode} (account v${account.version})`]);
    await bookStart(tx, refund);
    const bank = {
      bankCode: account.bankCode, branchCode: account.branchCode, accountType: account.accountType, accountNumber: account.accountNumber,
      holderKana: account.holderKana, ...(account.bankName ? { bankName: account.bankName } : {}), ...(account.branchName ? { branchName: account.branchName } : {}),
    };
    const { operation } = await operations.record(tx, route === 'komoju_refund_request'
      ? { provider, kind: 'refund_request', idempotencyKey: `refund:${id}`, entity: { type: 'deposit_refund', id },
          request: { paymentId: s.provider_payment_id!, amount: payout.toString(), refundId: id, ...bank } }
      : { provider, kind: 'disbursement', idempotencyKey: `refund:${id}`, entity: { type: 'deposit_refund', id },
          request: { amount: payout.toString(), currency: s.currency, refundId: id, ...bank } });
    await tx.query('UPDATE deposit_refunds SET operation_id = $2 WHERE id = $1', [id, operation.id]);
    const cleared = await tx.query<{ case_id: string | null }>(
      'DELETE FROM escrow_reports WHERE source_type = $1 AND source_id = $2 RETURNING case_id', [s.source_type, s.source_id]);
    await resolveReportedCases(tx, cleared.rows.flatMap((c) => (c.case_id ? [c.case_id] : [])), `refund ${id} of the escrow started`, { refund_id: id });
    await emit(tx, 'deposit.refund_started', { ...refund, operationId: operation.id });
    return { refund: { ...refund, operationId: operation.id }, operationId: operation.id };
  }

  /** Starts (or reports) refunds of waiting escrow, one transaction per source; returns what to send. */
  async function startWaiting(userId: string | null, limit: number): Promise<{ started: Refund[]; reported: number; operations: string[] }> {
    const r = await pool.query<Source>(REFUNDABLE, [userId, limit, ACCOUNT_FAILURES, RETRY_AFTER_MS]);
    const out = { started: [] as Refund[], reported: 0, operations: [] as string[] };
    for (const s of r.rows) {
      const res = await withTx(pool, async (tx) => startOne(tx, s, await loadAccount(tx, s.user_id)));
      if (res === 'reported') out.reported++;
      else if (res) {
        out.started.push(res.refund);
        out.operations.push(res.operationId);
      }
    }
    return out;
  }

  async function send(operationIds: readonly string[]): Promise<number> {
    let n = 0;
    for (const id of operationIds) {
      try {
        await operations.execute(id);
        n++;
      } catch (e) {
        // The operation stays `sending` until its lease ends; the janitor takes it from there.
        log.error({ operationId: id, err: (e as Error).message }, 'refund payout: recording the result failed');
      }
    }
    return n;
  }

  // ---- the payout request's final outcome, in the transaction that records it
  async function onPayoutResult(tx: Tx, op: Operation): Promise<void> {
    if (op.provider !== provider || op.entity_type !== 'deposit_refund') return;
    const r = await lockRefund(tx, 'operation_id', op.id);
    if (!r || r.status !== 'pending') return;
    const response = op.response ?? {};
    const providerRefundId = typeof response.provider_refund_id === 'string' ? response.provider_refund_id : undefined;
    if (op.status === 'succeeded') {
      const moved = await transition(tx, r.id, 'pending', 'sent', `payout request accepted (operation ${op.id})`, { providerRefundId });
      if (moved && response.refund_status === 'completed') await succeed(tx, moved, 'payout completed', response, providerRefundId);
      else if (moved && response.refund_status === 'rejected') await fail(tx, moved, 'payout rejected', 'payout_rejected', String(response.error ?? 'the provider rejected the payout'));
    } else if (op.status === 'failed') {
      await fail(tx, r, `payout request refused (operation ${op.id})`, op.error_code ?? 'payout_failed', op.error_message ?? 'the payout request failed');
    }
  }
  operations.onResult('refund_request', onPayoutResult);
  operations.onResult('disbursement', onPayoutResult);

  /** Asks the provider where `sent` payouts stand and settles those it has decided. */
  async function settleSent(limit: number, askAll: boolean): Promise<number> {
    const r = await pool.query<RefundRow & { op: { kind: string; request: Record<string, unknown>; idempotency_key: string } }>(
      `SELECT ${REFUND_COLUMNS},
         (SELECT row_to_json(o) FROM (SELECT kind, request, idempotency_key FROM operations WHERE id = operation_id) o) AS op
       FROM deposit_refunds WHERE status = 'sent' AND ($2 OR updated_at < now() - $3::bigint * interval '1 millisecond')
       ORDER BY updated_at LIMIT $1`, [limit, askAll, opts.settlePollMs ?? SETTLE_POLL_MS]);
    const adapter = engine.providers.get(provider);
    if (!adapter?.inquire || r.rows.length === 0) return 0;
    const inquire = adapter.inquire.bind(adapter);
    let n = 0;
    for (const row of r.rows) {
      const refund = toRefund(row);
      let status: unknown;
      let response: Record<string, unknown> = {};
      try {
        const res = await inquire({ id: row.operation_id!, kind: row.op.kind, idempotencyKey: row.op.idempotency_key,
          request: { ...row.op.request, ...(refund.providerRefundId ? { providerRefundId: refund.providerRefundId } : {}) } }, AbortSignal.timeout(10_000));
        if (res.status !== 'succeeded') {
          log.warn({ refundId: refund.id, inquiry: res.status }, 'sent refund: the provider gave no usable answer; asked again later');
          continue;
        }
        response = res.response;
        status = response.refund_status;
      } catch (e) {
        log.warn({ refundId: refund.id, err: (e as Error).message }, 'sent refund: inquiry failed; asked again later');
        continue;
      }
      if (status !== 'completed' && status !== 'rejected') {
        await pool.query(`UPDATE deposit_refunds SET updated_at = now() WHERE id = $1 AND status = 'sent'`, [refund.id]);
        continue;
      }
      await withTx(pool, async (tx) => {
        const locked = await lockRefund(tx, 'id', refund.id);
        if (!locked || locked.status !== 'sent') return;
        if (status === 'completed') await succeed(tx, locked, 'payout completed at the provider', response);
        else await fail(tx, locked, 'payout rejected at the provider', 'payout_rejected', String(response.error ?? 'the provider rejected the payout (wrong bank account?)'));
      });
      n++;
    }
    return n;
  }

  return {
    async registerAccount(input) {
      const a = checkRefundAccount(input);
      const account = await withTx(pool, async (tx) => {
        const r = await tx.query<AccountRow>(
          `INSERT INTO refund_accounts (user_id, bank_code, bank_name, branch_code, branch_name, account_type, account_number, holder_kana)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (user_id) DO UPDATE SET bank_code = excluded.bank_code, bank_name = excluded.bank_name, branch_code = excluded.branch_code,
             branch_name = excluded.branch_name, account_type = excluded.account_type, account_number = excluded.account_number,
             holder_kana = excluded.holder_kana, updated_at = now(),
             -- The same details again are the same account (a failed payout is not retried with them).
             version = refund_accounts.version + CASE WHEN (refund_accounts.bank_code, refund_accounts.branch_code, refund_accounts.account_type,
               refund_accounts.account_number, refund_accounts.holder_kana, refund_accounts.bank_name, refund_accounts.branch_name)
               IS NOT DISTINCT FROM (excluded.bank_code, excluded.branch_code, excluded.account_type, excluded.account_number, excluded.holder_kana,
               excluded.bank_name, excluded.branch_name) THEN 0 ELSE 1 END
           RETURNING *`,
          [a.userId, a.bankCode, a.bankName ?? null, a.branchCode, a.branchName ?? null, a.accountType, a.accountNumber, a.holderKana]);
        return toAccount(r.rows[0]!);
      });
      const started = await startWaiting(account.userId, 1_000);
      await send(started.operations);
      const fresh = await Promise.all(started.started.map(async (s) => (await this.getRefund(s.id))!));
      return { account, started: fresh };
    },

    getAccount: (userId) => loadAccount(pool, userId),

    async getRefund(id) {
      if (!isUuid(id)) return null;
      const r = await pool.query<RefundRow>(`SELECT ${REFUND_COLUMNS} FROM deposit_refunds WHERE id = $1`, [id]);
      return r.rows[0] ? toRefund(r.rows[0]) : null;
    },

    async listRefunds(userId, limit = 50, startingAfter) {
      const r = await pool.query<RefundRow>(LIST_USER_REFUNDS, [userId, startingAfter ?? null, Math.min(Math.max(limit, 1), 501)]);
      return r.rows.map(toRefund);
    },

    async listAllRefunds(o = {}) {
      const r = await pool.query<RefundRow>(LIST_ALL_REFUNDS, [o.status ?? null, o.startingAfter ?? null, Math.min(Math.max(o.limit ?? 50, 1), 501)]);
      return r.rows.map(toRefund);
    },

    async runOnce(limit = 100, o = {}) {
      const s = await startWaiting(null, limit);
      // Recorded but never sent (the process stopped between the start and the call, or the start was the sweep's own).
      const pending = await pool.query<{ operation_id: string }>(
        `SELECT r.operation_id FROM deposit_refunds r JOIN operations o ON o.id = r.operation_id
         WHERE r.status = 'pending' AND o.status = 'pending' ORDER BY r.created_at LIMIT $1`, [limit]);
      const sent = await send(pending.rows.map((p) => p.operation_id));
      const settled = await settleSent(limit, o.askAll === true);
      return { started: s.started.length, reported: s.reported, sent, settled };
    },
  };
}
