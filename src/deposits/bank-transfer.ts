// Bank-transfer deposits (銀行振込).
//
// Fully asynchronous: the user pays from any bank into their own virtual account, without telling
// us first, so there is nothing to validate beforehand and nothing can be refused afterwards. The
// bank's transfer-notice file (Zengin 振込入金通知) is the only notice; every transfer in it is
// accepted and booked somewhere:
//   - matched (the credited account — bank code, branch code, account type and number, all four —
//     is a user's virtual account, and the payer's kana name matches
//     the registered one, or the policy says credit anyway): creditDeposit unrefusable — up to the
//     limit to the wallet, the rest to escrow (C3); a restricted user's deposit to their suspense
//     (C4) — then `deposit.succeeded` (method bank_transfer). If the user announced the transfer
//     (POST /v1/deposits, bank-transfer-deposit.ts), the oldest awaiting deposit of that amount is
//     what it pays, in the same transaction: its hold is released just before the credit (so the
//     money counts once toward the limit), the deposit succeeds with this transfer's booking, and
//     `deposit.succeeded` names the deposit instead of the transfer;
//   - unmatched (unknown account — which includes our number at another bank, branch or account
//     type, and a notice that does not say its bank and branch — or a name mismatch under the
//     'suspense' policy): the whole amount
//     to the platform suspense account (owner 'bank-transfer-unmatched') with the reason, and
//     `bank_transfer.unmatched` for the operators' runbook.
// Idempotent per transfer on its external id (stable across re-imports of the same data): imports
// of one transfer are serialized by a transaction-scoped advisory lock on it, and the ledger
// posting carries the same key, so even a race between two imports books it (and pays a deposit) once.
//
// 取消 (cancellation) records: the bank withdraws a transfer it notified earlier (an erroneous
// credit). The transfer it names is found (same 照会番号, or else the same account, day, amount and
// payer) and its booking reversed as a new ledger transaction — wallet, escrow or suspense alike,
// the wallet below zero if the user spent the money (the shortfall kept, and reported, as for a
// withdrawn 速報 in reservation.ts) — then `deposit.reversed`. A cancellation naming no transfer we
// know is booked against suspense (the bank took back money we never booked) and reported. A
// cancelled transfer that paid a deposit leaves that deposit `succeeded` (it was paid, and its
// record keeps what was booked); the reversal is the transfer's (cancelled, with its shortfall), and
// `deposit.reversed` carries the deposit's id so the wallet's backend can tie the two.
import pg from 'pg';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { BadRequestError, err, ok, type Result } from '../kernel/errors.ts';
import { nameBasedId } from '../kernel/ids.ts';
import { silentLogger, type Logger } from '../kernel/logger.ts';
import { creditDeposit, ensureAccounts, post, DEFAULT_BALANCE_LIMIT } from '../ledger/index.ts';
import { publish } from '../outbox/publish.ts';
import {
  parseTransferNotice, type DepositType, type ParseTransferNoticeOptions, type TransferNotice, type ZenginParseError,
} from '../providers/zengin/index.ts';
import { payerNameMatches } from './payer-name.ts';
import { reportCase } from './report-case.ts';
import { reverseDepositCredit } from './reverse-credit.ts';
import { FILE_IMPORT_LOCK, knownRecords, queued, withTxRetried } from './file-import-queue.ts';
import { publishDeposit, releaseDepositHold } from './flow.ts';
import { DEPOSIT_COLUMNS, toDeposit, transitionDeposit, type Deposit, type DepositRow } from './state.ts';
import type { BankAccountType } from './refunds.ts';

/** The bank and branch our virtual accounts live at, unless the caller says otherwise. */
export const DEFAULT_VIRTUAL_ACCOUNT_BANK = { bankCode: '0001', branchCode: '001' } as const;
/** The clearing account bank transfers come from. */
export const BANK_CLEARING_OWNER = 'bank';
/** Where unmatched transfers wait for an operator. */
export const UNMATCHED_SUSPENSE_OWNER = 'bank-transfer-unmatched';
const CURRENCY = 'JPY';

/** A credited account's type: a virtual account's (ordinary, as every one we open), or 'other' (預金種目 9). */
export type TransferAccountType = BankAccountType | 'other';

/** 預金種目 (a Zengin header's, a bank webhook's deposit_type) in our words. */
export function accountTypeOf(depositType: DepositType): TransferAccountType {
  return depositType === '1' ? 'ordinary' : depositType === '2' ? 'checking' : depositType === '4' ? 'savings' : 'other';
}

