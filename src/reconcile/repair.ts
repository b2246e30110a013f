// Repair of a run's breaks, through the normal paths only (import what we lost, re-ask about what they lost):
//   - their record says a payment ended (paid, failed, expired) and ours does not: a synthetic
//     notification in the provider's own format goes into the inbox (source 'reconciliation'), and
//     the inbox worker applies it with the same handlers as a webhook. Its event id is
//     `reconcile:<payment id>:<their status>`, so runs feed one notification per payment state; a
//     real webhook for the same state (another event id) is absorbed downstream, because every
//     deposit handler moves the deposit from its status under its row lock and credits with the
//     deposit's ledger key, which is how a duplicated webhook is absorbed too;
//   - a Zengin transfer we have no record of: imported by importTransfer, the file import's own path;
//   - we have it and they do not (missing there): the operation janitor asks the provider now
//     (inquireSoon), which settles an unknown charge or reservation;
//   - the rest, and a repaired break still seen `escalateAfterMs` after its repair: a case.
import { withTx } from '../kernel/db.ts';
import type { CaseAction } from '../cases/index.ts';
import { importTransfer, type CreditedAccountRef } from '../deposits/index.ts';
import type { DepositType } from '../providers/zengin/index.ts';
import { replayInbox } from '../intake/index.ts';
import type { RepairCounts, RunSource } from './classes.ts';
import type { ReconcileDeps } from './run.ts';
import { openBreakCase } from './case.ts';
import { logCaseOpened } from '../cases/index.ts';

export interface BreakRow {
  id: string;
  scope: string;
  provider: string | null;
  class: string;
  match_key: string;
  external_id: string | null;
  internal_type: string | null;
  internal_id: string | null;
  external_status: string | null;
  internal_status: string | null;
  external_amount: string | null;
  internal_amount: string | null;
  external_raw: { status?: string; object?: Record<string, unknown> } & Record<string, unknown> | null;
  repair: 'none' | 'notification' | 'inquiry' | 'import' | 'case';
  repair_ref: string | null;
  repaired_at: Date | null;
  first_run_id: string;
}

const BREAK_SELECT = `SELECT id::text, scope, provider, class, match_key, external_id, internal_type, internal_id, external_status, internal_status,
  external_amount::text, internal_amount::text, external_raw, repair, repair_ref, repaired_at, first_run_id FROM reconcile_breaks`;

// Ours has not moved on: the notice that would move it was lost.
const NOT_FINAL_HERE = new Set(['pending', 'processing', 'unknown', 'awaiting_payment', 'paid_preliminary', 'expired', 'cancelled']);

export async function repairRun(deps: ReconcileDeps, runId: string, source: RunSource, o: { escalateAfterMs: number }): Promise<RepairCounts> {
  const counts: RepairCounts = { notifications: 0, inquiries: 0, imports: 0, cases: 0 };
  const r = await deps.pool.query<BreakRow>(`${BREAK_SELECT} WHERE run_id = $1 AND status = 'open' AND repair <> 'case' ORDER BY id`, [runId]);
  const mark = (b: BreakRow, repair: BreakRow['repair'], ref: string | null, caseId?: string | null) => deps.pool.query(
    `UPDATE reconcile_breaks SET repair = $2, repair_ref = $3, repaired_at = now(), case_id = coalesce($4, case_id) WHERE id = $1`,
    [b.id, repair, ref, caseId ?? null]);

  for (const b of r.rows) {
    try {
      if (b.repair !== 'none') {
        // Repaired before and still here: unless the repair may still be on its way, a person looks.
        if (b.repaired_at && Date.now() - b.repaired_at.getTime() >= o.escalateAfterMs) {
          const c = await openBreakCase(deps.pool, b, `still ${b.class} after ${b.repair} ${b.repaired_at.toISOString()}`);
          if (c) logCaseOpened(deps.log, c, { cause: `recon_${b.class}`, subject: { type: 'recon_break', id: b.id } });
          await mark(b, 'case', c?.id ?? null, c?.id);
          counts.cases++;
        }
        continue;
      }
      const done = await tryRepair(deps, b, source, counts);
      if (done) continue;
      const c = await openBreakCase(deps.pool, b, 'no automatic repair for this break');
      if (c) logCaseOpened(deps.log, c, { cause: `recon_${b.class}`, subject: { type: 'recon_break', id: b.id } });
      await mark(b, 'case', c?.id ?? null, c?.id);
      counts.cases++;
    } catch (e) {
      deps.log.error({ runId, breakId: b.id, err: (e as Error).message }, 'repairing a reconcile break failed; the next run tries again');
    }
  }

  async function tryRepair(d: ReconcileDeps, b: BreakRow, src: RunSource, c: RepairCounts): Promise<boolean> {
    const theirsEnded = b.class === 'missing_here' || (b.class === 'status_mismatch' && (b.internal_status === null || NOT_FINAL_HERE.has(b.internal_status)));
    if ((src === 'provider' && theirsEnded) || (src === 'zengin' && b.class === 'missing_here')) {
      const fed = await feed(d, b);
      if (!fed) return false;
      await mark(b, fed.repair, fed.ref);
      if (fed.repair === 'notification') c.notifications++;
      else c.imports++;
      return true;
    }
    if (b.class === 'missing_there' && b.internal_type === 'deposit' && b.internal_id) {
      const op = await d.pool.query<{ operation_id: string | null }>('SELECT operation_id FROM deposits WHERE id = $1', [b.internal_id]);
      const opId = op.rows[0]?.operation_id;
      if (opId && await d.operations.inquireSoon(d.pool, opId)) {
        await mark(b, 'inquiry', opId);
        c.inquiries++;
        return true;
      }
    }
    return false;
  }
  return counts;
}

