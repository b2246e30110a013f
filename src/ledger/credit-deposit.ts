// Crediting a deposit to a user's wallet under the rules of seed 001 (C2–C4): a deposit that can be
// refused is refused over the limit; one that cannot (a konbini paid notice) credits up to the
// limit and puts the rest in the user's escrow, to be refunded; a restricted (frozen) user's
// deposit goes to suspense. The decision is taken under the wallet's balance row lock.
// One round trip: seigo_ledger_credit_deposit (0007_ledger_post_function.sql) does it all.
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

const CREDIT_DEPOSIT = `
SELECT transaction_id, duplicate, credited::text AS credited, escrowed::text AS escrowed, suspended::text AS suspended,
       wallet_id, error, amount::text AS amount, detail
FROM seigo_ledger_credit_deposit($1, $2, $3, $4, $5::bigint, $6, $7, $8, $9, $10::bigint, $11::uuid[])`;

interface CreditRow {
  transaction_id: string | null; duplicate: boolean; credited: string; escrowed: string; suspended: string;
  wallet_id: string; error: string | null; amount: string | null; detail: string | null;
}

/**
 * Credits a deposit in one statement on `q`, once per idempotency key: with a pool it is its own
 * autocommit transaction, inside a caller's transaction it commits with it. The user's wallet,
 * escrow and suspense accounts are created on first use.
 */
export async function creditDeposit(q: Queryable, input: CreditDepositInput): Promise<Result<CreditDepositOutcome, CreditDepositError>> {
  if (input.amount <= 0n) throw new RangeError('a deposit amount must be positive');
  const currency = input.currency ?? DEFAULT_CURRENCY;
  if (!/^[A-Z]{3}$/.test(currency)) throw new BadRequestError('invalid_currency', `currency must be an ISO 4217 code, got ${currency}`);
  const r = await q.query<CreditRow>({
    name: 'ledger_credit_deposit', text: CREDIT_DEPOSIT,
    values: [
      uuidv7(), input.idempotencyKey, input.owner, currency, input.amount.toString(), input.sourceAccountId, input.mode,
      input.description ?? null, JSON.stringify(input.metadata ?? {}, bigintJson), (input.defaultLimit ?? DEFAULT_BALANCE_LIMIT).toString(),
      [uuidv7(), uuidv7(), uuidv7()],
    ],
  });
  const row = r.rows[0]!;
  switch (row.error) {
    case null:
      return ok({
        transactionId: row.transaction_id!, credited: BigInt(row.credited), escrowed: BigInt(row.escrowed), suspended: BigInt(row.suspended),
        duplicate: row.duplicate,
      });
    case 'balance_limit_exceeded': return err({ code: 'balance_limit_exceeded', headroom: BigInt(row.amount!), accountId: row.wallet_id });
    case 'account_not_found': throw new NotFoundError('account_not_found', `no ledger account ${row.detail}`);
    case 'currency_mismatch': throw new RangeError(`deposit in ${currency} from an account in ${row.detail}`);
    default: throw new Error(`seigo_ledger_credit_deposit returned an unknown error ${row.error}`);
  }
}