export interface VirtualAccount {
  accountNumber: string;
  bankCode: string;
  branchCode: string;
  accountType: BankAccountType;
  userId: string;
  registeredNameKana: string;
  createdAt: Date;
}

interface VirtualAccountRow {
  account_number: string; bank_code: string; branch_code: string; account_type: BankAccountType; user_id: string; registered_name_kana: string;
  created_at: Date;
}

const toVirtualAccount = (r: VirtualAccountRow): VirtualAccount => ({
  accountNumber: r.account_number, bankCode: r.bank_code, branchCode: r.branch_code, accountType: r.account_type, userId: r.user_id,
  registeredNameKana: r.registered_name_kana, createdAt: r.created_at,
});

const VA_COLUMNS = 'account_number, bank_code, branch_code, account_type, user_id, registered_name_kana, created_at';

// A number is drawn only when the user has none; a concurrent first assignment for the same user
// loses on user_id and reads the winner's (the drawn number is simply not used).
const ASSIGN = `
WITH ins AS (
  INSERT INTO virtual_accounts (account_number, bank_code, branch_code, user_id, registered_name_kana)
  SELECT lpad(((nextval('virtual_account_seq') * 7919) % 10000000)::text, 7, '0'), $2, $3, $1, $4
  WHERE NOT EXISTS (SELECT 1 FROM virtual_accounts WHERE user_id = $1)
  ON CONFLICT (user_id) DO NOTHING
  RETURNING ${VA_COLUMNS}
)
SELECT ${VA_COLUMNS} FROM ins`;

export interface AssignVirtualAccountInput {
  userId: string;
  /** The user's name in kana, as a payer would write it (full- or half-width; see payer-name.ts). */
  registeredNameKana: string;
  bankCode?: string | undefined;
  branchCode?: string | undefined;
}

/**
 * The user's virtual account, created on first call: the same account on every later call (the
 * registered name of an existing account is left as it is). Safe under concurrency.
 */
export async function assignVirtualAccount(q: Queryable, input: AssignVirtualAccountInput): Promise<VirtualAccount> {
  const bankCode = input.bankCode ?? DEFAULT_VIRTUAL_ACCOUNT_BANK.bankCode;
  const branchCode = input.branchCode ?? DEFAULT_VIRTUAL_ACCOUNT_BANK.branchCode;
  if (input.userId.length < 1 || input.userId.length > 255) throw new BadRequestError('invalid_user_id', 'user_id must have 1 to 255 characters');
  const name = input.registeredNameKana.trim();
  if (name.length < 1 || name.length > 200) throw new BadRequestError('invalid_name_kana', 'name_kana must have 1 to 200 characters');
  if (!/^\d{4}$/.test(bankCode) || !/^\d{3}$/.test(branchCode)) throw new BadRequestError('invalid_bank', 'bank code must be 4 digits and branch code 3');
  const existing = await getVirtualAccountByUser(q, input.userId);
  if (existing) return existing;
  const r = await q.query<VirtualAccountRow>({ name: 'virtual_account_assign', text: ASSIGN, values: [input.userId, bankCode, branchCode, name] });
  if (r.rows[0]) return toVirtualAccount(r.rows[0]);
  // Lost the race to a concurrent assignment for the same user (committed by now: ON CONFLICT waited for it).
  const winner = await getVirtualAccountByUser(q, input.userId);
  if (!winner) throw new Error(`virtual account for ${input.userId} could not be assigned`);
  return winner;
}

export async function getVirtualAccountByUser(q: Queryable, userId: string): Promise<VirtualAccount | null> {
  const r = await q.query<VirtualAccountRow>(`SELECT ${VA_COLUMNS} FROM virtual_accounts WHERE user_id = $1`, [userId]);
  return r.rows[0] ? toVirtualAccount(r.rows[0]) : null;
}

/** A credited account as the bank names it; a part it does not say is missing (and then it is nobody's). */
export interface CreditedAccountRef {
  accountNumber: string;
  bankCode?: string | undefined;
  branchCode?: string | undefined;
  /** 預金種目; missing: not said. */
  depositType?: DepositType | undefined;
}

const FIND_VIRTUAL_ACCOUNT = `SELECT ${VA_COLUMNS} FROM virtual_accounts
WHERE account_number = $1 AND bank_code = $2 AND branch_code = $3 AND account_type = $4`;

/**
 * The virtual account the bank credited: bank, branch, account type and number all ours. An account
 * that does not say its bank, branch or type is nobody's: the same number exists at every bank.
 */
