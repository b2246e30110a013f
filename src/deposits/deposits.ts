// Deposits, realtime (card) flow (リアルタイム型).
//
//   tx1  validate; limit pre-check under the wallet's balance-row lock; insert the deposit
//        (pending); record the `charge` operation; deposit → processing.        (one transaction)
//   ---  the charge, outside any transaction (operations.execute).
//   tx2  the operation's final transition runs our onResult handler in ITS transaction: credit the
//        wallet (unrefusable: the card was charged, so the money is booked; over the limit goes to
//        escrow), deposit → succeeded / failed, publish deposit.succeeded / deposit.failed.
//   tx3  user notification = delivery of those outbox messages, by the outbox workers: a failing
//        notification never touches the credit (D4).
//
// Unknown outcomes (timeout on the return path): the operation becomes `unknown` (not final, so
// no onResult); the deposit follows it to `unknown` right after execute returns (and syncOnce
// catches the cases execute did not see, e.g. the janitor declaring an abandoned call unknown).
// Three things can resolve it — the janitor's inquiry, a late provider webhook, the direct answer —
// and all go through ONE path: the operation's conditional transition unknown → final, whose
// onResult runs exactly once. The webhook handler does not resolve anything itself: it runs in the
// inbox worker's transaction, while Operations.transition opens its own, so it only makes the
// operation's inquiry due now (in the inbox transaction, so it happens iff the event is processed)
// and wakes the `operations` channel after commit; the janitor's inquiry then resolves it.
// Exactly one credit: onResult runs once per operation; the credit has the idempotency key
// `deposit:<id>:credit`; the deposit moves with a conditional UPDATE from processing/unknown.
import type pg from 'pg';
import { withTx, type Tx } from '../kernel/db.ts';
import { BadRequestError, type Result } from '../kernel/errors.ts';
import { isUuid, nameBasedId } from '../kernel/ids.ts';
import type { Logger } from '../kernel/logger.ts';
import type { EventHandlers } from '../intake/handlers.ts';
import { creditDeposit, ensureAccount, DEFAULT_BALANCE_LIMIT } from '../ledger/index.ts';
import type { Operation, Operations } from '../operations/index.ts';
import { publish } from '../outbox/publish.ts';
import type { CanonicalEvent } from '../providers/types.ts';
import { registerBankTransferWebhooks } from './bank-transfer-webhook.ts';
import type { BankTransferPolicy } from './bank-transfer.ts';
import { createReservations, type CreditOn, type ReservationDepositInput } from './reservation.ts';
import { createBankTransferDeposits, DEFAULT_BANK_TRANSFER_EXPIRY_MS, type BankTransferDepositInput } from './bank-transfer-deposit.ts';
import {
  DEPOSIT_COLUMNS, depositMessage, toDeposit, transitionDeposit, type Deposit, type DepositRow, type DepositStatus,
} from './state.ts';
import { admitDeposit, checkDepositInput, loadDeposit, recordThenSend } from './flow.ts';

/** What createDeposits needs from the engine (an Engine satisfies it). */
export interface DepositsEngine {
  db: { pool: pg.Pool };
  log: Logger;
  operations: Operations;
  handlers: EventHandlers;
}

export interface DepositsOptions {
  /** The provider that makes card charges, e.g. 'stripe' (its name in the config). */
  provider: string;
  /** The wallet limit without a per-user override; the ledger's default (¥1,000,000) if not given. */
  defaultLimit?: bigint | undefined;
  /** The largest single deposit; default ¥10,000,000. */
  maxAmount?: bigint | undefined;
  /** The provider that makes konbini / Pay-easy reservations (reservation.ts); default 'komoju'. */
  reservationProvider?: string | undefined;
  /** Which paid notice of a reservation credits the wallet; default 'preliminary' (速報). */
  creditOn?: CreditOn | undefined;
  /** How long a bank-transfer deposit waits for its transfer (bank-transfer-deposit.ts); default 7 days. */
  bankTransferExpiryMs?: number | undefined;
  /** The provider whose `bank_transfer.*` webhooks book incoming transfers (bank-transfer-webhook.ts); none if not given. */
  bankTransferProvider?: string | undefined;
  /** How those transfers are booked: the file import's policy (the engine's bankTransferPolicy); default: the limit above. */
  bankTransferPolicy?: BankTransferPolicy | undefined;
}

