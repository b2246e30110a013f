// Bank-transfer deposits asked for in advance (銀行振込): the push
// payment's "intent". The user says in the app how much they will transfer; we answer with where to
// transfer it (their own virtual account) and until when, and an incoming hold makes the amount count
// toward the limit meanwhile, exactly as a konbini reservation does (reservation.ts). There is no
// provider to ask, so the deposit awaits payment as soon as it is recorded:
//
//   tx1  under the wallet's balance-row lock (admitDeposit): the limit pre-check, the deposit, its
//        incoming hold, the instructions and the deadline; pending → awaiting_payment;
//        `deposit.awaiting_payment`.                                              (one transaction)
//   ---  the user transfers from any bank. importTransfer (bank-transfer.ts), whatever brought the
//        transfer in, pays the user's oldest awaiting deposit of that amount in the transaction that
//        books it: hold released, credit, deposit → succeeded, `deposit.succeeded` with its id.
//   job  past the deadline: hold released, → expired, `deposit.expired`. A transfer that comes later
//        is booked on its own, as an unannounced one is (credit up to the limit, the rest to escrow).
//
// Transfers are never refused, and nothing here changes that: a transfer of another amount, from
// another name or to no known account is booked exactly as if no deposit had been asked for.
import type pg from 'pg';
import { withTx } from '../kernel/db.ts';
import { BadRequestError, type Result } from '../kernel/errors.ts';
import type { Logger } from '../kernel/logger.ts';
import { placeHold } from '../ledger/index.ts';
import { BANK_CLEARING_OWNER, getVirtualAccountByUser } from './bank-transfer.ts';
import type { CreateDepositError } from './deposits.ts';
import { admitDeposit, checkDepositInput, publishDeposit, recordThenSend, Refused, releaseDepositHold } from './flow.ts';
import type { Operations } from '../operations/index.ts';
import { DEPOSIT_COLUMNS, toDeposit, transitionDeposit, type Deposit, type DepositRow } from './state.ts';

export const DEFAULT_BANK_TRANSFER_EXPIRY_MS = 7 * 24 * 3_600_000;

export interface BankTransferDepositInput {
  userId: string;
  amount: bigint;
  currency?: string | undefined;
  clientKey?: string | undefined;
}

export interface BankTransferDepositsOptions {
  defaultLimit: bigint;
  maxAmount: bigint;
  /** How long the user has to transfer (deposits.bankTransferExpiryMs). */
  expiryMs: number;
}

export interface BankTransferDeposits {
  createBankTransferDeposit(input: BankTransferDepositInput): Promise<Result<Deposit, CreateDepositError>>;
  /** Expires awaiting bank-transfer deposits past their deadline; a periodic job. Returns how many. */
  expireOnce(limit?: number): Promise<number>;
}

// An awaiting bank-transfer deposit past its deadline, taken by one worker (SKIP LOCKED: a transfer
// paying it right now keeps it). One per transaction, so the job never holds one user's wallet
// while waiting for another's (a file import may lock them in any order).
const OVERDUE = `
SELECT ${DEPOSIT_COLUMNS} FROM deposits
WHERE method = 'bank_transfer' AND status = 'awaiting_payment' AND payment_deadline < now()
ORDER BY payment_deadline LIMIT 1 FOR UPDATE SKIP LOCKED`;

export function createBankTransferDeposits(
  engine: { db: { pool: pg.Pool }; log: Logger; operations: Operations }, opts: BankTransferDepositsOptions,
): BankTransferDeposits {
  const pool = engine.db.pool;
  const { log, operations } = engine;
  const { defaultLimit, maxAmount, expiryMs } = opts;

  // ---- tx1
  const record = (input: BankTransferDepositInput, currency: string) => withTx(pool, async (tx) => {
    // Checked first: a user without an account has nowhere to transfer to (and made no deposit before).
    const va = await getVirtualAccountByUser(tx, input.userId);
    if (!va) throw new Refused({ code: 'virtual_account_required' });
    const admitted = await admitDeposit(tx, {
      userId: input.userId, method: 'bank_transfer', amount: input.amount, currency, provider: BANK_CLEARING_OWNER, clientKey: input.clientKey,
    }, defaultLimit);
    if ('existing' in admitted) return { deposit: admitted.existing, operationId: null };
    const { id } = admitted;
    const hold = await placeHold(tx, {
      idempotencyKey: `deposit:${id}:hold`, accountId: admitted.walletId, counterAccountId: admitted.clearingId, direction: 'in',
      amount: input.amount, defaultLimit, cause: `bank transfer deposit ${id}`,
    });
    if (!hold.ok) {
      if (hold.error.code === 'account_restricted') throw new Refused({ code: 'account_restricted' });
      throw new Refused({ code: 'balance_limit_exceeded', headroom: 'headroom' in hold.error ? hold.error.headroom : 0n });
    }
    // Where to transfer, and as whom: the payer's name is compared with the registered one (payer-name.ts).
    const instructions = {
      bank_code: va.bankCode, branch_code: va.branchCode, account_type: va.accountType, account_number: va.accountNumber, payer_name_kana: va.registeredNameKana,
    };
    await tx.query(
      `UPDATE deposits SET hold_id = $2, payment_instructions = $3::jsonb, payment_deadline = now() + $4::bigint * interval '1 millisecond' WHERE id = $1`,
      [id, hold.value.hold.id, JSON.stringify(instructions), String(expiryMs)]);
    const moved = await transitionDeposit(tx, id, 'pending', 'awaiting_payment', `awaiting a transfer to virtual account ${va.accountNumber}`);
    await publishDeposit(tx, 'deposit.awaiting_payment', moved!);
    return { deposit: moved!, operationId: null };
  });

  return {
    async createBankTransferDeposit(input) {
      const currency = input.currency ?? 'JPY';
      checkDepositInput(input, maxAmount);
      // Virtual accounts take yen only (a Zengin transfer-notice file has no currency).
      if (currency !== 'JPY') throw new BadRequestError('invalid_currency', 'bank transfer deposits are in JPY only');
      // No provider call: recordThenSend only turns a refusal into a value.
      return recordThenSend({ pool, operations, log }, 'bank transfer', () => record(input, currency));
    },

    async expireOnce(limit = 100) {
      let n = 0;
      while (n < limit) {
        const expired = await withTx(pool, async (tx) => {
          const r = await tx.query<DepositRow>(OVERDUE);
          if (!r.rows[0]) return false;
          const d = toDeposit(r.rows[0]);
          await releaseDepositHold(tx, d, `bank transfer deposit ${d.id} expired`, log);
          const moved = await transitionDeposit(tx, d.id, 'awaiting_payment', 'expired', 'no transfer by the payment deadline');
          await publishDeposit(tx, 'deposit.expired', moved!);
          return true;
        });
        if (!expired) break;
        n++;
      }
      return n;
    },
  };
}
