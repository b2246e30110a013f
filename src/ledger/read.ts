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
