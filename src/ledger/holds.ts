// Holds: money reserved on an account before it moves. An incoming hold (a konbini reservation
// waiting for payment) counts toward the wallet's limit; an outgoing hold reduces what is
// available. A hold is a state machine: it changes status only along HOLD_TRANSITIONS, with a
// conditional UPDATE (0 rows: someone else moved it first), and each transition is recorded.
import type pg from 'pg';
import { withTx, type Queryable, type Tx } from '../kernel/db.ts';
import { err, ok, type Result } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { BalanceDeltas, applyDeltas, checkWallet, lockBalances, writePosting } from './balances.ts';
import type { Hold, HoldDirection, HoldError, HoldStatus, LedgerError, LimitPolicy } from './types.ts';

export const HOLD_STATUSES: readonly HoldStatus[] = ['active', 'captured', 'released', 'expired'];
export const HOLD_TRANSITIONS: Readonly<Record<HoldStatus, readonly HoldStatus[]>> = {
  active: ['captured', 'released', 'expired'],
  captured: [],
  released: [],
  expired: [],
};
export const canTransition = (from: HoldStatus, to: HoldStatus): boolean => HOLD_TRANSITIONS[from].includes(to);

interface HoldRow {
  id: string; idempotency_key: string; account_id: string; shard: number; counter_account_id: string; direction: HoldDirection;
  currency: string; amount: string; status: HoldStatus; expires_at: Date | null; transaction_id: string | null; created_at: Date; closed_at: Date | null;
}

const HOLD_COLUMNS = `id, idempotency_key, account_id, shard, counter_account_id, direction, currency, amount::text AS amount, status, expires_at, transaction_id, created_at, closed_at`;

const toHold = (r: HoldRow): Hold => ({
  id: r.id, idempotencyKey: r.idempotency_key, accountId: r.account_id, counterAccountId: r.counter_account_id, direction: r.direction,
  currency: r.currency, amount: BigInt(r.amount), status: r.status, expiresAt: r.expires_at, transactionId: r.transaction_id,
  createdAt: r.created_at, closedAt: r.closed_at,
});

/** The balance column a hold reserves on its account. */
const pendingDelta = (direction: HoldDirection, amount: bigint) => (direction === 'in' ? { pendingIn: amount } : { pendingOut: amount });

export interface PlaceHoldInput extends LimitPolicy {
  idempotencyKey: string;
  /** The account the hold is on: for an incoming hold, the wallet the deposit will credit. */
  accountId: string;
  /** The other side of the posting on capture: the source of an incoming hold, the destination of an outgoing one. */
  counterAccountId: string;
  direction: HoldDirection;
  amount: bigint;
  expiresAt?: Date | undefined;
  cause?: string | undefined;
}

const INSERT_HOLD = `
WITH h AS (
  INSERT INTO ledger_holds (id, idempotency_key, account_id, shard, counter_account_id, direction, currency, amount, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING ${HOLD_COLUMNS}
), ev AS (
  INSERT INTO ledger_hold_events (hold_id, from_status, to_status, cause) SELECT id, NULL, 'active', $10 FROM h
), u AS (
  UPDATE ledger_balances b SET pending_in = b.pending_in + CASE WHEN h.direction = 'in' THEN $8::bigint ELSE 0 END,
                               pending_out = b.pending_out + CASE WHEN h.direction = 'out' THEN $8::bigint ELSE 0 END, updated_at = now()
  FROM h WHERE b.account_id = h.account_id AND b.shard = h.shard
)
SELECT * FROM h`;

async function holdByKey(q: Queryable, key: string): Promise<Hold | null> {
  const r = await q.query<HoldRow>({ name: 'ledger_hold_by_key', text: `SELECT ${HOLD_COLUMNS} FROM ledger_holds WHERE idempotency_key = $1`, values: [key] });
  return r.rows[0] ? toHold(r.rows[0]) : null;
}

export async function getHold(q: Queryable, id: string): Promise<Hold | null> {
  const r = await q.query<HoldRow>({ name: 'ledger_hold_by_id', text: `SELECT ${HOLD_COLUMNS} FROM ledger_holds WHERE id = $1`, values: [id] });
  return r.rows[0] ? toHold(r.rows[0]) : null;
}

/** Places a hold in `tx`, once per idempotency key; refused as a value when the wallet's rules forbid it. */
export async function placeHold(tx: Tx, input: PlaceHoldInput): Promise<Result<{ hold: Hold; duplicate: boolean }, LedgerError>> {
  if (input.amount <= 0n) throw new RangeError('a hold amount must be positive');
  const existing = await holdByKey(tx, input.idempotencyKey);
  if (existing) return ok({ hold: existing, duplicate: true });
  const locked = await lockBalances(tx, [{ accountId: input.accountId }, { accountId: input.counterAccountId }]);
  const b = locked.get(input.accountId)!;
  const counter = locked.get(input.counterAccountId)!;
  if (counter.currency !== b.currency) throw new RangeError(`hold between accounts in ${b.currency} and ${counter.currency}`);
  const refusal = input.direction === 'in'
    ? checkWallet(b, 0n, input.amount, 0n, input.defaultLimit)
    : checkWallet(b, 0n, 0n, input.amount, input.defaultLimit);
  if (refusal) return err(refusal);
  const r = await tx.query<HoldRow>({
    name: 'ledger_insert_hold', text: INSERT_HOLD,
    values: [uuidv7(), input.idempotencyKey, input.accountId, b.shard, input.counterAccountId, input.direction, b.currency,
      input.amount.toString(), input.expiresAt ?? null, input.cause ?? 'placed'],
  });
  if (r.rows[0]) return ok({ hold: toHold(r.rows[0]), duplicate: false });
  return ok({ hold: (await holdByKey(tx, input.idempotencyKey))!, duplicate: true });
}

