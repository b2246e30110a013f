// Where each partner's master comes from, and when it is pulled: an HTTP API pulled on a schedule
// (and on demand), or CSV uploads read with a stored mapping.
import type { Queryable } from '../kernel/db.ts';
import { checkMasterCsvMapping } from './csv.ts';
import { MasterdataInputError } from './errors.ts';

export interface MasterSource {
  partnerId: string; kind: 'http' | 'csv'; url: string | null; mapping: unknown; intervalMs: number | null; nextPullAt: Date | null; trusted: boolean;
}
interface SourceRow { partner_id: string; kind: 'http' | 'csv'; url: string | null; mapping: unknown; interval_ms: string | null; next_pull_at: Date | null; trusted: boolean }
const toSource = (r: SourceRow): MasterSource => ({
  partnerId: r.partner_id, kind: r.kind, url: r.url, mapping: r.mapping, intervalMs: r.interval_ms === null ? null : Number(r.interval_ms),
  nextPullAt: r.next_pull_at, trusted: r.trusted,
});
const COLUMNS = 'partner_id, kind, url, mapping, interval_ms::text AS interval_ms, next_pull_at, trusted';
const SELECT_SOURCE = `SELECT ${COLUMNS} FROM masterdata_sources WHERE partner_id = $1`;
const UPSERT_SOURCE = `
INSERT INTO masterdata_sources (partner_id, kind, url, mapping, interval_ms, next_pull_at, trusted)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $5::bigint IS NULL THEN NULL ELSE now() END, $6)
ON CONFLICT (partner_id) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url, mapping = EXCLUDED.mapping,
  interval_ms = EXCLUDED.interval_ms, next_pull_at = EXCLUDED.next_pull_at, trusted = EXCLUDED.trusted, updated_at = now()
RETURNING ${COLUMNS}`;
/** Due sources, claimed: next_pull_at moved on before the pull, so no other worker takes the same one. */
export const CLAIM_DUE = `
UPDATE masterdata_sources s SET next_pull_at = $1::timestamptz + make_interval(secs => s.interval_ms / 1000.0)
WHERE s.partner_id IN (
  SELECT partner_id FROM masterdata_sources WHERE interval_ms IS NOT NULL AND kind = 'http' AND next_pull_at <= $1
  ORDER BY next_pull_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING s.partner_id`;

export async function getSource(q: Queryable, partnerId: string): Promise<MasterSource | null> {
  const r = await q.query<SourceRow>(SELECT_SOURCE, [partnerId]);
  return r.rows[0] ? toSource(r.rows[0]) : null;
}

export interface SourceInput { kind: 'http' | 'csv'; url?: string | undefined; mapping?: unknown; intervalMs?: number | null | undefined; trusted?: boolean | undefined }

export async function setSource(q: Queryable, partnerId: string, s: SourceInput): Promise<MasterSource> {
  if (s.kind === 'http' && !s.url) throw new MasterdataInputError('invalid_source', 'an http source needs a url');
  if (s.kind === 'csv' && s.mapping === undefined) throw new MasterdataInputError('invalid_source', 'a csv source needs a mapping');
  const mapping = s.kind === 'csv' ? checkMasterCsvMapping(s.mapping) : null;
  const r = await q.query<SourceRow>(UPSERT_SOURCE, [
    partnerId, s.kind, s.kind === 'http' ? s.url : null, mapping ? JSON.stringify(mapping) : null,
    s.kind === 'http' ? (s.intervalMs ?? null) : null, s.trusted ?? false,
  ]);
  return toSource(r.rows[0]!);
}

export const sourceJson = (s: MasterSource) => ({
  partner_id: s.partnerId, kind: s.kind, url: s.url, mapping: s.mapping, interval_ms: s.intervalMs, next_pull_at: s.nextPullAt, trusted: s.trusted,
});
