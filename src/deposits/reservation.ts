// Deposits, pre-reservation flow (konbini, Pay-easy; 事前予約型).
//
//   tx1  under the wallet's balance-row lock: limit pre-check (posted + incoming holds + deposits in
//        flight + this one ≤ limit); insert the deposit; place an incoming HOLD for the amount (a
//        pending reservation counts toward the limit, C2); record the `reserve` operation
//        (idempotency key `deposit:<id>`, externalOrderNum = the deposit id, so webhooks map back);
//        deposit → processing.
//   ---  the reservation, outside any transaction (operations.execute).
//   tx2  onResult('reserve'): succeeded → awaiting_payment with the payment number / receipt codes
//        and the deadline; failed → hold released, failed. Unknown → the janitor's inquiry (or a
//        `reservation.created` webhook making it due), exactly as for cards.
//
// Paid notices come only as webhooks and cannot be refused (the money is at the till), so each is
// applied in the inbox worker's transaction, under the deposit's row lock, from the deposit's
// status: a duplicate or a notice overtaken by a later one finds the deposit elsewhere and changes
// nothing.
//   速報 (payment.paid_preliminary): creditOn 'preliminary' → release the hold and credit
//        (unrefusable: over the limit → escrow, C3) → paid_preliminary; creditOn 'final' → just
//        paid_preliminary (the hold keeps counting).
//   確報 (payment.succeeded): credit unless already credited at the 速報 → succeeded. After expiry
//        or cancellation too (paid_after_deadline), never refused.
//   速報取消 (payment.preliminary_cancelled): reverse the credit (enforce off: the money is gone, so a
//        wallet that spent it goes below zero; the shortfall is recorded), place the hold again,
//        deposit → awaiting_payment (the reservation still stands: the customer may pay again; a
//        later credit uses a fresh ledger key). A 速報取消 that overtakes its 速報 is remembered and
//        absorbs that 速報.
//   expired / cancelled: release the hold (reverse an uncommitted preliminary credit) → expired / cancelled.
import type pg from 'pg';
import { withTx, type Tx } from '../kernel/db.ts';
import { BadRequestError, type Result } from '../kernel/errors.ts';
import { isUuid } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import type { EventHandlers } from '../intake/handlers.ts';
import {
  creditDeposit, ensureAccount, ensureAccounts, placeHold,
} from '../ledger/index.ts';
import type { Operation, Operations } from '../operations/index.ts';
import type { CanonicalEvent } from '../providers/types.ts';
import {
  DEPOSIT_COLUMNS, toDeposit, transitionDeposit, type Deposit, type DepositRow, type DepositStatus,
} from './state.ts';
import type { CreateDepositError } from './deposits.ts';
import { admitDeposit, checkDepositInput, publishDeposit, recordThenSend, Refused, releaseDepositHold } from './flow.ts';
import { reverseDepositCredit } from './reverse-credit.ts';

export type CreditOn = 'preliminary' | 'final';
export type ReservationMethod = 'konbini' | 'payeasy';
export const RESERVATION_METHODS: readonly ReservationMethod[] = ['konbini', 'payeasy'];

export interface ReservationsEngine {
  db: { pool: pg.Pool };
  log: Logger;
  operations: Operations;
  handlers: EventHandlers;
}

export interface ReservationsOptions {
  /** The provider that makes konbini / Pay-easy reservations (its name in the config), e.g. 'komoju'. */
  provider: string;
  /** Which paid notice credits the wallet. */
  creditOn: CreditOn;
  defaultLimit: bigint;
  maxAmount: bigint;
}

export interface ReservationDepositInput {
  userId: string;
  method: ReservationMethod;
  amount: bigint;
  currency?: string | undefined;
  email: string;
  /** Konbini chain (required for konbini). */
  store?: string | undefined;
  clientKey?: string | undefined;
}

export interface Reservations {
  createReservationDeposit(input: ReservationDepositInput): Promise<Result<Deposit, CreateDepositError>>;
}

