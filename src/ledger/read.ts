// Reading the ledger: accounts with balances (shards summed), transactions with their entries.
import type { Queryable } from '../kernel/db.ts';
import { toAccount } from './accounts.ts';
import type { Account, AccountKind, Balance, LedgerTransaction } from './types.ts';

export async function entriesOf(q: Queryable, transactionId: string): Promise<{ id: string; accountId: string; currency: string; amount: bigint }[]> {
  const r = await q.query<{ id: string; account_id: string; currency: string; amount: string }>({
    name: 'ledger_entries_of',
    text: 'SELECT id::text AS id, account_id, currency, amount::text AS amount FROM ledger_entries WHERE transaction_id = $1 ORDER BY id',
    values: [transactionId],
  });
  return r.rows.map((e) => ({ id: e.id, accountId: e.account_id, currency: e.currency, amount: BigInt(e.amount) }));
}

export async function getBalance(q: Queryable, accountId: string): Promise<Balance | null> {
  const r = await q.query<{ currency: string; posted: string; pending_in: string; pending_out: string }>({
    name: 'ledger_balance',
    text: `SELECT currency, sum(posted)::text AS posted, sum(pending_in)::text AS pending_in, sum(pending_out)::text AS pending_out
           FROM ledger_balances WHERE account_id = $1 GROUP BY currency`,
    values: [accountId],
  });
  const b = r.rows[0];
  if (!b) return null;
  const posted = BigInt(b.posted);
  const pendingOut = BigInt(b.pending_out);
  return { accountId, currency: b.currency, posted, pendingIn: BigInt(b.pending_in), pendingOut, available: posted - pendingOut };
}

export async function getAccount(q: Queryable, id: string): Promise<(Account & { balance: Balance }) | null> {
  const r = await q.query<{ id: string; kind: AccountKind; owner: string; currency: string; shards: number; created_at: Date }>(
    'SELECT id, kind, owner, currency, shards, created_at FROM ledger_accounts WHERE id = $1', [id]);
  const row = r.rows[0];
  if (!row) return null;
  return { ...toAccount(row), balance: (await getBalance(q, id))! };
}

interface TxRow { id: string; idempotency_key: string; kind: string; description: string | null; metadata: Record<string, unknown>; reverses: string | null; created_at: Date }

export async function getTransaction(q: Queryable, id: string): Promise<LedgerTransaction | null> {
  const r = await q.query<TxRow>('SELECT id, idempotency_key, kind, description, metadata, reverses, created_at FROM ledger_transactions WHERE id = $1', [id]);
  const t = r.rows[0];
  if (!t) return null;
  return {
    id: t.id, idempotencyKey: t.idempotency_key, kind: t.kind, description: t.description, metadata: t.metadata,
    reverses: t.reverses, createdAt: t.created_at, entries: await entriesOf(q, id),
  };
}

export interface AccountTransaction {
  transactionId: string;
  kind: string;
  description: string | null;
  /** This account's net amount in the transaction. */
  amount: bigint;
  createdAt: Date;
}

/** An account's transactions, newest first. */
export async function listAccountTransactions(q: Queryable, accountId: string, limit = 50): Promise<AccountTransaction[]> {
  const r = await q.query<{ id: string; kind: string; description: string | null; amount: string; created_at: Date }>(
    `SELECT t.id, t.kind, t.description, e.amount::text AS amount, t.created_at
     FROM (SELECT transaction_id, sum(amount) AS amount, max(id) AS last FROM ledger_entries WHERE account_id = $1
           GROUP BY transaction_id ORDER BY last DESC LIMIT $2) e
     JOIN ledger_transactions t ON t.id = e.transaction_id ORDER BY e.last DESC`, [accountId, limit]);
  return r.rows.map((t) => ({ transactionId: t.id, kind: t.kind, description: t.description, amount: BigInt(t.amount), createdAt: t.created_at }));
}

/** A user's money in one currency, across the accounts the ledger keeps for them. */
export interface UserBalances {
  owner: string;
  currency: string;
  /** The wallet: posted, what incoming / outgoing holds reserve, and what can be spent (posted − outgoing holds). */
  posted: bigint;
  pendingIn: bigint;
  pendingOut: bigint;
  available: bigint;
  /** Deposited over the limit and waiting for a refund; held while the user is restricted. */
  escrow: bigint;
  suspense: bigint;
  /** The per-user limit override (null: the configured default applies), and whether the user is restricted. */
  limitOverride: bigint | null;
  restricted: boolean;
}

// One statement: the user's wallet, escrow and suspense (shards summed), their limit override and restriction.
const USER_BALANCES = `
WITH b AS (
  SELECT a.kind, sum(x.posted) AS posted, sum(x.pending_in) AS pending_in, sum(x.pending_out) AS pending_out
  FROM ledger_accounts a JOIN ledger_balances x ON x.account_id = a.id
  WHERE a.owner = $1 AND a.currency = $2 AND a.kind IN ('wallet', 'escrow', 'suspense')
  GROUP BY a.kind
)
SELECT coalesce((SELECT posted FROM b WHERE kind = 'wallet'), 0)::text AS posted,
       coalesce((SELECT pending_in FROM b WHERE kind = 'wallet'), 0)::text AS pending_in,
       coalesce((SELECT pending_out FROM b WHERE kind = 'wallet'), 0)::text AS pending_out,
       coalesce((SELECT posted FROM b WHERE kind = 'escrow'), 0)::text AS escrow,
       coalesce((SELECT posted FROM b WHERE kind = 'suspense'), 0)::text AS suspense,
       (SELECT "limit"::text FROM ledger_limits WHERE owner = $1 AND currency = $2) AS limit_override,
       EXISTS (SELECT 1 FROM ledger_restrictions WHERE owner = $1) AS restricted`;

/** A user's balances by user id (zeros for a user the ledger has not seen). */
export async function getUserBalances(q: Queryable, owner: string, currency: string): Promise<UserBalances> {
  const r = await q.query<{
    posted: string; pending_in: string; pending_out: string; escrow: string; suspense: string; limit_override: string | null; restricted: boolean;
  }>({
    name: 'ledger_user_balances', text: USER_BALANCES, values: [owner, currency],
  });
  const row = r.rows[0]!;
  const posted = BigInt(row.posted);
  const pendingOut = BigInt(row.pending_out);
  return {
    owner, currency, posted, pendingIn: BigInt(row.pending_in), pendingOut, available: posted - pendingOut,
    escrow: BigInt(row.escrow), suspense: BigInt(row.suspense),
    limitOverride: row.limit_override === null ? null : BigInt(row.limit_override), restricted: row.restricted,
  };
}