export async function findVirtualAccount(q: Queryable, a: CreditedAccountRef): Promise<VirtualAccount | null> {
  if (a.bankCode === undefined || a.branchCode === undefined || a.depositType === undefined) return null;
  const r = await q.query<VirtualAccountRow>({
    name: 'virtual_account_find', text: FIND_VIRTUAL_ACCOUNT, values: [a.accountNumber, a.bankCode, a.branchCode, accountTypeOf(a.depositType)],
  });
  return r.rows[0] ? toVirtualAccount(r.rows[0]) : null;
}

// ---------------------------------------------------------------------------------------------
// Importing transfers

export type NameMismatchPolicy = 'credit' | 'suspense';

export interface BankTransferPolicy {
  /** A payer name that does not match the registered one: credit the user anyway, or hold it in suspense (default). */
  nameMismatch?: NameMismatchPolicy | undefined;
  /** The wallet limit without a per-user override; the ledger's default if not given. */
  defaultLimit?: bigint | undefined;
  /** Where reports (cases) of cancellations that need a person are logged. */
  log?: Logger | undefined;
}

/** One incoming transfer: what importTransfer needs of a parsed Zengin data record. */
export interface IncomingTransfer {
  externalId: string;
  account: CreditedAccountRef;
  amount: bigint;
  payerName: string;
  /** ISO date (YYYY-MM-DD) the bank booked it. */
  transactionDate?: string | undefined;
}

/** cancelled: withdrawn by a later 取消 record; cancellation: such a record; unmatched_cancel: one naming no transfer we know. */
export type BankTransferStatus = 'credited' | 'suspense' | 'cancelled' | 'cancellation' | 'unmatched_cancel';
export type BankTransferReason = 'unknown_account' | 'name_mismatch' | 'account_restricted' | 'zero_amount' | 'cancellation' | 'unknown_transfer';

export interface BankTransfer {
  externalId: string;
  accountNumber: string;
  /** The rest of the credited account as the bank named it; null where it did not say. */
  bankCode: string | null;
  branchCode: string | null;
  accountType: TransferAccountType | null;
  amount: bigint;
  currency: string;
  payerName: string;
  transactionDate: string | null;
  status: BankTransferStatus;
  reason: BankTransferReason | null;
  userId: string | null;
  credited: bigint;
  escrowed: bigint;
  suspended: bigint;
  ledgerTransactionId: string | null;
  receivedAt: Date;
  /** On a cancellation record: the transfer it cancelled. */
  cancels: string | null;
  /** On a cancelled transfer: the cancellation record. */
  cancelledBy: string | null;
  /** How far the reversal took the wallet below zero. */
  shortfall: bigint;
  /** The deposit (POST /v1/deposits, bank_transfer) this transfer paid; null when nobody announced it. */
  depositId: string | null;
}

interface BankTransferRow {
  external_id: string; account_number: string; bank_code: string | null; branch_code: string | null; account_type: TransferAccountType | null; amount: string; currency: string; payer_name: string; transaction_date: string | null;
  status: BankTransferStatus; reason: BankTransferReason | null; user_id: string | null;
  credited: string; escrowed: string; suspended: string; ledger_transaction_id: string | null; received_at: Date;
  cancels: string | null; cancelled_by: string | null; shortfall: string; deposit_id: string | null;
}

const BT_COLUMNS = `external_id, account_number, bank_code, branch_code, account_type, amount::text AS amount, currency, payer_name, to_char(transaction_date, 'YYYY-MM-DD') AS transaction_date,
  status, reason, user_id, credited::text AS credited, escrowed::text AS escrowed, suspended::text AS suspended, ledger_transaction_id, received_at,
  cancels, cancelled_by, shortfall::text AS shortfall, deposit_id`;

const toBankTransfer = (r: BankTransferRow): BankTransfer => ({
  externalId: r.external_id, accountNumber: r.account_number, bankCode: r.bank_code, branchCode: r.branch_code, accountType: r.account_type,
  amount: BigInt(r.amount), currency: r.currency, payerName: r.payer_name,
  transactionDate: r.transaction_date, status: r.status, reason: r.reason, userId: r.user_id,
  credited: BigInt(r.credited), escrowed: BigInt(r.escrowed), suspended: BigInt(r.suspended),
  ledgerTransactionId: r.ledger_transaction_id, receivedAt: r.received_at,
  cancels: r.cancels, cancelledBy: r.cancelled_by, shortfall: BigInt(r.shortfall), depositId: r.deposit_id,
});

