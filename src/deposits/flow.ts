// The shape every deposit that calls a provider shares: tx1 records the deposit and its operation
// (or refuses), the call runs outside any transaction, and a call without an answer leaves the
// deposit `unknown` until the operation is settled.
import type pg from 'pg';
import { BadRequestError, err, ok, type Result } from '../kernel/errors.ts';
import type { Logger } from '../kernel/logger.ts';
import type { Operation, Operations } from '../operations/index.ts';
import type { Queryable, Tx } from '../kernel/db.ts';
import { nameBasedId, uuidv7 } from '../kernel/ids.ts';
import { ensureAccounts, headroom, lockBalances, releaseHold } from '../ledger/index.ts';
import { publish } from '../outbox/publish.ts';
import {
  DEPOSIT_COLUMNS, depositMessage, inFlightSum, toDeposit, transitionDeposit, type Deposit, type DepositMethod, type DepositRow,
} from './state.ts';
import type { CreateDepositError } from './deposits.ts';

/** Thrown inside tx1 to roll it back (account creation included) and return the refusal as a value. */
export class Refused extends Error {
  constructor(readonly refusal: CreateDepositError) {
    super(refusal.code);
  }
}

/** The checks every deposit request starts with. */
export function checkDepositInput(input: { userId: string; amount: bigint }, maxAmount: bigint): void {
  if (input.userId.length < 1 || input.userId.length > 255) throw new BadRequestError('invalid_user_id', 'user_id must have 1 to 255 characters');
  if (input.amount <= 0n || input.amount > maxAmount) throw new BadRequestError('invalid_amount', `amount must be between 1 and ${maxAmount}`);
}

export async function loadDeposit(pool: pg.Pool, id: string): Promise<Deposit | null> {
  const r = await pool.query<DepositRow>({ name: 'deposits_get', text: `SELECT ${DEPOSIT_COLUMNS} FROM deposits WHERE id = $1`, values: [id] });
  return r.rows[0] ? toDeposit(r.rows[0]) : null;
}

/**
 * Runs tx1 (`record`), then the provider call outside any transaction, and returns the deposit as
 * it stands afterwards. `what` names the call in causes and logs ("charge", "reservation").
 */
export async function recordThenSend(
  deps: { pool: pg.Pool; operations: Operations; log: Logger },
  what: string,
  record: () => Promise<{ deposit: Deposit; operationId: string | null }>,
): Promise<Result<Deposit, CreateDepositError>> {
  let recorded: { deposit: Deposit; operationId: string | null };
  try {
    recorded = await record();
  } catch (e) {
    if (e instanceof Refused) return err(e.refusal);
    throw e;
  }
  if (recorded.operationId === null) return ok(recorded.deposit);
  const id = recorded.deposit.id;
  // tx2 (the result and its effects) runs inside execute.
  let op: Operation;
  try {
    op = await deps.operations.execute(recorded.operationId);
  } catch (e) {
    // Recording the result failed (the database, most likely): the operation stays `sending`
    // until its lease ends, then the janitor makes it unknown and asks the provider.
    deps.log.error({ depositId: id, operationId: recorded.operationId, err: (e as Error).message }, `deposit ${what}: recording the result failed`);
    return ok((await loadDeposit(deps.pool, id))!);
  }
  if (op.status === 'unknown') {
    await transitionDeposit(deps.pool, id, 'processing', 'unknown',
      `${what} outcome unknown: ${op.error_code ?? 'no answer'}${op.error_message ? ` (${op.error_message})` : ''}`);
  }
  return ok((await loadDeposit(deps.pool, id))!);
}

export interface DepositRequest {
  userId: string;
  method: DepositMethod;
  amount: bigint;
  currency: string;
  provider: string;
  clientKey?: string | undefined;
}

/**
 * tx1's admission, under the lock of the user's wallet balance row (which serializes this user's
 * deposit requests with each other and with every credit, so the in-flight sum is exact): a known
 * client key returns its deposit; a restricted user or an amount over the headroom (posted +
 * incoming holds + deposits still in flight + this one ≤ limit) is refused; otherwise the deposit
 * is inserted `pending`. The provider's clearing account is created here too, so tx2 only looks it up.
 */
export async function admitDeposit(
  tx: Tx, req: DepositRequest, defaultLimit: bigint,
): Promise<{ existing: Deposit } | { id: string; walletId: string; clearingId: string }> {
  const [wallet, clearing] = await ensureAccounts(tx, [
    { kind: 'wallet', owner: req.userId, currency: req.currency },
    { kind: 'clearing', owner: req.provider, currency: req.currency },
  ]);
  const b = (await lockBalances(tx, [{ accountId: wallet!.id }])).get(wallet!.id)!;
  if (req.clientKey !== undefined) {
    const ex = await tx.query<DepositRow>(`SELECT ${DEPOSIT_COLUMNS} FROM deposits WHERE user_id = $1 AND client_key = $2`, [req.userId, req.clientKey]);
    if (ex.rows[0]) {
      const d = toDeposit(ex.rows[0]);
      if (d.method !== req.method || d.amount !== req.amount || d.currency !== req.currency) throw new Refused({ code: 'client_key_reused', depositId: d.id });
      return { existing: d };
    }
  }
  if (b.restricted) throw new Refused({ code: 'account_restricted' });
  let room = headroom(b, defaultLimit) - await inFlightSum(tx, req.userId, req.currency);
  if (room < 0n) room = 0n;
  if (req.amount > room) throw new Refused({ code: 'balance_limit_exceeded', headroom: room });
  const id = uuidv7();
  await tx.query(
    `WITH d AS (INSERT INTO deposits (id, user_id, method, amount, currency, status, provider, client_key)
                VALUES ($1, $2, $3, $4::bigint, $5, 'pending', $6, $7) RETURNING id)
     INSERT INTO deposit_events (deposit_id, from_status, to_status, cause) SELECT id, NULL, 'pending', 'requested' FROM d`,
    [id, req.userId, req.method, req.amount.toString(), req.currency, req.provider, req.clientKey ?? null]);
  return { id, walletId: wallet!.id, clearingId: clearing!.id };
}

/**
 * Publishes a `deposit.*` notice about `d`, once: the message id is derived from the deposit and
 * `suffix` (the topic unless a deposit can have several of that topic, e.g. one per credit attempt).
 */
export function publishDeposit(q: Queryable, topic: string, d: Deposit, suffix: string = topic): Promise<unknown> {
  return publish(q, topic, depositMessage(d), {
    id: nameBasedId('deposit', d.id, suffix), key: d.id, entity: { type: 'deposit', id: d.id }, attributes: { method: d.method, provider: d.provider },
  });
}

/** Ends the deposit's incoming hold (paid, expired, failed): it no longer counts toward the limit. Under the deposit's row lock. */
export async function releaseDepositHold(tx: Tx, d: Deposit, cause: string, log: Logger): Promise<void> {
  if (!d.holdId) return;
  const r = await releaseHold(tx, d.holdId, cause);
  if (!r.ok) log.warn({ depositId: d.id, holdId: d.holdId, err: r.error.code }, 'deposit hold was no longer active');
  await tx.query('UPDATE deposits SET hold_id = NULL WHERE id = $1', [d.id]);
}
