// The one place reconciliation hands a break to a person. The cases module (src/cases, contract
// `openCase(q, { kind, cause, subject, related?, summary, details? }) → { id, opened }`, one open
// case per subject and cause) is being merged; until it is, `openCase` here opens nothing and the
// break stays marked `repair = 'case'` with no case id. Swap the import below when it lands.
import type { Queryable } from '../kernel/db.ts';
import type { BreakRow } from './repair.ts';

interface CaseSubject { type: string; id: string }
interface OpenCaseInput { kind: string; cause: string; subject: CaseSubject; related?: CaseSubject[]; summary: string; details?: Record<string, unknown> }
const openCase = async (_q: Queryable, _c: OpenCaseInput): Promise<{ id: string; opened: boolean } | null> => null;

export async function openBreakCase(q: Queryable, b: BreakRow, why: string): Promise<{ id: string } | null> {
  const related: CaseSubject[] = b.internal_type && b.internal_id ? [{ type: b.internal_type, id: b.internal_id }] : [];
  return openCase(q, {
    kind: 'reconciliation',
    cause: `recon_${b.class}`,
    subject: { type: 'recon_break', id: b.id },
    related,
    summary: `${b.scope}: ${b.class.replace('_', ' ')} for ${b.external_id ?? b.internal_id ?? b.match_key} (${why})`,
    details: {
      scope: b.scope, class: b.class, match_key: b.match_key, external_id: b.external_id, internal_id: b.internal_id,
      external_amount: b.external_amount, internal_amount: b.internal_amount, external_status: b.external_status, internal_status: b.internal_status,
    },
  });
}