const TRANSITION = `
WITH h AS (
  UPDATE ledger_holds SET status = $3, closed_at = now(), transaction_id = $4
  WHERE id = $1 AND status = $2
  RETURNING ${HOLD_COLUMNS}
), ev AS (
  INSERT INTO ledger_hold_events (hold_id, from_status, to_status, cause) SELECT id, $2, $3, $5 FROM h
)
SELECT * FROM h`;

/** Moves hold `id` from `from` to `to`; null when it was not in `from` (someone else moved it). */
async function transition(tx: Tx, id: string, from: HoldStatus, to: HoldStatus, cause: string, transactionId: string | null = null): Promise<HoldRow | null> {
  if (!canTransition(from, to)) throw new Error(`hold transition ${from} -> ${to} is not in the table`);
  const r = await tx.query<HoldRow>({ name: 'ledger_hold_transition', text: TRANSITION, values: [id, from, to, transactionId, cause] });
  return r.rows[0] ?? null;
}

async function notActive(tx: Tx, id: string): Promise<HoldError> {
  const h = await getHold(tx, id);
  return h ? { code: 'hold_not_active', holdId: id, status: h.status } : { code: 'hold_not_found', holdId: id };
}

/**
 * Turns an active hold into a posting (incoming: counter → account; outgoing: account → counter)
 * and releases the reservation, in `tx`. The wallet's rules were checked when the hold was placed:
 * capturing moves the reserved amount from pending to posted and changes neither limit use nor
 * what is available.
 */
export async function captureHold(tx: Tx, holdId: string, cause = 'captured'): Promise<Result<{ hold: Hold; transactionId: string }, HoldError>> {
  const transactionId = uuidv7();
  const row = await transition(tx, holdId, 'active', 'captured', cause, transactionId);
  if (!row) return err(await notActive(tx, holdId));
  const hold = toHold(row);
  const locked = await lockBalances(tx, [{ accountId: hold.accountId, shard: row.shard }, { accountId: hold.counterAccountId }]);
  const sign = hold.direction === 'in' ? 1n : -1n;
  const entries = [
    { accountId: hold.accountId, currency: hold.currency, amount: sign * hold.amount },
    { accountId: hold.counterAccountId, currency: hold.currency, amount: -sign * hold.amount },
  ];
  const deltas = new BalanceDeltas()
    .add(hold.accountId, row.shard, { posted: sign * hold.amount, ...pendingDelta(hold.direction, -hold.amount) })
    .add(hold.counterAccountId, locked.get(hold.counterAccountId)!.shard, { posted: -sign * hold.amount });
  const written = await writePosting(tx, { idempotencyKey: `hold:${hold.id}:capture`, kind: 'hold_capture', metadata: { hold_id: hold.id } }, entries, deltas, transactionId);
  if (!written) throw new Error(`hold ${hold.id} was captured twice`);
  return ok({ hold, transactionId });
}

/** Releases an active hold: the reservation ends and nothing is posted. */
export async function releaseHold(tx: Tx, holdId: string, cause = 'released'): Promise<Result<Hold, HoldError>> {
  const row = await transition(tx, holdId, 'active', 'released', cause);
  if (!row) return err(await notActive(tx, holdId));
  const hold = toHold(row);
  await lockBalances(tx, [{ accountId: hold.accountId, shard: row.shard }]);
  await applyDeltas(tx, new BalanceDeltas().add(hold.accountId, row.shard, pendingDelta(hold.direction, -hold.amount)));
  return ok(hold);
}

const EXPIRE_DUE = `
WITH due AS (
  SELECT id FROM ledger_holds WHERE status = 'active' AND expires_at <= $1
  ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
), h AS (
  UPDATE ledger_holds SET status = 'expired', closed_at = now() FROM due
  WHERE ledger_holds.id = due.id AND ledger_holds.status = 'active'
  RETURNING ledger_holds.id, account_id, shard, direction, amount::text AS amount
), ev AS (
  INSERT INTO ledger_hold_events (hold_id, from_status, to_status, cause) SELECT id, 'active', 'expired', 'expired' FROM h
)
SELECT * FROM h`;

const LOCK_ROWS = `
SELECT 1 FROM ledger_balances WHERE (account_id, shard) IN (SELECT * FROM unnest($1::uuid[], $2::smallint[]))
ORDER BY account_id, shard FOR UPDATE`;

/** Expires up to `batch` active holds whose time has come (a periodic job); returns how many. */
export async function expireHolds(pool: pg.Pool, now: Date, batch = 500): Promise<number> {
  return withTx(pool, async (tx) => {
    const r = await tx.query<{ id: string; account_id: string; shard: number; direction: HoldDirection; amount: string }>(
      { name: 'ledger_expire_holds', text: EXPIRE_DUE, values: [now, batch] });
    if (r.rows.length === 0) return 0;
    const deltas = new BalanceDeltas();
    for (const h of r.rows) deltas.add(h.account_id, h.shard, pendingDelta(h.direction, -BigInt(h.amount)));
    // Balance rows in the same order as every other writer takes them.
    await tx.query({ name: 'ledger_lock_rows', text: LOCK_ROWS, values: [r.rows.map((h) => h.account_id), r.rows.map((h) => h.shard)] });
    await applyDeltas(tx, deltas);
    return r.rows.length;
  });
}
