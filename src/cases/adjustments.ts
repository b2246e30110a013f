// Manual ledger adjustments with two-person approval (four eyes): one operator proposes balanced
// entries on a case; a different operator approves, and only then is the posting made, through the
// ledger's one posting path, keyed by the proposal id so that it happens at most once. Approval
// resolves the case; a closed case takes no more postings.
import type pg from 'pg';
import { withTx, type Queryable } from '../kernel/db.ts';
import { BadRequestError, NotFoundError, SeigoError } from '../kernel/errors.ts';
import { uuidv7 } from '../kernel/ids.ts';
import { post } from '../ledger/index.ts';
import { CaseError, lockCase, recordEvent, transitionCase } from './cases.ts';

export type AdjustmentStatus = 'proposed' | 'posted' | 'rejected';

export interface AdjustmentEntry { accountId: string; amount: bigint }

export interface Adjustment {
  id: string;
  caseId: string;
  status: AdjustmentStatus;
  entries: AdjustmentEntry[];
  memo: string;
  proposedBy: string;
  proposedAt: Date;
  decidedBy: string | null;
  decidedAt: Date | null;
  decisionNote: string | null;
  ledgerTransactionId: string | null;
}

interface AdjustmentRow {
  id: string; case_id: string; status: AdjustmentStatus; entries: { account_id: string; amount: string }[]; memo: string;
  proposed_by: string; proposed_at: Date; decided_by: string | null; decided_at: Date | null; decision_note: string | null; ledger_transaction_id: string | null;
}

const toAdjustment = (r: AdjustmentRow): Adjustment => ({
  id: r.id, caseId: r.case_id, status: r.status, entries: r.entries.map((e) => ({ accountId: e.account_id, amount: BigInt(e.amount) })), memo: r.memo,
  proposedBy: r.proposed_by, proposedAt: r.proposed_at, decidedBy: r.decided_by, decidedAt: r.decided_at, decisionNote: r.decision_note,
  ledgerTransactionId: r.ledger_transaction_id,
});

export class AdjustmentError extends SeigoError {
  constructor(code: 'adjustment_not_found' | 'adjustment_self_approval' | 'adjustment_not_pending', message: string, detail?: Record<string, unknown>) {
    super(code, message, code === 'adjustment_not_found' ? 404 : code === 'adjustment_self_approval' ? 403 : 409, false, detail);
  }
}

/** The idempotency key of an approved proposal's posting: one posting per proposal, ever. */
export const adjustmentPostingKey = (id: string): string => `case-adjustment:${id}`;

/**
 * Records a proposal: at least two non-zero entries on existing accounts, summing to zero per
 * currency (checked now, so the approver sees a posting that can be made). The case must be open.
 */
