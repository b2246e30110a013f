// Posting: a balanced set of entries written with its balance changes, once per idempotency key,
// in one round trip: seigo_ledger_post (0007_ledger_post_function.sql) checks the key, locks the
// balance rows in (account id, shard) order, checks the wallet rules (limit, funds, restriction)
// under those locks, and writes the transaction, its entries and the balance changes. Concurrent
// postings can therefore never together break a wallet's rules.
import type { Queryable } from '../kernel/db.ts';
import { err, NotFoundError, ok, SeigoError, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { bigintJson } from './balances.ts';
import { entriesOf } from './read.ts';
import { DEFAULT_BALANCE_LIMIT, type LedgerError, type PostingInput, type PostOptions, type Posted } from './types.ts';

export class InvalidPostingError extends SeigoError {
  constructor(message: string) {
    super('ledger_invalid_posting', message, 400, false);
  }
}

const POST = 'SELECT transaction_id, duplicate, error, account_id, amount::text AS amount, detail FROM seigo_ledger_post($1, $2, $3, $4, $5, $6, $7::uuid[], $8::bigint[], $9::bigint, $10)';

interface PostRow { transaction_id: string | null; duplicate: boolean; error: string | null; account_id: string | null; amount: string | null; detail: string | null }

/**
 * Posts `input` in one statement on `q`. With a pool (or a client outside a transaction) the
 * posting is its own autocommit transaction; inside a caller's transaction (e.g. withTx) it
 * commits or rolls back with it. A second call with the same idempotency key posts nothing and
 * returns the first transaction's id.
 */
export async function post(q: Queryable, input: PostingInput, opts: PostOptions = {}): Promise<Result<Posted, LedgerError>> {
  if (input.entries.length < 2) throw new InvalidPostingError('a ledger transaction needs at least two entries');
  for (const e of input.entries) {
    if (typeof e.amount !== 'bigint' || e.amount === 0n) throw new InvalidPostingError(`entry amounts must be non-zero bigint minor units (account ${e.accountId})`);
  }
  const r = await q.query<PostRow>({
    name: 'ledger_post', text: POST,
    values: [
      uuidv7(), input.idempotencyKey, input.kind ?? 'posting', input.description ?? null, JSON.stringify(input.metadata ?? {}, bigintJson), input.reverses ?? null,
      input.entries.map((e) => e.accountId), input.entries.map((e) => e.amount.toString()),
      (opts.defaultLimit ?? DEFAULT_BALANCE_LIMIT).toString(), opts.enforce !== false,
    ],
  });
  const row = r.rows[0]!;
  switch (row.error) {
    case null: return ok({ transactionId: row.transaction_id!, duplicate: row.duplicate });
    case 'account_not_found': throw new NotFoundError('account_not_found', `no ledger account ${row.detail}`);
    case 'unbalanced': throw new InvalidPostingError(`entries do not balance: ${row.detail} sums to ${row.amount}`);
    case 'balance_limit_exceeded': return err({ code: 'balance_limit_exceeded', accountId: row.account_id!, headroom: BigInt(row.amount!) });
    case 'insufficient_funds': return err({ code: 'insufficient_funds', accountId: row.account_id!, available: BigInt(row.amount!) });
    case 'account_restricted': return err({ code: 'account_restricted', accountId: row.account_id! });
    default: throw new Error(`seigo_ledger_post returned an unknown error ${row.error}`);
  }
}

/**
 * Posts the opposite of transaction `transactionId`: the correction for a posting, which itself is
 * never changed. Idempotent per reversed transaction unless another key is given.
 */
export async function reverse(
  q: Queryable, transactionId: string, opts: PostOptions & { idempotencyKey?: string | undefined; description?: string | undefined } = {},
): Promise<Result<Posted, LedgerError | { code: 'transaction_not_found'; transactionId: string }>> {
  const entries = await entriesOf(q, transactionId);
  if (entries.length === 0) return err({ code: 'transaction_not_found', transactionId });
  return post(q, {
    idempotencyKey: opts.idempotencyKey ?? `reverse:${transactionId}`,
    kind: 'reversal',
    description: opts.description,
    reverses: transactionId,
    entries: entries.map((e) => ({ accountId: e.accountId, amount: -e.amount })),
  }, opts);
}