const INSTRUCTION_KEYS = ['store', 'receipt', 'confirmation_code', 'instructions_url', 'bank_id', 'customer_id', 'confirmation_id'] as const;

export function createReservations(engine: ReservationsEngine, opts: ReservationsOptions): Reservations {
  const pool = engine.db.pool;
  const { operations, log } = engine;
  const { provider, creditOn, defaultLimit, maxAmount } = opts;

  // ---- tx1
  async function record(input: ReservationDepositInput, currency: string): Promise<{ deposit: Deposit; operationId: string | null }> {
    return withTx(pool, async (tx) => {
      const admitted = await admitDeposit(tx, {
        userId: input.userId, method: input.method, amount: input.amount, currency, provider, clientKey: input.clientKey,
      }, defaultLimit);
      if ('existing' in admitted) return { deposit: admitted.existing, operationId: null };
      const { id } = admitted;
      const hold = await placeHold(tx, {
        idempotencyKey: `deposit:${id}:hold`, accountId: admitted.walletId, counterAccountId: admitted.clearingId, direction: 'in',
        amount: input.amount, defaultLimit, cause: `${input.method} reservation ${id}`,
      });
      if (!hold.ok) {
        if (hold.error.code === 'account_restricted') throw new Refused({ code: 'account_restricted' });
        throw new Refused({ code: 'balance_limit_exceeded', headroom: 'headroom' in hold.error ? hold.error.headroom : 0n });
      }
      await tx.query('UPDATE deposits SET hold_id = $2 WHERE id = $1', [id, hold.value.hold.id]);
      const { operation } = await operations.record(tx, {
        provider, kind: 'reserve', idempotencyKey: `deposit:${id}`, entity: { type: 'deposit', id },
        request: {
          method: input.method, amount: input.amount.toString(), currency, email: input.email,
          ...(input.store !== undefined ? { store: input.store } : {}), externalOrderNum: id, metadata: { deposit_id: id },
        },
      });
      const moved = await transitionDeposit(tx, id, 'pending', 'processing', `reservation recorded (operation ${operation.id})`, { operationId: operation.id });
      return { deposit: moved!, operationId: operation.id };
    });
  }

  async function createReservationDeposit(input: ReservationDepositInput): Promise<Result<Deposit, CreateDepositError>> {
    const currency = input.currency ?? 'JPY';
    checkDepositInput(input, maxAmount);
    if (currency !== 'JPY') throw new BadRequestError('invalid_currency', `${input.method} deposits are in JPY only`);
    if (!RESERVATION_METHODS.includes(input.method)) throw new BadRequestError('invalid_method', `not a reservation method: ${String(input.method)}`);
    if (!/^[^@\s]+@[^@\s]+$/.test(input.email)) throw new BadRequestError('invalid_email', 'a valid email is required');
    if (input.method === 'konbini' && !input.store) throw new BadRequestError('store_required', 'a konbini deposit needs store');

    return recordThenSend({ pool, operations, log }, 'reservation', () => record(input, currency));
  }

  // ---- helpers inside a locked deposit
  async function lockDeposit(tx: Tx, where: string, value: string): Promise<Deposit | null> {
    const r = await tx.query<DepositRow>(
      `SELECT ${DEPOSIT_COLUMNS} FROM deposits WHERE ${where} = $1 AND provider = $2 AND method = ANY($3::text[]) FOR UPDATE`,
      [value, provider, RESERVATION_METHODS]);
    return r.rows[0] ? toDeposit(r.rows[0]) : null;
  }

  const dropHold = (tx: Tx, d: Deposit, cause: string) => releaseDepositHold(tx, d, cause, log);

  /** Releases the hold and credits the deposit (unrefusable: over the limit → escrow). */
  async function credit(tx: Tx, d: Deposit, notice: 'preliminary' | 'final', why: string) {
    await dropHold(tx, d, `deposit ${d.id} paid (${notice})`);
    const clearing = await ensureAccount(tx, { kind: 'clearing', owner: provider, currency: d.currency });
    const key = d.creditAttempt === 0 ? `deposit:${d.id}:credit` : `deposit:${d.id}:credit:${d.creditAttempt}`;
    const c = await creditDeposit(tx, {
      owner: d.userId, amount: d.amount, currency: d.currency, sourceAccountId: clearing.id, idempotencyKey: key,
      mode: 'unrefusable', defaultLimit, description: `${d.method} deposit ${d.id} (${why})`,
      metadata: { deposit_id: d.id, provider, provider_payment_id: d.providerPaymentId, notice },
    });
    if (!c.ok) throw new Error(`unrefusable credit of deposit ${d.id} refused: ${c.error.code}`);
    await tx.query('UPDATE deposits SET credited_at_notice = $2 WHERE id = $1', [d.id, notice]);
    return c.value;
  }

  /** Undoes a preliminary credit; returns how far below zero it took the wallet. */
  async function uncredit(tx: Tx, d: Deposit, why: string): Promise<bigint> {
    if (!d.ledgerTransactionId) return 0n;
    const shortfall = await reverseDepositCredit(tx, {
      transactionId: d.ledgerTransactionId, idempotencyKey: `deposit:${d.id}:reverse:${d.creditAttempt}`, description: `${why}: deposit ${d.id}`,
      defaultLimit, owner: d.userId, currency: d.currency, credited: d.credited,
    });
    await tx.query(
      `UPDATE deposits SET credited = 0, escrowed = 0, suspended = 0, ledger_transaction_id = NULL, credited_at_notice = NULL,
         credit_attempt = credit_attempt + 1, shortfall = shortfall + $2::bigint WHERE id = $1`, [d.id, shortfall.toString()]);
    if (shortfall > 0n) log.warn({ depositId: d.id, userId: d.userId, shortfall: shortfall.toString() }, 'reversed preliminary credit took the wallet below zero');
    return shortfall;
  }

  async function reholdAfterCancel(tx: Tx, d: Deposit): Promise<void> {
    const [wallet, clearing] = await ensureAccounts(tx, [
      { kind: 'wallet', owner: d.userId, currency: d.currency }, { kind: 'clearing', owner: provider, currency: d.currency },
    ]);
    const hold = await placeHold(tx, {
      idempotencyKey: `deposit:${d.id}:hold:${d.creditAttempt + 1}`, accountId: wallet!.id, counterAccountId: clearing!.id, direction: 'in',
      amount: d.amount, defaultLimit, cause: `${d.method} reservation ${d.id} awaiting payment again`,
    });
    // Refused (the wallet filled up meanwhile): without a hold the deposit still counts as in flight.
    if (hold.ok) await tx.query('UPDATE deposits SET hold_id = $2 WHERE id = $1', [d.id, hold.value.hold.id]);
  }

  // ---- tx2: the reservation's final outcome
  async function onReserveResult(tx: Tx, op: Operation): Promise<void> {
    if (op.provider !== provider || op.entity_type !== 'deposit') return;
    const d = await lockDeposit(tx, 'operation_id', op.id);
    if (!d) return;
    const response = op.response ?? {};
    const paymentId = typeof response.provider_payment_id === 'string' ? response.provider_payment_id : undefined;
    if (op.status === 'succeeded') {
      const instructions: Record<string, string> = {};
      for (const k of INSTRUCTION_KEYS) if (typeof response[k] === 'string' && response[k] !== '') instructions[k] = response[k];
      const deadline = typeof response.payment_deadline === 'string' ? response.payment_deadline : null;
      await tx.query(
        `UPDATE deposits SET payment_instructions = $2::jsonb, payment_deadline = $3::timestamptz,
           provider_payment_id = COALESCE(provider_payment_id, $4) WHERE id = $1`,
        [d.id, JSON.stringify(instructions), deadline, paymentId ?? null]);
      if (d.status !== 'processing' && d.status !== 'unknown') return; // a paid notice overtook the answer
      const moved = await transitionDeposit(tx, d.id, d.status, 'awaiting_payment', `reserved (operation ${op.id})`, { providerPaymentId: paymentId });
      if (!moved) throw new Error(`deposit ${d.id} left ${d.status} while locked`);
      await publishDeposit(tx, 'deposit.awaiting_payment', moved);
    } else if (op.status === 'failed') {
      if (d.status !== 'processing' && d.status !== 'unknown') {
        log.error({ depositId: d.id, operationId: op.id, status: d.status }, 'reservation failed for a deposit already moved on; ignored');
        return;
      }
      await dropHold(tx, d, `reservation failed (operation ${op.id})`);
      const moved = await transitionDeposit(tx, d.id, d.status, 'failed', `reservation failed (operation ${op.id})`, {
        failureCode: op.error_code ?? 'reservation_failed', failureMessage: op.error_message ?? 'the reservation failed',
      });
      if (!moved) throw new Error(`deposit ${d.id} left ${d.status} while locked`);
      await publishDeposit(tx, 'deposit.failed', moved);
    }
  }
  operations.onResult('reserve', onReserveResult);

  // ---- paid notices and the reservation's end (webhooks, in the inbox worker's transaction)
  const WAITING: readonly DepositStatus[] = ['processing', 'unknown', 'awaiting_payment'];

  async function onNotice(ctx: { tx: Tx; log: Logger }, event: CanonicalEvent, meta: { provider: string; eventId: string }): Promise<void> {
    if (meta.provider !== provider) return;
    const orderNum = event.data.external_order_num;
    if (typeof orderNum !== 'string' || !isUuid(orderNum)) return;
    const tx = ctx.tx;
    const d = await lockDeposit(tx, 'id', orderNum);
    if (!d) return;
    const paymentId = typeof event.data.provider_payment_id === 'string' ? event.data.provider_payment_id : undefined;
    const at = `${event.type} (event ${meta.eventId})`;
    const ignore = (why: string) => ctx.log.info({ depositId: d.id, status: d.status, event: event.type, eventId: meta.eventId }, `reservation notice ignored: ${why}`);

    switch (event.type) {
      case 'reservation.created': {
        if ((d.status === 'processing' || d.status === 'unknown') && d.operationId) await operations.inquireSoon(tx, d.operationId);
        return;
      }
      case 'payment.paid_preliminary': {
        if (!WAITING.includes(d.status)) return ignore('not awaiting payment (duplicate or overtaken)');
        if (d.earlyPreliminaryCancels > 0) {
          await tx.query('UPDATE deposits SET early_preliminary_cancels = early_preliminary_cancels - 1 WHERE id = $1', [d.id]);
          return ignore('absorbed by a preliminary cancellation that arrived first');
        }
        if (creditOn === 'preliminary') {
          const c = await credit(tx, d, 'preliminary', 'preliminary paid notice');
          const moved = await transitionDeposit(tx, d.id, d.status, 'paid_preliminary', `${at}: credited${c.escrowed > 0n ? `; ${c.escrowed} over the limit to escrow` : ''}`,
            { providerPaymentId: paymentId, credited: c.credited, escrowed: c.escrowed, suspended: c.suspended, ledgerTransactionId: c.transactionId });
          await publishDeposit(tx, 'deposit.paid_preliminary', moved!, `paid_preliminary:${d.creditAttempt}`);
          if (c.escrowed > 0n) await publishDeposit(tx, 'deposit.escrowed', moved!, `escrowed:${d.creditAttempt}`);
        } else {
          const moved = await transitionDeposit(tx, d.id, d.status, 'paid_preliminary', `${at}: recorded, credit waits for the final notice`, { providerPaymentId: paymentId });
          await publishDeposit(tx, 'deposit.paid_preliminary', moved!, `paid_preliminary:${d.creditAttempt}`);
        }
        return;
      }
      case 'payment.succeeded': {
        if (d.status === 'succeeded') return ignore('already succeeded');
        if (d.status === 'failed' || d.status === 'pending') {
          ctx.log.error({ depositId: d.id, status: d.status, eventId: meta.eventId }, 'final paid notice for a deposit that is not a live reservation');
          return;
        }
        const afterDeadline = d.status === 'expired' || d.status === 'cancelled' || event.data.paid_after_deadline === true;
        if (afterDeadline) await tx.query('UPDATE deposits SET paid_after_deadline = true WHERE id = $1', [d.id]);
        let moved: Deposit | null;
        let escrowed = 0n;
        if (d.ledgerTransactionId !== null) {
          moved = await transitionDeposit(tx, d.id, d.status, 'succeeded', `${at}: confirmed, already credited at the preliminary notice`, { providerPaymentId: paymentId });
        } else {
          const c = await credit(tx, d, 'final', afterDeadline ? 'paid after the deadline' : 'final paid notice');
          escrowed = c.escrowed;
          moved = await transitionDeposit(tx, d.id, d.status, 'succeeded',
            `${at}: credited${afterDeadline ? ' (paid after the deadline)' : ''}${c.escrowed > 0n ? `; ${c.escrowed} over the limit to escrow` : ''}`,
            { providerPaymentId: paymentId, credited: c.credited, escrowed: c.escrowed, suspended: c.suspended, ledgerTransactionId: c.transactionId });
        }
        await publishDeposit(tx, 'deposit.succeeded', moved!, 'succeeded');
        if (escrowed > 0n) await publishDeposit(tx, 'deposit.escrowed', moved!, 'escrowed:final');
        return;
      }
      case 'payment.preliminary_cancelled': {
        if (d.status === 'paid_preliminary') {
          const shortfall = d.ledgerTransactionId ? await uncredit(tx, d, 'preliminary paid notice cancelled') : 0n;
          // creditOn 'final': the hold is still there; otherwise it went at the credit and comes back.
          if (!d.holdId) await reholdAfterCancel(tx, d);
          const moved = await transitionDeposit(tx, d.id, 'paid_preliminary', 'awaiting_payment',
            `${at}${d.ledgerTransactionId ? ': credit reversed' : ''}${shortfall > 0n ? `; wallet ${shortfall} below zero` : ''}`);
          await publishDeposit(tx, 'deposit.preliminary_cancelled', moved!, `preliminary_cancelled:${d.creditAttempt}`);
        } else if (WAITING.includes(d.status)) {
          await tx.query('UPDATE deposits SET early_preliminary_cancels = early_preliminary_cancels + 1 WHERE id = $1', [d.id]);
          ignore('arrived before its preliminary notice: remembered');
        } else {
          ctx.log.warn({ depositId: d.id, status: d.status, eventId: meta.eventId }, 'preliminary cancellation for a deposit past it; ignored');
        }
        return;
      }
      case 'reservation.expired':
      case 'reservation.cancelled': {
        const to: DepositStatus = event.type === 'reservation.expired' ? 'expired' : 'cancelled';
        if (![...WAITING, 'paid_preliminary'].includes(d.status)) return ignore(`not awaiting payment`);
        if (d.ledgerTransactionId) await uncredit(tx, d, `reservation ${to} after a preliminary notice`);
        await dropHold(tx, d, `reservation ${to}`);
        const moved = await transitionDeposit(tx, d.id, d.status, to, at, { providerPaymentId: paymentId });
        await publishDeposit(tx, `deposit.${to}`, moved!);
        return;
      }
    }
  }
  for (const type of ['reservation.created', 'payment.paid_preliminary', 'payment.succeeded', 'payment.preliminary_cancelled', 'reservation.expired', 'reservation.cancelled']) {
    engine.handlers.on(type, onNotice);
  }

  return { createReservationDeposit };
}
