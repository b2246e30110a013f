// Resolving a case, optionally with an action performed through the normal paths in the same
// request. The action runs first, outside any transaction (it may call a provider); only when it
// succeeds is the case resolved, with the action and its result kept as the resolution. A refused
// action leaves the case as it was, with the refusal in its history.
import type pg from 'pg';
import { z } from 'zod';
import { withTx } from '../kernel/db.ts';
import { BadRequestError, SeigoError } from '../kernel/errors.ts';
import type { CaseActions } from './actions.ts';
import { proposeAdjustment, type Adjustment, type AdjustmentEntry } from './adjustments.ts';
import { CaseError, getCase, recordEvent, transitionOrThrow, type Case } from './cases.ts';
import { canTransition } from './state.ts';

export const MANUAL_LEDGER_ADJUSTMENT = 'manual_ledger_adjustment';

export interface ResolveInput {
  actor: string;
  note?: string | undefined;
  action?: { type: string; params?: Record<string, unknown> | undefined } | undefined;
}

export type ResolveOutcome =
  | { resolved: true; case: Case; action?: { type: string; result: Record<string, unknown> } }
  /** manual_ledger_adjustment: proposed; a second operator's approval posts it and resolves the case. */
  | { resolved: false; case: Case; adjustment: Adjustment };

/** An action's refusal, as problem+json: 422 with the action's own stable code. */
export class ActionRefusedError extends SeigoError {
  constructor(code: string, message: string, detail?: Record<string, unknown>) {
    super(code, message, 422, false, detail);
  }
}

/** A proposal as callers send it: on /resolve as the action's params, or on its own route. */
export const adjustmentProposal = z.object({
  entries: z.array(z.object({ account_id: z.string().uuid(), amount: z.string().regex(/^-?\d{1,18}$/, 'integer minor units as a string') }).strict()).min(2).max(50),
  memo: z.string().min(1).max(2000),
}).strict();

function parseAdjustment(params: Record<string, unknown>): { entries: AdjustmentEntry[]; memo: string } {
  const p = adjustmentProposal.safeParse(params);
  if (!p.success) {
    throw new BadRequestError('adjustment_invalid', `manual_ledger_adjustment needs params {entries: [{account_id, amount}], memo}: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { entries: p.data.entries.map((e) => ({ accountId: e.account_id, amount: BigInt(e.amount) })), memo: p.data.memo };
}

export async function resolveCase(pool: pg.Pool, actions: CaseActions, id: string, r: ResolveInput): Promise<ResolveOutcome> {
  const current = await getCase(pool, id);
  if (!current) throw new CaseError('case_not_found', `no case ${id}`);
  // Refuse before acting: an action on a closed case would be performed and then not recorded as its resolution.
  if (!canTransition(current.status, 'resolved')) {
    throw new CaseError('case_transition_not_allowed', `case ${id} is ${current.status}; it cannot become resolved`, { status: current.status, to: 'resolved' });
  }
  if (!r.action) return { resolved: true, case: await withTx(pool, (tx) => transitionOrThrow(tx, id, 'resolved', { actor: r.actor, note: r.note })) };

  const { type, params = {} } = r.action;
  if (type === MANUAL_LEDGER_ADJUSTMENT) {
    const adjustment = await proposeAdjustment(pool, id, { ...parseAdjustment(params), actor: r.actor });
    return { resolved: false, case: (await getCase(pool, id))!, adjustment };
  }
  const action = actions.get(type);
  if (!action) {
    const available = [...actions.list().map((a) => a.name), MANUAL_LEDGER_ADJUSTMENT].sort();
    throw new ActionRefusedError('action_not_available', `no case action "${type}" is available in this deployment; available: ${available.join(', ')}`, { available });
  }
  const outcome = await action.perform({ pool, case: current, actor: r.actor, params });
  if (!outcome.ok) {
    await recordEvent(pool, id, { actor: r.actor, type: 'action_failed', note: outcome.message, data: { action: type, code: outcome.code } });
    throw new ActionRefusedError(outcome.code, outcome.message, { action: type });
  }
  // Recorded on its own: it was performed even if someone closes the case before we do.
  await recordEvent(pool, id, { actor: r.actor, type: 'action_performed', data: { action: type, result: outcome.result } });
  const resolved = await withTx(pool, (tx) => transitionOrThrow(tx, id, 'resolved', { actor: r.actor, note: r.note, resolution: { action: type, result: outcome.result } }));
  return { resolved: true, case: resolved, action: { type, result: outcome.result } };
}