const INSERT_TRANSFER = `
INSERT INTO bank_transfers (external_id, account_number, amount, currency, payer_name, transaction_date, status, reason, user_id,
  credited, escrowed, suspended, ledger_transaction_id, deposit_id, bank_code, branch_code, account_type)
VALUES ($1, $2, $3::bigint, $4, $5, $6::date, $7, $8, $9, $10::bigint, $11::bigint, $12::bigint, $13::uuid, $14::uuid, $15, $16, $17)
ON CONFLICT (external_id) DO NOTHING
RETURNING ${BT_COLUMNS}`;

export interface ImportedTransfer {
  transfer: BankTransfer;
  /** The external id had been imported before: nothing new was booked or published. */
  duplicate: boolean;
}

/** A bank transfer in messages and API answers: snake_case, money as decimal strings. */
export function bankTransferMessage(t: BankTransfer): Record<string, string | null> {
  return {
    id: t.externalId, external_id: t.externalId, method: 'bank_transfer', account_number: t.accountNumber,
    bank_code: t.bankCode, branch_code: t.branchCode, account_type: t.accountType, amount: t.amount.toString(),
    currency: t.currency, payer_name: t.payerName, transaction_date: t.transactionDate, status: t.status, reason: t.reason, user_id: t.userId,
    credited: t.credited.toString(), escrowed: t.escrowed.toString(), suspended: t.suspended.toString(),
    ledger_transaction_id: t.ledgerTransactionId, received_at: t.receivedAt.toISOString(),
    cancels: t.cancels, cancelled_by: t.cancelledBy, shortfall: t.shortfall.toString(), deposit_id: t.depositId,
  };
}

async function getTransfer(q: Queryable, externalId: string): Promise<BankTransfer | null> {
  const r = await q.query<BankTransferRow>(`SELECT ${BT_COLUMNS} FROM bank_transfers WHERE external_id = $1`, [externalId]);
  return r.rows[0] ? toBankTransfer(r.rows[0]) : null;
}

/** A cancellation record: the transfer it names, as a data record. */
export interface IncomingCancellation extends IncomingTransfer {
  /** The external id of the transfer it withdraws, when the notice says so (webhooks); else read from externalId. */
  cancels?: string | undefined;
}

// The transfer a cancellation withdraws: the one it names (a file record's 照会番号 is its id
// without ':cancel'), or else the oldest one not yet cancelled with the same account (bank, branch,
// type and number), 勘定日, amount and payer.
const FIND_CANCELLED = `
SELECT ${BT_COLUMNS} FROM bank_transfers
WHERE status IN ('credited', 'suspense') AND (external_id = $1 OR (
  $1 IS NULL AND account_number = $2 AND transaction_date IS NOT DISTINCT FROM $3::date AND amount = $4::bigint AND payer_name = $5
  AND bank_code IS NOT DISTINCT FROM $6 AND branch_code IS NOT DISTINCT FROM $7 AND account_type IS NOT DISTINCT FROM $8))
ORDER BY received_at, external_id LIMIT 1 FOR UPDATE`;

/** The credited account's columns of a bank_transfers row: bank code, branch code, account type. */
const accountColumns = (a: CreditedAccountRef): [string | null, string | null, TransferAccountType | null] =>
  [a.bankCode ?? null, a.branchCode ?? null, a.depositType === undefined ? null : accountTypeOf(a.depositType)];

/**
 * Books one cancellation (取消) record: reverses the transfer it names, or, when there is none,
 * books it against suspense and reports it. Idempotent on the record's external id. Run it in the
 * import's transaction, as importTransferNoticeFile does.
 */
