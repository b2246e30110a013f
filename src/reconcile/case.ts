// The one place reconciliation hands a break to a person: a case (src/cases), one open case per
// record and cause, so a break seen again by later runs never opens a second one. A delivery to an
// internal service that never got acknowledged is a case about the delivery itself (the same case
// the cases module's sweep opens for a dead delivery); every other break is a case about the break.
import type { Queryable } from '../kernel/db.ts';
import { openCase, type CaseSubject } from '../cases/index.ts';
import type { BreakRow } from './repair.ts';

export async function openBreakCase(q: Queryable, b: BreakRow, why: string): Promise<{ id: string; opened: boolean } | null> {
  const details = {
    break_id: b.id, scope: b.scope, class: b.class, match_key: b.match_key, external_id: b.external_id, internal_id: b.internal_id,
    external_amount: b.external_amount, internal_amount: b.internal_amount, external_status: b.external_status, internal_status: b.internal_status, why,
  };
  if (b.internal_type === 'delivery' && b.internal_id) {
    const dead = b.internal_status === 'dead';
    return openCase(q, {
      kind: 'delivery', cause: dead ? 'delivery_dead' : 'delivery_unacknowledged', subject: { type: 'delivery', id: b.internal_id },
      related: [{ type: 'recon_break', id: b.id }],
      summary: dead ? `delivery ${b.internal_id} to an internal service is dead` : `delivery ${b.internal_id} to an internal service is still not acknowledged`,
      details,
    });
  }
  const related: CaseSubject[] = [];
  if (b.internal_type === 'deposit' && b.internal_id) related.push({ type: 'deposit', id: b.internal_id });
  if (b.internal_type === 'bank_transfer' && b.internal_id) related.push({ type: 'bank_transfer', id: b.internal_id });
  return openCase(q, {
    kind: 'reconciliation', cause: `recon_${b.class}`, subject: { type: 'recon_break', id: b.id }, related,
    summary: `${b.scope}: ${b.class.replace('_', ' ')} for ${b.external_id ?? b.internal_id ?? b.match_key} (${why})`,
    details,
  });
}