export interface CardDepositInput {
  userId: string;
  amount: bigint;
  currency?: string | undefined;
  paymentMethod: string;
  /** The caller's idempotency key: the same key for the same user returns the first deposit. */
  clientKey?: string | undefined;
}

/** Expected refusals at request time: nothing was created, nothing was charged. */
export type CreateDepositError =
  | { code: 'balance_limit_exceeded'; headroom: bigint }
  | { code: 'account_restricted' }
  | { code: 'client_key_reused'; depositId: string }
  /** A bank-transfer deposit for a user without a virtual account (POST /v1/virtual-accounts first). */
  | { code: 'virtual_account_required' };

export interface DepositEvent { at: Date; fromStatus: DepositStatus | null; toStatus: DepositStatus; cause: string }

export interface Deposits {
  createCardDeposit(input: CardDepositInput): Promise<Result<Deposit, CreateDepositError>>;
  /** Konbini / Pay-easy: reserve, then paid notices by webhook (reservation.ts). */
  createReservationDeposit(input: ReservationDepositInput): Promise<Result<Deposit, CreateDepositError>>;
  /** Bank transfer: where to transfer and until when, then paid by the transfer (bank-transfer-deposit.ts). */
  createBankTransferDeposit(input: BankTransferDepositInput): Promise<Result<Deposit, CreateDepositError>>;
  /** Expires bank-transfer deposits past their deadline (hold released, deposit.expired); a periodic job. */
  expireBankTransferDeposits(limit?: number): Promise<number>;
  getDeposit(id: string): Promise<Deposit | null>;
  listDeposits(userId: string, opts?: { limit?: number | undefined; before?: string | undefined }): Promise<Deposit[]>;
  depositEvents(id: string): Promise<DepositEvent[]>;
  /**
   * Moves `processing` deposits whose charge became `unknown` without execute seeing it (the
   * janitor declared an abandoned call unknown) to `unknown`. A periodic job; returns how many.
   */
  syncOnce(limit?: number): Promise<number>;
}

export const DEFAULT_MAX_DEPOSIT = 10_000_000n;
export { depositMessage };

