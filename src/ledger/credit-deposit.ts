// Crediting a deposit to a user's wallet under the wallet's rules: a deposit that can be
// refused is refused over the limit; one that cannot (a konbini paid notice) credits up to the
// limit and puts the rest in the user's escrow, to be refunded; a restricted (frozen) user's
// deposit goes to suspense. The decision is taken under the wallet's balance row lock.
// One round trip: seigo_ledger_credit_deposits (0016_ledger_batch.sql) does it all, for one
// deposit or a batch of them.
import type pg from 'pg';
import { Batcher, type BatcherOptions } from '../kernel/batcher.ts';
import type { Queryable } from '../kernel/db.ts';
import { BadRequestError, err, NotFoundError, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { bigintJson } from './balances.ts';
import { DEFAULT_BALANCE_LIMIT, DEFAULT_CURRENCY, type LimitPolicy } from './types.ts';

export type DepositMode = 'refusable' | 'unrefusable';

export interface CreditDepositInput extends LimitPolicy {
  owner: string;
  amount: bigint;
  currency?: string | undefined;
  /** Where the money comes from, e.g. the provider's clearing account. */
  sourceAccountId: string;
  idempotencyKey: string;
  mode: DepositMode;
  description?: string | undefined;
  metadata?: Record<string, unknown> | undefined;
}

export interface CreditDepositOutcome {
  transactionId: string;
  credited: bigint;
  escrowed: bigint;
  suspended: bigint;
  duplicate: boolean;
}

export type CreditDepositError = { code: 'balance_limit_exceeded'; headroom: bigint; accountId: string };

const CREDIT_DEPOSITS = `
SELECT idx, transaction_id, duplicate, credited::text AS credited, escrowed::text AS escrowed, suspended::text AS suspended,
       wallet_id, error, amount::text AS amount, detail
FROM seigo_ledger_credit_deposits($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::uuid[], $7::text[], $8::text[],
                                  $9::jsonb[], $10::bigint[], $11::uuid[])`;

interface CreditRow {
  idx: number; transaction_id: string | null; duplicate: boolean; credited: string; escrowed: string; suspended: string;
  wallet_id: string; error: string | null; amount: string | null; detail: string | null;
}

export type CreditDepositResult = Result<CreditDepositOutcome, CreditDepositError>;

function currencyOf(input: CreditDepositInput): string {
  if (input.amount <= 0n) throw new RangeError('a deposit amount must be positive');
  const currency = input.currency ?? DEFAULT_CURRENCY;
  if (!/^[A-Z]{3}$/.test(currency)) throw new BadRequestError('invalid_currency', `currency must be an ISO 4217 code, got ${currency}`);
  return currency;
}

/**
 * Credits deposits in one statement on `q` (seigo_ledger_credit_deposits, 0016_ledger_batch.sql),
 * each once per idempotency key and decided in order: with a pool it is one autocommit
 * transaction, inside a caller's transaction it commits with it. The users' wallet, escrow and
 * suspense accounts are created on first use. One outcome per input: a result, or the Error that
 * input alone met (an unknown source account, a currency mismatch).
 */
export async function creditDeposits(q: Queryable, inputs: readonly CreditDepositInput[]): Promise<(CreditDepositResult | Error)[]> {
  const currencies = inputs.map(currencyOf);
  const r = await q.query<CreditRow>({
    name: 'ledger_credit_deposits', text: CREDIT_DEPOSITS,
    values: [
      inputs.map(() => uuidv7()), inputs.map((i) => i.idempotencyKey), inputs.map((i) => i.owner), currencies,
      inputs.map((i) => i.amount.toString()), inputs.map((i) => i.sourceAccountId), inputs.map((i) => i.mode),
      inputs.map((i) => i.description ?? null), inputs.map((i) => JSON.stringify(i.metadata ?? {}, bigintJson)),
      inputs.map((i) => (i.defaultLimit ?? DEFAULT_BALANCE_LIMIT).toString()), inputs.flatMap(() => [uuidv7(), uuidv7(), uuidv7()]),
    ],
  });
  return r.rows.map((row, i) => outcome(row, currencies[i]!));
}

function outcome(row: CreditRow, currency: string): CreditDepositResult | Error {
  switch (row.error) {
    case null:
      return ok({
        transactionId: row.transaction_id!, credited: BigInt(row.credited), escrowed: BigInt(row.escrowed), suspended: BigInt(row.suspended),
        duplicate: row.duplicate,
      });
    case 'balance_limit_exceeded': return err({ code: 'balance_limit_exceeded', headroom: BigInt(row.amount!), accountId: row.wallet_id });
    case 'account_not_found': return new NotFoundError('account_not_found', `no ledger account ${row.detail}`);
    case 'currency_mismatch': return new RangeError(`deposit in ${currency} from an account in ${row.detail}`);
    default: return new Error(`seigo_ledger_credit_deposits returned an unknown error ${row.error}`);
  }
}

/** Credits one deposit in one statement on `q` (see creditDeposits). */
export async function creditDeposit(q: Queryable, input: CreditDepositInput): Promise<CreditDepositResult> {
  const [o] = await creditDeposits(q, [input]);
  if (o instanceof Error) throw o;
  return o!;
}

/**
 * Deposits credited outside any caller's transaction, with group commit: concurrent calls share
 * one statement and one commit (src/kernel/batcher.ts), each promise settling after that commit.
 * A batch that fails as a whole (a deadlock, a lost connection) is retried one deposit at a time,
 * so that one deposit's failure is its own.
 */
export class DepositCreditor {
  private readonly batcher: Batcher<CreditDepositInput, CreditDepositResult>;

  constructor(
    private readonly pool: pg.Pool,
    private readonly opts: Omit<BatcherOptions, 'keyOf'> & { /** Called with each batch's size as it goes out (metrics). */ onBatch?: (n: number) => void } = {},
  ) {
    // Keyed by the wallet: two batches in flight never wait for each other's wallet row locks (a hot
    // wallet's deposits go one batch after the other, each batch deciding them in order).
    this.batcher = new Batcher((inputs) => this.flush(inputs), {
      maxBatch: opts.maxBatch ?? 64, maxInFlight: opts.maxInFlight ?? 2,
      keyOf: (i) => `${i.owner}\u0000${i.currency ?? DEFAULT_CURRENCY}`,
    });
  }

  // async: a bad amount or currency rejects the promise, as every other failure does, rather than throwing at the call.
  async credit(input: CreditDepositInput): Promise<CreditDepositResult> {
    currencyOf(input);
    return this.batcher.submit(input);
  }

  private async flush(inputs: readonly CreditDepositInput[]): Promise<(CreditDepositResult | Error)[]> {
    this.opts.onBatch?.(inputs.length);
    try {
      return await creditDeposits(this.pool, inputs);
    } catch (e) {
      if (inputs.length === 1) throw e;
      return Promise.all(inputs.map((i) => creditDeposits(this.pool, [i]).then(([o]) => o!, (e: Error) => e)));
    }
  }
}
