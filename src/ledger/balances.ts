// Balance rows under lock: every change to a balance first locks the rows it touches, in
// (account id, shard) order so that two postings over the same accounts cannot deadlock, and reads
// each wallet's limit and restriction in the same statement. Checks made on these values hold
// until commit.
import type { Tx } from '../kernel/db.ts';
import { NotFoundError } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { DEFAULT_BALANCE_LIMIT, type AccountKind, type LedgerError, type PostingInput } from './types.ts';

export interface LockedBalance {
  accountId: string;
  shard: number;
  kind: AccountKind;
  owner: string;
  currency: string;
  posted: bigint;
  pendingIn: bigint;
  pendingOut: bigint;
  /** Wallets: the per-user override, or null for the default. */
  limitOverride: bigint | null;
  restricted: boolean;
}

/** An account to lock; `shard` pins a balance row (a hold's), otherwise one is picked at random. */
export interface LockRequest { accountId: string; shard?: number | undefined }

// The shard is picked once per account in a materialized CTE (a volatile random() in a join
// condition could be evaluated per row). ORDER BY is applied before FOR UPDATE, so rows are
// locked in that order.
const LOCK_BALANCES = `
WITH pick AS MATERIALIZED (
  SELECT a.id, a.kind, a.owner, a.currency,
         CASE WHEN w.shard >= 0 THEN w.shard ELSE floor(random() * a.shards)::int END AS shard
  FROM unnest($1::uuid[], $2::int[]) AS w(id, shard) JOIN ledger_accounts a ON a.id = w.id
)
SELECT b.account_id, b.shard, p.kind, p.owner, p.currency,
       b.posted::text AS posted, b.pending_in::text AS pending_in, b.pending_out::text AS pending_out,
       l."limit"::text AS limit_override, (r.owner IS NOT NULL) AS restricted
FROM pick p
JOIN ledger_balances b ON b.account_id = p.id AND b.shard = p.shard
LEFT JOIN ledger_limits l ON p.kind = 'wallet' AND l.owner = p.owner AND l.currency = p.currency
LEFT JOIN ledger_restrictions r ON p.kind = 'wallet' AND r.owner = p.owner
ORDER BY b.account_id, b.shard
FOR UPDATE OF b`;

interface LockRow {
  account_id: string; shard: number; kind: AccountKind; owner: string; currency: string;
  posted: string; pending_in: string; pending_out: string; limit_override: string | null; restricted: boolean;
}

/** Locks one balance row per requested account; returns them by account id. */
export async function lockBalances(tx: Tx, requests: readonly LockRequest[]): Promise<Map<string, LockedBalance>> {
  const byAccount = new Map<string, number>();
  for (const r of requests) {
    const prev = byAccount.get(r.accountId);
    byAccount.set(r.accountId, r.shard ?? prev ?? -1);
  }
  const ids = [...byAccount.keys()];
  const res = await tx.query<LockRow>({ name: 'ledger_lock_balances', text: LOCK_BALANCES, values: [ids, ids.map((id) => byAccount.get(id)!)] });
  const out = new Map<string, LockedBalance>();
  for (const r of res.rows) {
    out.set(r.account_id, {
      accountId: r.account_id, shard: r.shard, kind: r.kind, owner: r.owner, currency: r.currency,
      posted: BigInt(r.posted), pendingIn: BigInt(r.pending_in), pendingOut: BigInt(r.pending_out),
      limitOverride: r.limit_override === null ? null : BigInt(r.limit_override), restricted: r.restricted,
    });
  }
  const missing = ids.filter((id) => !out.has(id));
  if (missing.length > 0) throw new NotFoundError('account_not_found', `no ledger account ${missing.join(', ')}`);
  return out;
}

export const limitOf = (b: LockedBalance, defaultLimit = DEFAULT_BALANCE_LIMIT): bigint => b.limitOverride ?? defaultLimit;

/** What a wallet can still take: limit − posted − incoming holds (never negative). */
export function headroom(b: LockedBalance, defaultLimit?: bigint): bigint {
  const h = limitOf(b, defaultLimit) - b.posted - b.pendingIn;
  return h > 0n ? h : 0n;
}

/**
 * The wallet rules for a change of `posted` by `postedDelta` and of `pending_in` by `pendingInDelta`:
 * a restricted wallet takes nothing; posted + incoming holds may not rise above the limit;
 * available (posted − outgoing holds) may not fall below zero. Other accounts have no rules.
 */