export async function importCancellation(q: Queryable, cancel: IncomingCancellation, policy: BankTransferPolicy = {}): Promise<ImportedTransfer> {
  const prior = await getTransfer(q, cancel.externalId);
  if (prior) return { transfer: prior, duplicate: true };
  const log = policy.log ?? silentLogger;
  const accountNumber = cancel.account.accountNumber;
  const named = cancel.cancels ?? (/:\d+:cancel$/.test(cancel.externalId) ? cancel.externalId.slice(0, -':cancel'.length) : null);
  const account = accountColumns(cancel.account);
  const details = [accountNumber, cancel.transactionDate ?? null, cancel.amount.toString(), cancel.payerName, ...account];
  let found = await q.query<BankTransferRow>(FIND_CANCELLED, [named, ...details]);
  // A 照会番号 we never saw: try the transfer's other details before calling it unknown.
  if (!found.rows[0] && named !== null) found = await q.query<BankTransferRow>(FIND_CANCELLED, [null, ...details]);
  const target = found.rows[0] ? toBankTransfer(found.rows[0]) : null;
  const entity = { type: 'bank_transfer', id: cancel.externalId };
  const attributes = { method: 'bank_transfer', provider: 'zengin' };
  const insert = (status: BankTransferStatus, reason: BankTransferReason, suspended: bigint, txId: string | null, cancels: string | null) =>
    q.query<BankTransferRow>(
      `INSERT INTO bank_transfers (external_id, account_number, amount, currency, payer_name, transaction_date, status, reason, user_id,
         suspended, ledger_transaction_id, cancels, bank_code, branch_code, account_type)
       VALUES ($1, $2, $3::bigint, $4, $5, $6::date, $7, $8, $9, $10::bigint, $11::uuid, $12, $13, $14, $15)
       ON CONFLICT (external_id) DO NOTHING RETURNING ${BT_COLUMNS}`,
      [cancel.externalId, accountNumber, cancel.amount.toString(), CURRENCY, cancel.payerName, cancel.transactionDate ?? null, status, reason,
        target?.userId ?? null, suspended.toString(), txId, cancels, ...account]);

  if (!target || target.amount !== cancel.amount) {
    if (target) log.warn({ cancellation: cancel.externalId, transfer: target.externalId }, 'cancellation amount differs from the transfer it names');
    let txId: string | null = null;
    if (cancel.amount > 0n) {
      // The bank took back money we never booked: its clearing account owes us less, suspense holds the difference.
      const [clearing, suspense] = await ensureAccounts(q, [
        { kind: 'clearing', owner: BANK_CLEARING_OWNER, currency: CURRENCY }, { kind: 'suspense', owner: UNMATCHED_SUSPENSE_OWNER, currency: CURRENCY },
      ]);
      const p = await post(q, {
        idempotencyKey: `bank_transfer:${cancel.externalId}`, kind: 'bank_transfer_unmatched_cancel',
        description: `cancellation ${cancel.externalId} of a transfer we do not know`,
        metadata: { external_id: cancel.externalId, account_number: accountNumber, payer_name: cancel.payerName },
        entries: [{ accountId: clearing!.id, amount: cancel.amount }, { accountId: suspense!.id, amount: -cancel.amount }],
      });
      if (!p.ok) throw new Error(`posting unmatched cancellation ${cancel.externalId} refused: ${p.error.code}`);
      txId = p.value.transactionId;
    }
    const r = await insert('unmatched_cancel', 'unknown_transfer', cancel.amount, txId, null);
    if (!r.rows[0]) return { transfer: (await getTransfer(q, cancel.externalId))!, duplicate: true };
    const t = toBankTransfer(r.rows[0]);
    await publish(q, 'bank_transfer.unmatched', bankTransferMessage(t), {
      id: nameBasedId('bank_transfer', t.externalId, 'unmatched'), key: t.externalId, entity, attributes: { ...attributes, reason: 'unknown_transfer' },
    });
    await reportCase(q, log, {
      kind: 'deposit', cause: 'bank_transfer_unknown_cancellation', subject: { type: 'bank_transfer', id: t.externalId },
      summary: `the bank cancelled a transfer of ${cancel.amount} to ${accountNumber} that we do not know; booked against suspense`,
      details: { account_number: accountNumber, payer_name: cancel.payerName, transaction_date: cancel.transactionDate ?? null },
    });
    return { transfer: t, duplicate: false };
  }

  const shortfall = target.ledgerTransactionId
    ? await reverseDepositCredit(q, {
      transactionId: target.ledgerTransactionId, idempotencyKey: `bank_transfer:${target.externalId}:cancel`,
      description: `transfer ${target.externalId} cancelled by the bank (${cancel.externalId})`, defaultLimit: policy.defaultLimit ?? DEFAULT_BALANCE_LIMIT,
      owner: target.userId ?? '', currency: CURRENCY, credited: target.userId ? target.credited : 0n,
    })
    : 0n;
  const r = await insert('cancellation', 'cancellation', 0n, null, target.externalId);
  if (!r.rows[0]) return { transfer: (await getTransfer(q, cancel.externalId))!, duplicate: true };
  const moved = await q.query<BankTransferRow>(
    `UPDATE bank_transfers SET status = 'cancelled', reason = COALESCE(reason, 'cancellation'), cancelled_by = $2, shortfall = $3::bigint WHERE external_id = $1 RETURNING ${BT_COLUMNS}`,
    [target.externalId, cancel.externalId, shortfall.toString()]);
  const cancelled = toBankTransfer(moved.rows[0]!);
  await publish(q, 'deposit.reversed', bankTransferMessage(cancelled), {
    id: nameBasedId('bank_transfer', cancelled.externalId, 'reversed'), key: cancelled.userId ?? cancelled.externalId,
    entity: { type: 'bank_transfer', id: cancelled.externalId }, attributes: { ...attributes, reason: 'cancellation' },
  });
  const refund = await q.query(`SELECT 1 FROM deposit_refunds WHERE source_type = 'bank_transfer' AND source_id = $1 AND status <> 'failed'`, [target.externalId]);
  if (shortfall > 0n || (refund.rowCount ?? 0) > 0) {
    await reportCase(q, log, {
      kind: 'deposit', cause: shortfall > 0n ? 'bank_transfer_cancel_shortfall' : 'bank_transfer_cancelled_after_refund', subject: { type: 'bank_transfer', id: target.externalId },
      summary: shortfall > 0n
        ? `transfer ${target.externalId} cancelled by the bank after the user spent it: wallet ${shortfall} below zero`
        : `transfer ${target.externalId} cancelled by the bank after a refund of its escrow started`,
      details: { user_id: target.userId, shortfall: shortfall.toString(), cancellation: cancel.externalId },
    });
  }
  return { transfer: toBankTransfer(r.rows[0]), duplicate: false };
}

