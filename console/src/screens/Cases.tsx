// Cases: the queue by status, cause and assignee (filters in the URL, `before` pages on as the API's starting_after), one case with its
// history; assign, comment, resolve, and manual ledger adjustments that a second operator approves.
import { useState, type ReactNode } from 'react';
import { api, must, type Problem } from '../api.ts';
import { go, hrefOf } from '../nav.ts';
import type { FullCase } from '../story.ts';
import { ProblemBox, StateBadge, time, toProblem, useLoad, type Me } from '../ui.tsx';

const PAGE = 50;
const age = (iso: string) => {
  const h = (Date.now() - new Date(iso).getTime()) / 3600_000;
  return h < 1 ? `${Math.round(h * 60)} min` : h < 48 ? `${Math.round(h)} h` : `${Math.round(h / 24)} d`;
};

export function Cases({ params, me }: { params: URLSearchParams; me: Me }): ReactNode {
  const status = params.get('status') ?? 'open,investigating';
  const cause = params.get('cause') ?? '';
  const assignee = params.get('assignee') ?? '';
  const before = params.get('before') ?? '';
  const id = params.get('id');
  const filters = { status, cause, assignee };
  const list = useLoad(() => must(api.GET('/admin/v1/cases', { params: { query: {
    status, limit: PAGE, ...(cause ? { cause } : {}), ...(assignee ? { assignee } : {}), ...(before ? { starting_after: before } : {}),
  } } })), `${status}|${cause}|${assignee}|${before}`);
  const rows = list.data?.data ?? [];
  return (
    <section className="split">
      <div className="list">
        <form className="filters" onSubmit={(e) => {
          e.preventDefault(); const f = new FormData(e.currentTarget);
          go(hrefOf('cases', { status: String(f.get('status')), cause: String(f.get('cause') ?? ''), assignee: String(f.get('assignee') ?? '') }));
        }}>
          <select name="status" defaultValue={status}>
            {['open,investigating', 'open', 'investigating', 'resolved', 'wont_fix'].map((s) => <option key={s}>{s}</option>)}
          </select>
          <input name="cause" placeholder="cause" defaultValue={cause} size={14} />
          <input name="assignee" placeholder="assignee" defaultValue={assignee} size={10} />
          <button type="submit">Filter</button>
        </form>
        <ProblemBox problem={list.problem} />
        <table data-testid="cases">
          <thead><tr><th>age</th><th>cause</th><th>subject</th><th>status</th><th>assignee</th></tr></thead>
          <tbody>
            {rows.map((c) => (
              <tr key={c.id} className={c.id === id ? 'selected' : ''} onClick={() => go(hrefOf('cases', { ...filters, before, id: c.id }))}>
                <td>{age(c.opened_at)}</td><td>{c.cause}</td><td>{c.subject.type} {c.subject.id.slice(0, 12)}</td>
                <td><StateBadge state={c.status} /></td><td>{c.assignee ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && !list.loading && <p className="empty">No cases.</p>}
        {list.data?.next_cursor && <a className="next" href="#" onClick={(e) => { e.preventDefault(); go(hrefOf('cases', { ...filters, before: list.data!.next_cursor })); }}>Older →</a>}
      </div>
      {id && <CaseDetail id={id} me={me} onChange={list.reload} />}
    </section>
  );
}

function CaseDetail({ id, me, onChange }: { id: string; me: Me; onChange: () => void }): ReactNode {
  const c = useLoad(() => must(api.GET('/admin/v1/cases/{id}', { params: { path: { id } } })), id);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [note, setNote] = useState('');
  const [adj, setAdj] = useState({ debit: '', credit: '', amount: '', memo: '' });
  const run = async (call: () => Promise<unknown>) => {
    setProblem(null);
    try { await call(); setNote(''); c.reload(); onChange(); } catch (e) { setProblem(toProblem(e)); }
  };
  const k: FullCase | null = c.data;
  if (!k) return <div className="detail"><ProblemBox problem={c.problem} /></div>;
  const open = k.status === 'open' || k.status === 'investigating';
  const path = { params: { path: { id } } };
  const operator = me.role === 'operator';
  return (
    <div className="detail" data-testid="case-detail">
      <h2>{k.kind}: {k.cause} <StateBadge state={k.status} /></h2>
      <p>{k.summary}</p>
      <p>Subject <a href={hrefOf('story', { id: k.subject.id })} onClick={(e) => { e.preventDefault(); go(hrefOf('story', { id: k.subject.id })); }}>{k.subject.type} {k.subject.id}</a>
        {' '}· opened {time(k.opened_at)} by {k.opened_by} · assignee {k.assignee ?? '—'}</p>
      <ProblemBox problem={problem} />
      {operator && open && (
        <div className="actions">
          <textarea name="note" placeholder="note" value={note} onChange={(e) => setNote(e.target.value)} rows={2} />
          <button type="button" onClick={() => void run(() => must(api.POST('/admin/v1/cases/{id}/assign', { ...path, body: { assignee: me.name } })))}>Assign to me</button>
          <button type="button" disabled={!note} onClick={() => void run(() => must(api.POST('/admin/v1/cases/{id}/comments', { ...path, body: { note } })))}>Comment</button>
          <button type="button" onClick={() => void run(() => must(api.POST('/admin/v1/cases/{id}/resolve', { ...path, body: note ? { note } : {} })))}>Resolve</button>
        </div>
      )}
      {operator && open && (
        <form className="adjust" onSubmit={(e) => {
          e.preventDefault();
          void run(() => must(api.POST('/admin/v1/cases/{id}/adjustments', { ...path, body: {
            memo: adj.memo, entries: [{ account_id: adj.debit, amount: `-${adj.amount}` }, { account_id: adj.credit, amount: adj.amount }],
          } })));
        }}>
          <b>Manual ledger adjustment</b> (a second operator approves)
          <input placeholder="from account id" value={adj.debit} onChange={(e) => setAdj({ ...adj, debit: e.target.value })} />
          <input placeholder="to account id" value={adj.credit} onChange={(e) => setAdj({ ...adj, credit: e.target.value })} />
          <input placeholder="amount (minor units)" inputMode="numeric" value={adj.amount} onChange={(e) => setAdj({ ...adj, amount: e.target.value })} />
          <input placeholder="memo" value={adj.memo} onChange={(e) => setAdj({ ...adj, memo: e.target.value })} />
          <button type="submit">Propose</button>
        </form>
      )}
      {k.adjustments.length > 0 && (
        <table data-testid="adjustments">
          <thead><tr><th>proposed</th><th>entries</th><th>memo</th><th>status</th><th /></tr></thead>
          <tbody>{k.adjustments.map((a) => (
            <tr key={a.id}>
              <td>{time(a.proposed_at)} by {a.proposed_by}</td>
              <td>{a.entries.map((e) => `${e.account_id.slice(0, 8)} ${e.amount}`).join(', ')}</td><td>{a.memo}</td>
              <td><StateBadge state={a.status} />{a.decided_by ? ` by ${a.decided_by}` : ''}</td>
              <td>{operator && a.status === 'proposed' && (<>
                <button type="button" onClick={() => void run(() => must(api.POST('/admin/v1/cases/{id}/adjustments/{adjustmentId}/approve', { params: { path: { id, adjustmentId: a.id } }, body: {} })))}>Approve</button>
                <button type="button" onClick={() => void run(() => must(api.POST('/admin/v1/cases/{id}/adjustments/{adjustmentId}/reject', { params: { path: { id, adjustmentId: a.id } }, body: { note: note || 'rejected' } })))}>Reject</button>
              </>)}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
      <h3>History</h3>
      <ol className="timeline">
        {k.events.map((e) => (
          <li key={e.id} className="step step-info"><span className="when">{time(e.at)}</span>
            <span className="what"><b>{e.type}</b>{e.to_status ? ` → ${e.to_status}` : ''} by {e.actor}</span>{e.note && <span className="cause">{e.note}</span>}</li>
        ))}
      </ol>
    </div>
  );
}
