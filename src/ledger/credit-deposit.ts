// Crediting a deposit to a user's wallet under the rules of seed 001 (C2–C4): a deposit that can be
// refused is refused over the limit; one that cannot (a konbini paid notice) credits up to the
// limit and puts the rest in the user's escrow, to be refunded; a restricted (frozen) user's
// deposit goes to suspense. The decision is taken under the wallet's balance row lock.
import type { Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { ensureAccounts } from './accounts.ts';
import { BalanceDeltas, headroom, lockBalances, transactionIdByKey, writePosting } from './balances.ts';
import { entriesOf } from './read.ts';
import { DEFAULT_CURRENCY, type LimitPolicy } from './types.ts';

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

/** Credits a deposit in `tx` (an open transaction), once per idempotency key. */
export async function creditDeposit(tx: Tx, input: CreditDepositInput): Promise<Result<CreditDepositOutcome, CreditDepositError>> {
  if (input.amount <= 0n) throw new RangeError('a deposit amount must be positive');
  const currency = input.currency ?? DEFAULT_CURRENCY;
  const [wallet, escrow, suspense] = await ensureAccounts(tx, [
    { kind: 'wallet', owner: input.owner, currency },
    { kind: 'escrow', owner: input.owner, currency },
    { kind: 'suspense', owner: input.owner, currency },
  ]);
  const accounts = { wallet: wallet!.id, escrow: escrow!.id, suspense: suspense!.id };
  const existing = await transactionIdByKey(tx, input.idempotencyKey);
  if (existing) return ok(await outcomeOf(tx, existing, accounts));

  const locked = await lockBalances(tx, [accounts.wallet, accounts.escrow, accounts.suspense, input.sourceAccountId].map((accountId) => ({ accountId })));
  const w = locked.get(accounts.wallet)!;
  const source = locked.get(input.sourceAccountId)!;
  if (source.currency !== currency) throw new RangeError(`deposit in ${currency} from an account in ${source.currency}`);

  let credited = 0n;
  let escrowed = 0n;
  let suspended = 0n;
  if (w.restricted) {
    suspended = input.amount;
  } else {
    const room = headroom(w, input.defaultLimit);
    if (input.amount <= room) credited = input.amount;
    else if (input.mode === 'refusable') return err({ code: 'balance_limit_exceeded', headroom: room, accountId: accounts.wallet });
    else {
      credited = room;
      escrowed = input.amount - room;
    }
  }
  const entries = [{ accountId: input.sourceAccountId, currency, amount: -input.amount }];
  const deltas = new BalanceDeltas().add(input.sourceAccountId, source.shard, { posted: -input.amount });
  for (const [accountId, amount] of [[accounts.wallet, credited], [accounts.escrow, escrowed], [accounts.suspense, suspended]] as const) {
    if (amount === 0n) continue;
    entries.push({ accountId, currency, amount });
    deltas.add(accountId, locked.get(accountId)!.shard, { posted: amount });
  }
  const id = await writePosting(tx, {
    idempotencyKey: input.idempotencyKey, kind: 'deposit', description: input.description,
    metadata: { ...input.metadata, owner: input.owner, mode: input.mode, credited, escrowed, suspended },
  }, entries, deltas);
  if (!id) return ok(await outcomeOf(tx, (await transactionIdByKey(tx, input.idempotencyKey))!, accounts));
  return ok({ transactionId: id, credited, escrowed, suspended, duplicate: false });
}

/** The outcome of a deposit already posted, read from its entries. */
async function outcomeOf(tx: Tx, transactionId: string, a: { wallet: string; escrow: string; suspense: string }): Promise<CreditDepositOutcome> {
  const entries = await entriesOf(tx, transactionId);
  const sum = (id: string) => entries.filter((e) => e.accountId === id).reduce((s, e) => s + e.amount, 0n);
  return { transactionId, credited: sum(a.wallet), escrowed: sum(a.escrow), suspended: sum(a.suspense), duplicate: true };
}