export async function proposeAdjustment(pool: pg.Pool, caseId: string, p: { entries: AdjustmentEntry[]; memo: string; actor: string }): Promise<Adjustment> {
  if (p.entries.length < 2) throw new BadRequestError('adjustment_invalid', 'an adjustment needs at least two entries');
  if (p.entries.some((e) => e.amount === 0n)) throw new BadRequestError('adjustment_invalid', 'entry amounts must be non-zero');
  return withTx(pool, async (tx) => {
    const c = await lockCase(tx, caseId);
    if (c.closedAt) throw new CaseError('case_closed', `case ${caseId} is ${c.status}; open a new case for a further adjustment`, { status: c.status });
    const ids = [...new Set(p.entries.map((e) => e.accountId))];
    const acc = await tx.query<{ id: string; currency: string }>('SELECT id, currency FROM ledger_accounts WHERE id = ANY($1::uuid[])', [ids]);
    const currency = new Map(acc.rows.map((a) => [a.id, a.currency]));
    const missing = ids.filter((id) => !currency.has(id));
    if (missing.length) throw new NotFoundError('account_not_found', `no ledger account ${missing.join(', ')}`);
    const sums = new Map<string, bigint>();
    for (const e of p.entries) sums.set(currency.get(e.accountId)!, (sums.get(currency.get(e.accountId)!) ?? 0n) + e.amount);
    const off = [...sums].filter(([, s]) => s !== 0n);
    if (off.length) {
      throw new BadRequestError('adjustment_unbalanced', `entries must sum to zero per currency: ${off.map(([cur, s]) => `${cur} sums to ${s}`).join(', ')}`,
        { sums: Object.fromEntries(off.map(([cur, s]) => [cur, s.toString()])) });
    }
    const id = uuidv7();
    const entries = p.entries.map((e) => ({ account_id: e.accountId, amount: e.amount.toString() }));
    const r = await tx.query<AdjustmentRow>(
      'INSERT INTO case_adjustments (id, case_id, entries, memo, proposed_by) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [id, caseId, JSON.stringify(entries), p.memo, p.actor]);
    await recordEvent(tx, caseId, { actor: p.actor, type: 'adjustment_proposed', note: p.memo, data: { adjustment_id: id, entries } });
    return toAdjustment(r.rows[0]!);
  });
}

async function lockAdjustment(tx: Queryable, caseId: string, id: string): Promise<Adjustment> {
  const r = await tx.query<AdjustmentRow>('SELECT * FROM case_adjustments WHERE id = $1 AND case_id = $2 FOR UPDATE', [id, caseId]);
  if (!r.rows[0]) throw new AdjustmentError('adjustment_not_found', `no adjustment ${id} on case ${caseId}`);
  return toAdjustment(r.rows[0]);
}

/**
 * A second operator approves: the posting is made (limits not enforced: this is an operator's
 * correction), the proposal records it, and the case is resolved — all in one transaction. A
 * closed case refuses (case_closed). The proposer cannot approve. Approving an approved proposal again changes nothing
 * and returns it with `duplicate: true`.
 */
export async function approveAdjustment(
  pool: pg.Pool, caseId: string, id: string, a: { actor: string; note?: string | undefined },
): Promise<{ adjustment: Adjustment; duplicate: boolean }> {
  return withTx(pool, async (tx) => {
    const adj = await lockAdjustment(tx, caseId, id);
    if (adj.proposedBy === a.actor) {
      throw new AdjustmentError('adjustment_self_approval', `${a.actor} proposed adjustment ${id}; a different operator must approve it`);
    }
    if (adj.status === 'posted') return { adjustment: adj, duplicate: true };
    if (adj.status !== 'proposed') throw new AdjustmentError('adjustment_not_pending', `adjustment ${id} is ${adj.status}`, { status: adj.status });
    // Money moves only for a case still waiting for it: of two proposals on one case, the first approved wins.
    const c = await lockCase(tx, caseId);
    if (c.closedAt) throw new CaseError('case_closed', `case ${caseId} is ${c.status}; reject this proposal or open a new case`, { status: c.status });
    const posted = await post(tx, {
      idempotencyKey: adjustmentPostingKey(id), kind: 'manual_adjustment', description: adj.memo,
      metadata: { case_id: caseId, adjustment_id: id, proposed_by: adj.proposedBy, approved_by: a.actor },
      entries: adj.entries,
    }, { enforce: false });
    // With enforcement off the ledger refuses nothing as a value; a thrown error rolls back the approval.
    if (!posted.ok) throw new SeigoError(posted.error.code, `the ledger refused the adjustment: ${posted.error.code}`, 422);
    const r = await tx.query<AdjustmentRow>(
      `UPDATE case_adjustments SET status = 'posted', decided_by = $2, decided_at = now(), decision_note = $3, ledger_transaction_id = $4
       WHERE id = $1 RETURNING *`, [id, a.actor, a.note ?? null, posted.value.transactionId]);
    const data = { adjustment_id: id, ledger_transaction_id: posted.value.transactionId, proposed_by: adj.proposedBy };
    await recordEvent(tx, caseId, { actor: a.actor, type: 'adjustment_approved', note: a.note ?? null, data });
    await transitionCase(tx, caseId, 'resolved', { actor: a.actor, note: a.note ?? adj.memo, resolution: { action: 'manual_ledger_adjustment', ...data, approved_by: a.actor } });
    return { adjustment: toAdjustment(r.rows[0]!), duplicate: false };
  });
}

/** Rejects (or, by its proposer, withdraws) a pending proposal; nothing is posted. */
export async function rejectAdjustment(pool: pg.Pool, caseId: string, id: string, a: { actor: string; note: string }): Promise<Adjustment> {
  return withTx(pool, async (tx) => {
    const adj = await lockAdjustment(tx, caseId, id);
    if (adj.status !== 'proposed') throw new AdjustmentError('adjustment_not_pending', `adjustment ${id} is ${adj.status}`, { status: adj.status });
    const r = await tx.query<AdjustmentRow>(
      `UPDATE case_adjustments SET status = 'rejected', decided_by = $2, decided_at = now(), decision_note = $3 WHERE id = $1 RETURNING *`, [id, a.actor, a.note]);
    await recordEvent(tx, caseId, { actor: a.actor, type: 'adjustment_rejected', note: a.note, data: { adjustment_id: id, withdrawn: adj.proposedBy === a.actor } });
    return toAdjustment(r.rows[0]!);
  });
}

export async function listAdjustments(q: Queryable, caseId: string): Promise<Adjustment[]> {
  const r = await q.query<AdjustmentRow>('SELECT * FROM case_adjustments WHERE case_id = $1 ORDER BY proposed_at, id', [caseId]);
  return r.rows.map(toAdjustment);
}