/**
 * Books one incoming transfer. Never refuses: every transfer ends credited (wallet / escrow) or in
 * a suspense account with its reason. Run it in a transaction (`q` a client inside withTx) to have
 * the booking, the record and the message commit together; importTransferNoticeFile does.
 */
export async function importTransfer(q: Queryable, transfer: IncomingTransfer, policy: BankTransferPolicy = {}): Promise<ImportedTransfer> {
  // It may pay a deposit (row locks, a hold released): always in a transaction, the caller's or its own.
  if (q instanceof pg.Pool) return withTx(q, (tx) => importTransfer(tx, transfer, policy));
  // A second import of this transfer (the same file twice at once) waits here, then finds it booked
  // below, before it could take an awaiting deposit of its own.
  await q.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`bank_transfer:${transfer.externalId}`]);
  const prior = await getTransfer(q, transfer.externalId);
  if (prior) return { transfer: prior, duplicate: true };
  if (transfer.amount < 0n) throw new RangeError(`transfer ${transfer.externalId} has a negative amount`);

  const accountNumber = transfer.account.accountNumber;
  const va = await findVirtualAccount(q, transfer.account);
  const nameOk = va !== null && payerNameMatches(transfer.payerName, va.registeredNameKana);
  const matched = va !== null && (nameOk || (policy.nameMismatch ?? 'suspense') === 'credit');
  const key = `bank_transfer:${transfer.externalId}`;
  const meta = {
    external_id: transfer.externalId, account_number: accountNumber, bank_code: transfer.account.bankCode ?? null,
    branch_code: transfer.account.branchCode ?? null, payer_name: transfer.payerName,
  };

  let status: BankTransferStatus;
  let reason: BankTransferReason | null = va === null ? 'unknown_account' : nameOk ? null : 'name_mismatch';
  let credited = 0n;
  let escrowed = 0n;
  let suspended = 0n;
  let txId: string | null = null;
  let deposit: Deposit | null = null;

  if (transfer.amount === 0n) {
    // Nothing to book (no posting can carry zero); recorded so an operator sees it.
    status = 'suspense';
    reason = 'zero_amount';
  } else if (matched) {
    deposit = await takeAwaitingDeposit(q, va.userId, transfer.amount);
    // Its hold made room for this money; released now, the credit below counts it once.
    if (deposit) await releaseDepositHold(q, deposit, `paid by bank transfer ${transfer.externalId}`, policy.log ?? silentLogger);
    const [clearing] = await ensureAccounts(q, [{ kind: 'clearing', owner: BANK_CLEARING_OWNER, currency: CURRENCY }]);
    const credit = await creditDeposit(q, {
      owner: va.userId, amount: transfer.amount, currency: CURRENCY, sourceAccountId: clearing!.id, idempotencyKey: key, mode: 'unrefusable',
      defaultLimit: policy.defaultLimit ?? DEFAULT_BALANCE_LIMIT, description: `bank transfer ${transfer.externalId}`,
      metadata: { ...meta, user_id: va.userId, deposit_id: deposit?.id ?? null },
    });
    if (!credit.ok) throw new Error(`unrefusable credit of bank transfer ${transfer.externalId} refused: ${credit.error.code}`);
    ({ credited, escrowed, suspended } = credit.value);
    txId = credit.value.transactionId;
    status = suspended > 0n ? 'suspense' : 'credited';
    if (suspended > 0n) reason = 'account_restricted';
  } else {
    const [clearing, suspense] = await ensureAccounts(q, [
      { kind: 'clearing', owner: BANK_CLEARING_OWNER, currency: CURRENCY },
      { kind: 'suspense', owner: UNMATCHED_SUSPENSE_OWNER, currency: CURRENCY },
    ]);
    const posted = await post(q, {
      idempotencyKey: key, kind: 'bank_transfer_unmatched', description: `unmatched bank transfer ${transfer.externalId} (${reason})`,
      metadata: { ...meta, reason, user_id: va?.userId ?? null },
      entries: [{ accountId: clearing!.id, amount: -transfer.amount }, { accountId: suspense!.id, amount: transfer.amount }],
    });
    // Neither a clearing nor a suspense account has a limit, funds check or restriction.
    if (!posted.ok) throw new Error(`posting unmatched bank transfer ${transfer.externalId} refused: ${posted.error.code}`);
    suspended = transfer.amount;
    txId = posted.value.transactionId;
    status = 'suspense';
  }

  const r = await q.query<BankTransferRow>({
    name: 'bank_transfer_insert', text: INSERT_TRANSFER,
    values: [
      transfer.externalId, accountNumber, transfer.amount.toString(), CURRENCY, transfer.payerName, transfer.transactionDate ?? null,
      status, reason, va?.userId ?? null, credited.toString(), escrowed.toString(), suspended.toString(), txId, deposit?.id ?? null,
      ...accountColumns(transfer.account),
    ],
  });
  if (!r.rows[0]) {
    // Another import of the same transfer won (the advisory lock above makes this a bug): the ledger
    // key made our posting its replay, but a deposit's released hold must not be committed.
    if (deposit) throw new Error(`bank transfer ${transfer.externalId} was booked concurrently while paying deposit ${deposit.id}`);
    return { transfer: (await getTransfer(q, transfer.externalId))!, duplicate: true };
  }
  const t = toBankTransfer(r.rows[0]);
  const entity = { type: 'bank_transfer', id: t.externalId };
  const attributes = { method: 'bank_transfer', provider: 'zengin' };
  if (deposit) {
    await settleDeposit(q, deposit, t);
  } else if (matched && transfer.amount > 0n) {
    await publish(q, 'deposit.succeeded', bankTransferMessage(t), { id: nameBasedId('bank_transfer', t.externalId, 'succeeded'), key: t.userId ?? t.externalId, entity, attributes });
    if (t.escrowed > 0n) {
      await publish(q, 'deposit.escrowed', bankTransferMessage(t), { id: nameBasedId('bank_transfer', t.externalId, 'escrowed'), key: t.userId ?? t.externalId, entity, attributes });
    }
  } else {
    await publish(q, 'bank_transfer.unmatched', bankTransferMessage(t), {
      id: nameBasedId('bank_transfer', t.externalId, 'unmatched'), key: t.externalId, entity, attributes: { ...attributes, reason: t.reason ?? 'unknown' },
    });
  }
  return { transfer: t, duplicate: false };
}

