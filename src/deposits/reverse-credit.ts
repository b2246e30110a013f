// Taking back a deposit's booking after the money was withdrawn at the source (a 速報取消, a bank's
// 取消 record): the ledger transaction is reversed with the limit check off (the money is gone
// whether or not the user spent it), so the wallet may go below zero.
import type { Queryable } from '../kernel/db.ts';
import { findAccount, getBalance, reverse } from '../ledger/index.ts';

export interface ReverseCreditInput {
  transactionId: string;
  idempotencyKey: string;
  description: string;
  defaultLimit: bigint;
  owner: string;
  currency: string;
  /** The part of the deposit that went to the wallet. */
  credited: bigint;
}

/**
 * Reverses the deposit's posting and returns its shortfall: how far this reversal took the wallet
 * below zero. At most `credited`, so a deficit the wallet already had is not counted again.
 */
export async function reverseDepositCredit(q: Queryable, i: ReverseCreditInput): Promise<bigint> {
  const r = await reverse(q, i.transactionId, { enforce: false, idempotencyKey: i.idempotencyKey, description: i.description, defaultLimit: i.defaultLimit });
  if (!r.ok) throw new Error(`reversing ledger transaction ${i.transactionId} failed: ${r.error.code}`);
  if (i.credited <= 0n) return 0n;
  const wallet = await findAccount(q, 'wallet', i.owner, i.currency);
  const posted = wallet ? (await getBalance(q, wallet.id))!.posted : 0n;
  if (posted >= 0n) return 0n;
  return -posted < i.credited ? -posted : i.credited;
}