export function checkWallet(b: LockedBalance, postedDelta: bigint, pendingInDelta: bigint, pendingOutDelta: bigint, defaultLimit?: bigint): LedgerError | null {
  if (b.kind !== 'wallet') return null;
  if (b.restricted && (postedDelta !== 0n || pendingInDelta > 0n || pendingOutDelta > 0n)) return { code: 'account_restricted', accountId: b.accountId };
  const growth = postedDelta + pendingInDelta;
  if (growth > 0n && growth > headroom(b, defaultLimit)) return { code: 'balance_limit_exceeded', accountId: b.accountId, headroom: headroom(b, defaultLimit) };
  const availableDelta = postedDelta - pendingOutDelta;
  const available = b.posted - b.pendingOut;
  if (availableDelta < 0n && available + availableDelta < 0n) return { code: 'insufficient_funds', accountId: b.accountId, available: available > 0n ? available : 0n };
  return null;
}

/** Changes to balance rows, summed per (account, shard): one UPDATE may touch a row only once. */
export class BalanceDeltas {
  private readonly rows = new Map<string, { accountId: string; shard: number; posted: bigint; pendingIn: bigint; pendingOut: bigint }>();

  add(accountId: string, shard: number, d: { posted?: bigint; pendingIn?: bigint; pendingOut?: bigint }): this {
    const k = `${accountId}:${shard}`;
    const row = this.rows.get(k) ?? { accountId, shard, posted: 0n, pendingIn: 0n, pendingOut: 0n };
    row.posted += d.posted ?? 0n;
    row.pendingIn += d.pendingIn ?? 0n;
    row.pendingOut += d.pendingOut ?? 0n;
    this.rows.set(k, row);
    return this;
  }

  /** Parameters for `unnest($n::uuid[], $n+1::int[], $n+2::bigint[], $n+3::bigint[], $n+4::bigint[])`. */
  params(): [string[], number[], string[], string[], string[]] {
    const r = [...this.rows.values()];
    return [r.map((x) => x.accountId), r.map((x) => x.shard), r.map((x) => x.posted.toString()), r.map((x) => x.pendingIn.toString()), r.map((x) => x.pendingOut.toString())];
  }
}

const APPLY_DELTAS = `
UPDATE ledger_balances b
SET posted = b.posted + d.posted, pending_in = b.pending_in + d.pending_in, pending_out = b.pending_out + d.pending_out, updated_at = now()
FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(account_id, shard, posted, pending_in, pending_out)
WHERE b.account_id = d.account_id AND b.shard = d.shard`;

/** Applies deltas to rows the caller has locked. */
export async function applyDeltas(tx: Tx, deltas: BalanceDeltas): Promise<void> {
  await tx.query({ name: 'ledger_apply_deltas', text: APPLY_DELTAS, values: deltas.params() });
}

// One statement: the transaction row (skipped if its idempotency key exists), its entries and the
// balance changes, the last two only if the transaction row was written.
const WRITE_POSTING = `
WITH t AS (
  INSERT INTO ledger_transactions (id, idempotency_key, kind, description, metadata, reverses)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id
), e AS (
  INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
  SELECT t.id, x.account_id, x.currency, x.amount FROM t, unnest($7::uuid[], $8::text[], $9::bigint[]) AS x(account_id, currency, amount)
), u AS (
  UPDATE ledger_balances b
  SET posted = b.posted + d.posted, pending_in = b.pending_in + d.pending_in, pending_out = b.pending_out + d.pending_out, updated_at = now()
  FROM t, unnest($10::uuid[], $11::int[], $12::bigint[], $13::bigint[], $14::bigint[]) AS d(account_id, shard, posted, pending_in, pending_out)
  WHERE b.account_id = d.account_id AND b.shard = d.shard
)
SELECT id FROM t`;

/**
 * Writes a posting whose balance rows the caller has locked and checked. Returns null when the
 * idempotency key was taken meanwhile (nothing was written).
 */
export async function writePosting(
  tx: Tx, input: Omit<PostingInput, 'entries'>, entries: readonly { accountId: string; currency: string; amount: bigint }[], deltas: BalanceDeltas, id = uuidv7(),
): Promise<string | null> {
  const r = await tx.query<{ id: string }>({
    name: 'ledger_write_posting', text: WRITE_POSTING,
    values: [
      id, input.idempotencyKey, input.kind ?? 'posting', input.description ?? null, JSON.stringify(input.metadata ?? {}, bigintJson), input.reverses ?? null,
      entries.map((e) => e.accountId), entries.map((e) => e.currency), entries.map((e) => e.amount.toString()),
      ...deltas.params(),
    ],
  });
  return r.rows[0]?.id ?? null;
}

export function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

export async function transactionIdByKey(tx: Tx, idempotencyKey: string): Promise<string | null> {
  const r = await tx.query<{ id: string }>({ name: 'ledger_tx_by_key', text: 'SELECT id FROM ledger_transactions WHERE idempotency_key = $1', values: [idempotencyKey] });
  return r.rows[0]?.id ?? null;
}
