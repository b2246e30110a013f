// Accounts are created on demand, one per (kind, owner, currency), with their balance rows.
// Limits and restrictions are per user (owner) and read under the wallet's balance row lock.
import type { Queryable } from '../kernel/db.ts';
import { BadRequestError } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { DEFAULT_CURRENCY, type Account, type AccountKind } from './types.ts';

/** Platform accounts that every deposit or fee touches get several balance rows (see 0006_ledger.sql). */
const DEFAULT_SHARDS: Record<AccountKind, number> = {
  wallet: 1, escrow: 1, suspense: 1, refunds_payable: 1, clearing: 16, fees: 16, revenue: 16, deferred_revenue: 16,
  points: 1, points_provisional: 1, points_issued: 16,
};

export interface AccountSpec {
  kind: AccountKind;
  owner: string;
  currency?: string | undefined;
  /** Balance rows for a hot account; wallets always have one. */
  shards?: number | undefined;
}

interface AccountRow { id: string; kind: AccountKind; owner: string; currency: string; shards: number; created_at: Date }

export const toAccount = (r: AccountRow): Account =>
  ({ id: r.id, kind: r.kind, owner: r.owner, currency: r.currency, shards: r.shards, createdAt: r.created_at });

const ACCOUNT_COLUMNS = 'id, kind, owner, currency, shards, created_at';

const INSERT_ACCOUNTS = `
WITH ins AS (
  INSERT INTO ledger_accounts (id, kind, owner, currency, shards)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::smallint[])
  ON CONFLICT (kind, owner, currency) DO NOTHING
  RETURNING id, currency, shards
)
INSERT INTO ledger_balances (account_id, shard, currency)
SELECT ins.id, s, ins.currency FROM ins, generate_series(0, ins.shards - 1) AS s`;

const SELECT_ACCOUNTS = `
SELECT a.id, a.kind, a.owner, a.currency, a.shards, a.created_at FROM ledger_accounts a
JOIN unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS w(kind, owner, currency, i)
  ON a.kind = w.kind AND a.owner = w.owner AND a.currency = w.currency
ORDER BY w.i`;

function normalize(s: AccountSpec): Required<AccountSpec> {
  const currency = s.currency ?? DEFAULT_CURRENCY;
  if (!/^[A-Z]{3}$/.test(currency)) throw new BadRequestError('invalid_currency', `currency must be an ISO 4217 code, got ${currency}`);
  const shards = s.kind === 'wallet' ? 1 : (s.shards ?? DEFAULT_SHARDS[s.kind]);
  return { kind: s.kind, owner: s.owner, currency, shards };
}

/**
 * The accounts for `specs`, in order, creating the missing ones with their balance rows.
 * Safe under concurrency: a creation racing ours ends as one account.
 */
export async function ensureAccounts(q: Queryable, specs: readonly AccountSpec[]): Promise<Account[]> {
  const wanted = specs.map(normalize);
  const select = () => q.query<AccountRow>({
    name: 'ledger_select_accounts', text: SELECT_ACCOUNTS,
    values: [wanted.map((w) => w.kind), wanted.map((w) => w.owner), wanted.map((w) => w.currency)],
  });
  let r = await select();
  if (r.rows.length < wanted.length) {
    await q.query({
      name: 'ledger_insert_accounts', text: INSERT_ACCOUNTS,
      values: [wanted.map(() => uuidv7()), wanted.map((w) => w.kind), wanted.map((w) => w.owner), wanted.map((w) => w.currency), wanted.map((w) => w.shards)],
    });
    // A new statement sees accounts that a concurrent creator committed while we waited on its conflict.
    r = await select();
  }
  const byKey = new Map(r.rows.map((a) => [`${a.kind}\u0000${a.owner}\u0000${a.currency}`, toAccount(a)]));
  return wanted.map((w) => {
    const a = byKey.get(`${w.kind}\u0000${w.owner}\u0000${w.currency}`);
    if (!a) throw new Error(`ledger account ${w.kind}/${w.owner}/${w.currency} could not be created`);
    return a;
  });
}

export async function ensureAccount(q: Queryable, spec: AccountSpec): Promise<Account> {
  const [a] = await ensureAccounts(q, [spec]);
  return a!;
}

export async function findAccount(q: Queryable, kind: AccountKind, owner: string, currency = DEFAULT_CURRENCY): Promise<Account | null> {
  const r = await q.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM ledger_accounts WHERE kind = $1 AND owner = $2 AND currency = $3`, [kind, owner, currency]);
  return r.rows[0] ? toAccount(r.rows[0]) : null;
}

/** Sets a user's balance limit for a currency, overriding the default. */
export async function setBalanceLimit(q: Queryable, owner: string, limit: bigint, currency = DEFAULT_CURRENCY): Promise<void> {
  if (limit < 0n) throw new BadRequestError('invalid_limit', 'a balance limit cannot be negative');
  await q.query(
    `INSERT INTO ledger_limits (owner, currency, "limit") VALUES ($1, $2, $3::bigint)
     ON CONFLICT (owner, currency) DO UPDATE SET "limit" = excluded."limit", updated_at = now()`,
    [owner, currency, limit.toString()]);
}

export async function clearBalanceLimit(q: Queryable, owner: string, currency = DEFAULT_CURRENCY): Promise<void> {
  await q.query('DELETE FROM ledger_limits WHERE owner = $1 AND currency = $2', [owner, currency]);
}

/** Freezes a user: their deposits go to suspense, and their wallet takes no other posting. */
export async function restrictOwner(q: Queryable, owner: string, reason: string): Promise<void> {
  await q.query(`INSERT INTO ledger_restrictions (owner, reason) VALUES ($1, $2) ON CONFLICT (owner) DO UPDATE SET reason = excluded.reason`, [owner, reason]);
}

export async function unrestrictOwner(q: Queryable, owner: string): Promise<void> {
  await q.query('DELETE FROM ledger_restrictions WHERE owner = $1', [owner]);
}