// The deposit a matched transfer pays: the user's oldest awaiting bank-transfer deposit of that
// amount, locked. SKIP LOCKED: one that another transfer is paying, or the expiry job expiring,
// right now is not waited for (the next one is taken, or none: the transfer is then booked on its
// own). Waiting could deadlock, since a file import may already hold wallets the other side wants.
const AWAITING_DEPOSIT = `
SELECT ${DEPOSIT_COLUMNS} FROM deposits
WHERE user_id = $1 AND currency = $2 AND amount = $3::bigint AND method = 'bank_transfer' AND status = 'awaiting_payment'
ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`;

async function takeAwaitingDeposit(tx: Tx, userId: string, amount: bigint): Promise<Deposit | null> {
  const r = await tx.query<DepositRow>({ name: 'bank_transfer_awaiting_deposit', text: AWAITING_DEPOSIT, values: [userId, CURRENCY, amount.toString()] });
  return r.rows[0] ? toDeposit(r.rows[0]) : null;
}

/** The deposit `t` paid succeeds with t's booking (its ledger transaction, wallet / escrow / suspense split). */
async function settleDeposit(tx: Tx, d: Deposit, t: BankTransfer): Promise<void> {
  // Paid before the expiry job got to it: booked all the same, and said so.
  const late = d.paymentDeadline !== null && t.receivedAt > d.paymentDeadline;
  if (late) await tx.query('UPDATE deposits SET paid_after_deadline = true WHERE id = $1', [d.id]);
  const moved = await transitionDeposit(tx, d.id, 'awaiting_payment', 'succeeded',
    `bank transfer ${t.externalId}${late ? ' (after the deadline)' : ''}${t.escrowed > 0n ? `; ${t.escrowed} over the limit to escrow` : ''}${t.suspended > 0n ? `; ${t.suspended} to suspense (${t.reason ?? 'restricted'})` : ''}`,
    { providerPaymentId: t.externalId, credited: t.credited, escrowed: t.escrowed, suspended: t.suspended, ledgerTransactionId: t.ledgerTransactionId ?? undefined });
  if (!moved) throw new Error(`deposit ${d.id} left awaiting_payment while locked`);
  await publishDeposit(tx, 'deposit.succeeded', moved, 'succeeded');
  if (moved.escrowed > 0n) await publishDeposit(tx, 'deposit.escrowed', moved, 'escrowed');
}

