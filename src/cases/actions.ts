// What resolving a case may do: named actions performed through the normal paths (re-ask about an
// operation, redrive a delivery, replay a notification, re-import a reconciliation row). The engine holds one registry;
// modules register their actions by name (reconciliation registers `reimport_row`), so this module
// needs to know none of them. `manual_ledger_adjustment` is not here: it waits for a second
// operator's approval (adjustments.ts) instead of running in the resolving request.
import type pg from 'pg';
import { z } from 'zod';
import { isUuid } from '../kernel/ids.ts';
import { replayInbox } from '../intake/index.ts';
import type { Operations } from '../operations/index.ts';
import { redrive } from '../outbox/index.ts';
import type { Case, CaseSubjectType } from './cases.ts';

export interface CaseActionContext {
  pool: pg.Pool;
  case: Case;
  /** The operator resolving the case. */
  actor: string;
  /** The action's own parameters from the request, unvalidated: each action checks its own. */
  params: Record<string, unknown>;
}

/** Performed: the case is resolved with `result`; refused: the case stays as it was, with the refusal in its history. */
export type ActionOutcome =
  | { ok: true; result: Record<string, unknown> }
  | { ok: false; code: string; message: string };

export interface CaseAction {
  name: string;
  description: string;
  perform(ctx: CaseActionContext): Promise<ActionOutcome>;
}

export class CaseActions {
  private readonly actions = new Map<string, CaseAction>();

  /** Adds an action; a second action under the same name is a wiring mistake. */
  register(action: CaseAction): this {
    if (this.actions.has(action.name)) throw new Error(`case action "${action.name}" is already registered`);
    this.actions.set(action.name, action);
    return this;
  }

  get(name: string): CaseAction | undefined {
    return this.actions.get(name);
  }

  list(): { name: string; description: string }[] {
    return [...this.actions.values()].map((a) => ({ name: a.name, description: a.description })).sort((a, b) => a.name.localeCompare(b.name));
  }
}

const refuse = (code: string, message: string): ActionOutcome => ({ ok: false, code, message });

/**
 * The record an action works on: `params[param]` when given, else the case's subject or the first
 * related record of that type.
 */
export function targetOf(ctx: CaseActionContext, type: CaseSubjectType, param: string): string | ActionOutcome {
  const given = z.object({ [param]: z.string().uuid() }).partial().safeParse(ctx.params);
  if (!given.success) return refuse('invalid_action_params', `${param} must be a UUID`);
  const explicit = given.data[param];
  if (typeof explicit === 'string') return explicit;
  const c = ctx.case;
  // Records named by hand may carry any text as an id; only a UUID can name one of ours.
  const found = [c.subject, ...c.related].find((r) => r.type === type && isUuid(r.id))?.id;
  return found ?? refuse('action_not_applicable', `case ${c.id} concerns no ${type}; name one with ${param}`);
}

/**
 * retry_operation: an operation never sent is sent now; an unknown one is asked about now (the
 * janitor's inquiry, for this one operation). Succeeds when the operation ends in a known state.
 */
export function retryOperationAction(operations: Operations): CaseAction {
  return {
    name: 'retry_operation',
    description: 'Send an operation that was recorded but never sent, or ask the provider now about an unknown one; resolves the case once the outcome is known',
    async perform(ctx) {
      const id = targetOf(ctx, 'operation', 'operation_id');
      if (typeof id !== 'string') return id;
      const op = await operations.get(id);
      if (!op) return refuse('operation_not_found', `no operation ${id}`);
      let after;
      switch (op.status) {
        case 'pending': after = await operations.execute(id); break;
        case 'unknown': after = (await operations.inquireNow(id)) ?? op; break;
        case 'sending': return refuse('operation_in_flight', `operation ${id} is being sent right now; try again when it has an answer`);
        default: return refuse('operation_already_final', `operation ${id} is already ${op.status}; resolve the case without an action`);
      }
      if (after.status === 'unknown' || after.status === 'sending') {
        return refuse('operation_still_unknown', `operation ${id} is still ${after.status}: ${after.error_message ?? 'no answer from the provider'}`);
      }
      return { ok: true, result: { operation_id: id, status: after.status, error_code: after.error_code } };
    },
  };
}

/** redrive_delivery: a dead (or cancelled) delivery back to pending, as `POST /deliveries/:id/redrive` does. */
export function redriveDeliveryAction(): CaseAction {
  return {
    name: 'redrive_delivery',
    description: 'Put a dead or cancelled delivery back in the queue (it is retried from its first attempt)',
    async perform(ctx) {
      const id = targetOf(ctx, 'delivery', 'delivery_id');
      if (typeof id !== 'string') return id;
      const n = await redrive(ctx.pool, { ids: [id], statuses: ['dead', 'cancelled'] });
      if (n === 0) return refuse('delivery_not_redrivable', `no dead or cancelled delivery ${id}`);
      return { ok: true, result: { delivery_id: id, redriven: n } };
    },
  };
}

/** replay_inbox: a stored notification processed again through intake (idempotent, as `POST /inbox/:id/replay`). */
export function replayInboxAction(): CaseAction {
  return {
    name: 'replay_inbox',
    description: 'Process a stored provider notification again through intake (its effects happen at most once)',
    async perform(ctx) {
      const id = targetOf(ctx, 'inbox', 'inbox_id');
      if (typeof id !== 'string') return id;
      if (!(await replayInbox(ctx.pool, id))) return refuse('inbox_not_found', `no inbox row ${id}`);
      return { ok: true, result: { inbox_id: id, replayed: true } };
    },
  };
}