/**
 * Their row through our normal path: a provider's payment as a synthetic notification into the
 * inbox (source 'reconciliation'), a bank's transfer into the transfer import. Undefined when the
 * break carries nothing that path can take.
 */
async function feed(d: ReconcileDeps, b: BreakRow): Promise<{ repair: 'notification' | 'import'; ref: string } | undefined> {
  if (b.scope.startsWith('provider:') && b.provider && b.external_raw?.object) {
    const object = b.external_raw.object;
    const id = typeof object.id === 'string' ? object.id : undefined;
    const status = typeof object.status === 'string' ? object.status : undefined;
    if (!id || !status) return undefined;
    const eventId = `reconcile:${id}:${status}`;
    const n = d.providers.get(b.provider)?.syntheticNotification?.(object, { eventId, at: new Date() });
    if (!n) return undefined;
    const w = await d.inboxWriter.write({ provider: b.provider, eventId, headers: { 'x-seigo-source': 'reconciliation' }, body: n.body, source: 'reconciliation' });
    return { repair: 'notification', ref: w.id };
  }
  if (b.scope === 'zengin' && b.external_raw) {
    const t = b.external_raw as unknown as { externalId: string; account: CreditedAccountRef; amount: string; payerName: string; transactionDate?: string };
    // A row staged before the type was kept: its id names it (zengin:<bank>-<branch>-<type>-<number>:…).
    const depositType = t.account.depositType ?? (/^zengin:\d{4}-\d{3}-([1249])-/.exec(t.externalId)?.[1] as DepositType | undefined);
    const account = { ...t.account, depositType };
    const imported = await withTx(d.pool, (tx) => importTransfer(tx, { ...t, account, amount: BigInt(t.amount) }, d.bankTransferPolicy));
    return { repair: 'import', ref: imported.transfer.externalId };
  }
  return undefined;
}

const BREAK_ID = /^[0-9]{1,18}$/;

/**
 * `reimport_row` for cases (src/cases): the break's row through the normal path again. A
 * notification already in the inbox is replayed (processed again, idempotently); otherwise it is fed
 * as the repair would have. The case is resolved when the row went in, not when it took effect.
 */
export function reimportRowAction(deps: ReconcileDeps): CaseAction {
  return {
    name: 'reimport_row',
    description: "Feed a reconciliation break's row through the normal path again: the provider's notification into the inbox, or the bank transfer into the import",
    async perform(ctx) {
      const c = ctx.case;
      const id = [c.subject, ...c.related].find((r) => r.type === 'recon_break' && BREAK_ID.test(r.id))?.id;
      if (!id) return { ok: false, code: 'action_not_applicable', message: `case ${c.id} concerns no reconciliation break` };
      const r = await ctx.pool.query<BreakRow>(`${BREAK_SELECT} WHERE id = $1`, [id]);
      const b = r.rows[0];
      if (!b) return { ok: false, code: 'break_not_found', message: `no reconciliation break ${id}` };
      if (b.repair_ref && b.scope.startsWith('provider:') && await replayInbox(ctx.pool, b.repair_ref)) {
        return { ok: true, result: { break_id: id, inbox_id: b.repair_ref, replayed: true } };
      }
      const fed = await feed(deps, b);
      if (!fed) return { ok: false, code: 'nothing_to_reimport', message: `break ${id} (${b.scope}, ${b.class}) carries no row that a normal path takes` };
      return { ok: true, result: { break_id: id, [fed.repair === 'notification' ? 'inbox_id' : 'external_id']: fed.ref } };
    },
  };
}