export interface ImportCounts {
  credited: number;
  suspense: number;
  duplicates: number;
  /** Cancellation records (取消) whose transfer was found and reversed. */
  cancellations: number;
  /** Cancellation records naming no transfer we know: booked against suspense and reported. */
  unmatchedCancellations: number;
}

/**
 * Imports a Zengin transfer-notice file: a malformed file is refused whole with the parser's
 * line and field; otherwise every transfer is imported in ONE transaction (all or nothing).
 * With a pool, the transaction is opened here; with a client, the caller's transaction is used.
 * Files are imported one at a time (file-import-queue.ts says why); a file whose every record is
 * already booked (a copy the bank sent again) is answered without waiting for the others.
 */
export async function importTransferNoticeFile(
  q: Queryable, buffer: Uint8Array, policy: BankTransferPolicy = {}, parseOptions: ParseTransferNoticeOptions = {},
): Promise<Result<ImportCounts, ZenginParseError>> {
  const parsed = parseTransferNotice(buffer, parseOptions);
  if (!parsed.ok) return err(parsed.error);
  const transfers: readonly TransferNotice[] = parsed.value.transfers;
  if (!(q instanceof pg.Pool)) return ok(await importRecords(q, transfers, policy));
  const known = await knownRecords(q, transfers.map((t) => t.externalId));
  if (transfers.every((t) => known.has(t.externalId))) return ok({ ...NO_COUNTS, duplicates: transfers.length });
  return ok(await queued(q, () => withTxRetried(q, (tx) => importRecords(tx, transfers, policy))));
}

const NO_COUNTS: ImportCounts = { credited: 0, suspense: 0, duplicates: 0, cancellations: 0, unmatchedCancellations: 0 };

/** Books a file's records in order in `tx`, under the file-import lock; records already booked count as duplicates. */
async function importRecords(tx: Tx, transfers: readonly TransferNotice[], policy: BankTransferPolicy): Promise<ImportCounts> {
  await tx.query(FILE_IMPORT_LOCK);
  const known = await knownRecords(tx, transfers.map((t) => t.externalId));
  const counts: ImportCounts = { ...NO_COUNTS };
  for (const t of transfers) {
    if (known.has(t.externalId)) {
      counts.duplicates++;
      continue;
    }
    if (t.cancelled) {
      const c = await importCancellation(tx, t, policy);
      if (c.duplicate) counts.duplicates++;
      else if (c.transfer.status === 'cancellation') counts.cancellations++;
      else counts.unmatchedCancellations++;
      continue;
    }
    const r = await importTransfer(tx, t, policy);
    if (r.duplicate) counts.duplicates++;
    else counts[r.transfer.status === 'credited' ? 'credited' : 'suspense']++;
  }
  return counts;
}

export interface ListBankTransfersOptions {
  status?: BankTransferStatus | undefined;
  userId?: string | undefined;
  limit?: number | undefined;
  /** The external id of the last transfer of the previous page. */
  startingAfter?: string | undefined;
}

export async function listBankTransfers(q: Queryable, o: ListBankTransfersOptions = {}): Promise<BankTransfer[]> {
  const limit = Math.min(Math.max(o.limit ?? 50, 1), 501);
  const r = await q.query<BankTransferRow>(
    `SELECT ${BT_COLUMNS} FROM bank_transfers WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR user_id = $2)
       AND ($3::text IS NULL OR (received_at, external_id) < (SELECT received_at, external_id FROM bank_transfers WHERE external_id = $3))
     ORDER BY received_at DESC, external_id DESC LIMIT $4`, [o.status ?? null, o.userId ?? null, o.startingAfter ?? null, limit]);
  return r.rows.map(toBankTransfer);
}