export function createDeposits(engine: DepositsEngine, opts: DepositsOptions): Deposits {
  const pool = engine.db.pool;
  const { operations, log } = engine;
  const provider = opts.provider;
  const defaultLimit = opts.defaultLimit ?? DEFAULT_BALANCE_LIMIT;
  const maxAmount = opts.maxAmount ?? DEFAULT_MAX_DEPOSIT;

  async function getDeposit(id: string): Promise<Deposit | null> {
    return isUuid(id) ? loadDeposit(pool, id) : null;
  }

  // ---- tx1
  async function recordCardDeposit(input: CardDepositInput, currency: string): Promise<{ deposit: Deposit; operationId: string | null }> {
    return withTx(pool, async (tx) => {
      const admitted = await admitDeposit(tx, { userId: input.userId, method: 'card', amount: input.amount, currency, provider, clientKey: input.clientKey }, defaultLimit);
      if ('existing' in admitted) return { deposit: admitted.existing, operationId: null };
      const { id } = admitted;
      const { operation } = await operations.record(tx, {
        provider, kind: 'charge', idempotencyKey: `deposit:${id}`, entity: { type: 'deposit', id },
        request: {
          amount: input.amount.toString(), currency: currency.toLowerCase(), payment_method: input.paymentMethod,
          metadata: { deposit_id: id },
        },
      });
      const moved = await transitionDeposit(tx, id, 'pending', 'processing', `charge recorded (operation ${operation.id})`, { operationId: operation.id });
      return { deposit: moved!, operationId: operation.id };
    });
  }

  async function createCardDeposit(input: CardDepositInput): Promise<Result<Deposit, CreateDepositError>> {
    const currency = input.currency ?? 'JPY';
    checkDepositInput(input, maxAmount);
    if (!/^[A-Z]{3}$/.test(currency)) throw new BadRequestError('invalid_currency', `currency must be an ISO 4217 code, got ${currency}`);
    if (input.paymentMethod.length < 1) throw new BadRequestError('invalid_payment_method', 'payment_method is required');

    return recordThenSend({ pool, operations, log }, 'charge', () => recordCardDeposit(input, currency));
  }

  // ---- tx2: effects of the charge's final outcome, in the transaction that records it
  async function onChargeResult(tx: Tx, op: Operation): Promise<void> {
    if (op.provider !== provider || op.entity_type !== 'deposit') return;
    const r = await tx.query<DepositRow>(`SELECT ${DEPOSIT_COLUMNS} FROM deposits WHERE operation_id = $1 FOR UPDATE`, [op.id]);
    if (!r.rows[0]) return;
    const d = toDeposit(r.rows[0]);
    if (d.status !== 'processing' && d.status !== 'unknown') {
      log.warn({ depositId: d.id, operationId: op.id, status: d.status }, 'charge result for a deposit already decided; ignored');
      return;
    }
    const paymentId = providerPaymentIdOf(op.response);
    const entity = { type: 'deposit', id: d.id };
    if (op.status === 'succeeded') {
      const charged = chargedAmountOf(op.response);
      if (charged !== undefined && charged !== d.amount) {
        log.error({ depositId: d.id, operationId: op.id, charged: charged.toString(), amount: d.amount.toString() }, 'provider charged a different amount than the deposit');
      }
      const clearing = await ensureAccount(tx, { kind: 'clearing', owner: provider, currency: d.currency });
      const credit = await creditDeposit(tx, {
        owner: d.userId, amount: d.amount, currency: d.currency, sourceAccountId: clearing.id, idempotencyKey: `deposit:${d.id}:credit`,
        mode: 'unrefusable', defaultLimit, description: `card deposit ${d.id}`,
        metadata: { deposit_id: d.id, operation_id: op.id, provider, provider_payment_id: paymentId ?? null },
      });
      if (!credit.ok) throw new Error(`unrefusable credit of deposit ${d.id} refused: ${credit.error.code}`);
      const c = credit.value;
      const moved = await transitionDeposit(tx, d.id, ['processing', 'unknown'], 'succeeded',
        `charge succeeded (operation ${op.id})${c.escrowed > 0n ? `; ${c.escrowed} over the limit to escrow` : ''}`,
        { providerPaymentId: paymentId, credited: c.credited, escrowed: c.escrowed, suspended: c.suspended, ledgerTransactionId: c.transactionId });
      if (!moved) throw new Error(`deposit ${d.id} left ${d.status} while locked`);
      await publish(tx, 'deposit.succeeded', depositMessage(moved), {
        id: nameBasedId('deposit', d.id, 'succeeded'), key: d.id, entity, attributes: { method: moved.method, provider },
      });
      if (c.escrowed > 0n) {
        // The refund of escrowed money is a later piece: this message is where it will start.
        await publish(tx, 'deposit.escrowed', depositMessage(moved), {
          id: nameBasedId('deposit', d.id, 'escrowed'), key: d.id, entity, attributes: { method: moved.method, provider },
        });
      }
    } else if (op.status === 'failed') {
      const moved = await transitionDeposit(tx, d.id, ['processing', 'unknown'], 'failed', `charge failed (operation ${op.id})`, {
        providerPaymentId: paymentId, failureCode: op.error_code ?? 'charge_failed', failureMessage: op.error_message ?? 'the charge failed',
      });
      if (!moved) throw new Error(`deposit ${d.id} left ${d.status} while locked`);
      await publish(tx, 'deposit.failed', depositMessage(moved), {
        id: nameBasedId('deposit', d.id, 'failed'), key: d.id, entity, attributes: { method: moved.method, provider },
      });
    }
  }
  operations.onResult('charge', onChargeResult);

  // ---- late webhooks: bring the inquiry forward; the janitor resolves through the single path
  const onPaymentEvent = async (ctx: { tx: Tx; log: Logger }, event: CanonicalEvent, meta: { provider: string; eventId: string }): Promise<void> => {
    if (meta.provider !== provider) return;
    const metadata = event.data.metadata;
    const depositId = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).deposit_id : undefined;
    if (typeof depositId !== 'string' || !isUuid(depositId)) return;
    const r = await ctx.tx.query<{ operation_id: string }>(
      `SELECT operation_id FROM deposits WHERE id = $1 AND status IN ('processing', 'unknown') AND operation_id IS NOT NULL`, [depositId]);
    const opId = r.rows[0]?.operation_id;
    if (opId && await operations.inquireSoon(ctx.tx, opId)) {
      ctx.log.info({ depositId, operationId: opId, event: event.type, eventId: meta.eventId }, 'late webhook for an unknown deposit charge: inquiry made due');
    }
  };
  for (const type of ['payment.succeeded', 'payment.failed', 'payment.canceled']) engine.handlers.on(type, onPaymentEvent);

  const reservations = createReservations(engine, {
    provider: opts.reservationProvider ?? 'komoju', creditOn: opts.creditOn ?? 'preliminary', defaultLimit, maxAmount,
  });

  // The file import's policy, so both paths book alike.
  if (opts.bankTransferProvider) {
    registerBankTransferWebhooks(engine.handlers, { provider: opts.bankTransferProvider, policy: opts.bankTransferPolicy ?? { defaultLimit } });
  }

  const bankTransfers = createBankTransferDeposits(engine, { defaultLimit, maxAmount, expiryMs: opts.bankTransferExpiryMs ?? DEFAULT_BANK_TRANSFER_EXPIRY_MS });

  return {
    createCardDeposit,
    createReservationDeposit: reservations.createReservationDeposit,
    createBankTransferDeposit: bankTransfers.createBankTransferDeposit,
    expireBankTransferDeposits: bankTransfers.expireOnce,
    getDeposit,

    async listDeposits(userId, o = {}) {
      const limit = Math.min(Math.max(o.limit ?? 20, 1), 500);
      const before = o.before !== undefined && isUuid(o.before) ? o.before : null;
      if (o.before !== undefined && before === null) return [];
      const r = await pool.query<DepositRow>(
        `SELECT ${DEPOSIT_COLUMNS} FROM deposits
         WHERE user_id = $1 AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM deposits WHERE id = $2))
         ORDER BY created_at DESC, id DESC LIMIT $3`, [userId, before, limit]);
      return r.rows.map(toDeposit);
    },

    async depositEvents(id) {
      if (!isUuid(id)) return [];
      const r = await pool.query<{ at: Date; from_status: DepositStatus | null; to_status: DepositStatus; cause: string }>(
        'SELECT at, from_status, to_status, cause FROM deposit_events WHERE deposit_id = $1 ORDER BY id', [id]);
      return r.rows.map((e) => ({ at: e.at, fromStatus: e.from_status, toStatus: e.to_status, cause: e.cause }));
    },

    async syncOnce(limit = 100) {
      const r = await pool.query<{ id: string; error_code: string | null; error_message: string | null }>(
        `SELECT d.id, o.error_code, o.error_message FROM deposits d JOIN operations o ON o.id = d.operation_id
         WHERE d.status = 'processing' AND o.status = 'unknown' ORDER BY d.updated_at LIMIT $1`, [limit]);
      let n = 0;
      for (const row of r.rows) {
        const moved = await transitionDeposit(pool, row.id, 'processing', 'unknown', `charge outcome unknown: ${row.error_code ?? 'no answer'}`);
        if (moved) n++;
      }
      return n;
    },
  };
}

/** The PaymentIntent id in a charge's response (a success is the PaymentIntent; a decline carries it). */
function providerPaymentIdOf(response: Record<string, unknown> | null): string | undefined {
  if (!response) return undefined;
  if (typeof response.id === 'string') return response.id;
  const pi = response.payment_intent;
  if (typeof pi === 'object' && pi !== null && typeof (pi as { id?: unknown }).id === 'string') return (pi as { id: string }).id;
  return undefined;
}

function chargedAmountOf(response: Record<string, unknown> | null): bigint | undefined {
  const a = response?.amount;
  return typeof a === 'number' && Number.isSafeInteger(a) ? BigInt(a) : typeof a === 'string' && /^\d+$/.test(a) ? BigInt(a) : undefined;
}
