// Reconciliation: runs newest first with their counts per class; one run's breaks by class (cursor
// pages), and the CSV download of its breaks.
import type { ReactNode } from 'react';
import { api, must } from '../api.ts';
import { go, hrefOf } from '../nav.ts';
import { ProblemBox, StateBadge, time, useLoad } from '../ui.tsx';

const CLASSES = ['missing_here', 'missing_there', 'amount_mismatch', 'status_mismatch', 'duplicate_there'] as const;
type BreakClass = (typeof CLASSES)[number];

export function Reconcile({ params }: { params: URLSearchParams }): ReactNode {
  const before = params.get('before') ?? '';
  const run = params.get('run');
  const runs = useLoad(() => must(api.GET('/admin/v1/reconcile/runs', { params: { query: { limit: 25, ...(before ? { starting_after: before } : {}) } } })), before);
  const rows = runs.data?.data ?? [];
  return (
    <section className="split">
      <div className="list">
        <ProblemBox problem={runs.problem} />
        <table data-testid="runs">
          <thead><tr><th>started</th><th>scope</th><th>status</th><th>rows (ext/int)</th><th>breaks</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id} className={r.id === run ? 'selected' : ''} onClick={() => go(hrefOf('reconcile', { before, run: r.id }))}>
                <td>{time(r.started_at)}</td><td>{r.scope}</td><td><StateBadge state={r.status} /></td>
                <td>{r.external_rows}/{r.internal_rows}</td>
                <td>{Object.entries(r.counts).filter(([, n]) => n > 0).map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && !runs.loading && <p className="empty">No reconciliation runs yet (<code>seigo reconcile</code> or the periodic job starts them).</p>}
        {runs.data?.next_cursor && <a className="next" href="#" onClick={(e) => { e.preventDefault(); go(hrefOf('reconcile', { before: runs.data!.next_cursor })); }}>Older →</a>}
      </div>
      {run && <Breaks run={run} params={params} />}
    </section>
  );
}

function Breaks({ run, params }: { run: string; params: URLSearchParams }): ReactNode {
  const cls = (CLASSES as readonly string[]).includes(params.get('class') ?? '') ? (params.get('class') as BreakClass) : undefined;
  const after = params.get('after') ?? '';
  const breaks = useLoad(() => must(api.GET('/admin/v1/reconcile/runs/{id}/breaks', { params: { path: { id: run }, query: {
    limit: 50, ...(cls ? { class: cls } : {}), ...(after ? { starting_after: after } : {}),
  } } })), `${run}|${cls ?? ''}|${after}`);
  const here = { before: params.get('before'), run };
  const csv = `/admin/v1/reconcile/runs/${encodeURIComponent(run)}/breaks.csv${cls ? `?class=${cls}` : ''}`;
  return (
    <div className="detail">
      <div className="tabs">
        {[undefined, ...CLASSES].map((c) => (
          <a key={c ?? 'all'} href={hrefOf('reconcile', { ...here, class: c })} className={c === cls ? 'active' : ''}
            onClick={(e) => { e.preventDefault(); go(hrefOf('reconcile', { ...here, class: c })); }}>{c ?? 'all'}</a>
        ))}
        <a href={csv} download>Download CSV</a>
      </div>
      <ProblemBox problem={breaks.problem} />
      <table data-testid="breaks">
        <thead><tr><th>class</th><th>external</th><th>internal</th><th>amounts</th><th>repair</th><th>case</th></tr></thead>
        <tbody>
          {(breaks.data?.data ?? []).map((b) => (
            <tr key={b.id}>
              <td>{b.class}</td><td>{b.external_id ?? '—'} {b.external_status ?? ''}</td><td>{b.internal_type ?? ''} {b.internal_id ?? '—'} {b.internal_status ?? ''}</td>
              <td>{b.external_amount ?? '—'} / {b.internal_amount ?? '—'} {b.currency ?? ''}</td><td>{b.repair}{b.repair_ref ? ` ${b.repair_ref}` : ''}</td>
              <td>{b.case_id ? <a href={hrefOf('cases', { id: b.case_id })} onClick={(e) => { e.preventDefault(); go(hrefOf('cases', { id: b.case_id! })); }}>case</a> : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {breaks.data?.next_cursor && <a className="next" href="#" onClick={(e) => { e.preventDefault(); go(hrefOf('reconcile', { ...here, class: cls, after: breaks.data!.next_cursor })); }}>More →</a>}
    </div>
  );
}
