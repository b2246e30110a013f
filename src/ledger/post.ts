// Posting: a balanced set of entries written with its balance changes in the caller's transaction,
// once per idempotency key. Wallet rules (limit, funds, restriction) are checked under the lock of
// the wallet's balance row, so concurrent postings can never together break them.
import type { Tx } from '../kernel/db.ts';
import { err, ok, SeigoError, type Result } from '../kernel/errors.ts';
import { BalanceDeltas, checkWallet, lockBalances, transactionIdByKey, writePosting } from './balances.ts';
import { entriesOf } from './read.ts';
import type { LedgerError, PostingInput, PostOptions, Posted } from './types.ts';

export class InvalidPostingError extends SeigoError {
  constructor(message: string) {
    super('ledger_invalid_posting', message, 400, false);
  }
}

/**
 * Posts `input` in `tx` (which must be an open transaction, e.g. from withTx). A second call with
 * the same idempotency key posts nothing and returns the first transaction's id.
 */
export async function post(tx: Tx, input: PostingInput, opts: PostOptions = {}): Promise<Result<Posted, LedgerError>> {
  if (input.entries.length < 2) throw new InvalidPostingError('a ledger transaction needs at least two entries');
  for (const e of input.entries) {
    if (typeof e.amount !== 'bigint' || e.amount === 0n) throw new InvalidPostingError(`entry amounts must be non-zero bigint minor units (account ${e.accountId})`);
  }
  const existing = await transactionIdByKey(tx, input.idempotencyKey);
  if (existing) return ok({ transactionId: existing, duplicate: true });

  const net = new Map<string, bigint>();
  for (const e of input.entries) net.set(e.accountId, (net.get(e.accountId) ?? 0n) + e.amount);
  const locked = await lockBalances(tx, [...net.keys()].map((accountId) => ({ accountId })));

  const sums = new Map<string, bigint>();
  const entries = input.entries.map((e) => {
    const currency = locked.get(e.accountId)!.currency;
    sums.set(currency, (sums.get(currency) ?? 0n) + e.amount);
    return { accountId: e.accountId, currency, amount: e.amount };
  });
  for (const [currency, sum] of sums) {
    if (sum !== 0n) throw new InvalidPostingError(`entries do not balance: ${currency} sums to ${sum}`);
  }

  const deltas = new BalanceDeltas();
  for (const [accountId, amount] of net) {
    const b = locked.get(accountId)!;
    if (opts.enforce !== false) {
      const refusal = checkWallet(b, amount, 0n, 0n, opts.defaultLimit);
      if (refusal) return err(refusal);
    }
    if (amount !== 0n) deltas.add(accountId, b.shard, { posted: amount });
  }
  const id = await writePosting(tx, input, entries, deltas);
  if (id) return ok({ transactionId: id, duplicate: false });
  // The key was committed by a concurrent caller after our first look.
  return ok({ transactionId: (await transactionIdByKey(tx, input.idempotencyKey))!, duplicate: true });
}

/**
 * Posts the opposite of transaction `transactionId`: the correction for a posting, which itself is
 * never changed. Idempotent per reversed transaction unless another key is given.
 */
export async function reverse(
  tx: Tx, transactionId: string, opts: PostOptions & { idempotencyKey?: string | undefined; description?: string | undefined } = {},
): Promise<Result<Posted, LedgerError | { code: 'transaction_not_found'; transactionId: string }>> {
  const entries = await entriesOf(tx, transactionId);
  if (entries.length === 0) return err({ code: 'transaction_not_found', transactionId });
  return post(tx, {
    idempotencyKey: opts.idempotencyKey ?? `reverse:${transactionId}`,
    kind: 'reversal',
    description: opts.description,
    reverses: transactionId,
    entries: entries.map((e) => ({ accountId: e.accountId, amount: -e.amount })),
  }, opts);
}
