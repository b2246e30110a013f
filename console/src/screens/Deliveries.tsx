// Inbox and deliveries: failed notifications and the DLQ (dead deliveries), filtered by provider,
// subscription and status in the URL; replay or redrive one or a selection. Pages on with `before`.
import { useState, type ReactNode } from 'react';
import { api, must, type Problem } from '../api.ts';
import { go, hrefOf } from '../nav.ts';
import { ProblemBox, StateBadge, time, toProblem, useLoad, type Me } from '../ui.tsx';

const PAGE = 50;
const DELIVERY_STATUSES = ['dead', 'pending', 'sending', 'delivered', 'cancelled'] as const;
const INBOX_STATUSES = ['failed', 'pending', 'processed', 'ignored'] as const;
type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];
type InboxStatus = (typeof INBOX_STATUSES)[number];

const pick = <T extends string>(v: string | null, all: readonly T[], dflt: T): T => ((all as readonly string[]).includes(v ?? '') ? (v as T) : dflt);

export function Deliveries({ params, me }: { params: URLSearchParams; me: Me }): ReactNode {
  const view = params.get('view') === 'inbox' ? 'inbox' : 'deliveries';
  const tab = (v: string) => (
    <a href={hrefOf('deliveries', { view: v })} className={view === v ? 'active' : ''} onClick={(e) => { e.preventDefault(); go(hrefOf('deliveries', { view: v })); }}>
      {v === 'inbox' ? 'Inbox (notifications)' : 'Deliveries (DLQ)'}
    </a>
  );
  return (
    <section>
      <div className="tabs">{tab('deliveries')}{tab('inbox')}</div>
      {view === 'deliveries' ? <DeliveryList params={params} me={me} /> : <InboxList params={params} me={me} />}
    </section>
  );
}

function DeliveryList({ params, me }: { params: URLSearchParams; me: Me }): ReactNode {
  const status: DeliveryStatus = pick(params.get('status'), DELIVERY_STATUSES, 'dead');
  const subscription = params.get('subscription') ?? '';
  const before = params.get('before') ?? '';
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [problem, setProblem] = useState<Problem | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const list = useLoad(() => must(api.GET('/admin/v1/deliveries', { params: { query: {
    status, limit: PAGE, ...(subscription ? { subscription } : {}), ...(before ? { starting_after: before } : {}),
  } } })), params.toString());
  const rows = list.data?.data ?? [];
  const nav = (p: Record<string, string>) => go(hrefOf('deliveries', { status, subscription, ...p }));
  const redrive = async (ids: string[] | 'filter') => {
    setProblem(null); setDone(null);
    try {
      const r = ids === 'filter'
        ? await must(api.POST('/admin/v1/deliveries/redrive', { body: { statuses: [status === 'pending' || status === 'cancelled' ? status : 'dead'], ...(subscription ? { subscription } : {}) } }))
        : ids.length === 1
          ? await must(api.POST('/admin/v1/deliveries/{id}/redrive', { params: { path: { id: ids[0]! } } }))
          : await must(api.POST('/admin/v1/deliveries/redrive', { body: { ids } }));
      setDone(`redriven: ${r.redriven}`);
      setSelected(new Set());
      list.reload();
    } catch (e) { setProblem(toProblem(e)); }
  };
  const canAct = me.role === 'operator' && (status === 'dead' || status === 'cancelled' || status === 'pending');
  return (
    <>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); const f = new FormData(e.currentTarget); nav({ subscription: String(f.get('subscription') ?? ''), status: String(f.get('status')) }); }}>
        <select name="status" defaultValue={status}>{DELIVERY_STATUSES.map((s) => <option key={s}>{s}</option>)}</select>
        <input name="subscription" placeholder="subscription" defaultValue={subscription} />
        <button type="submit">Filter</button>
        {canAct && <button type="button" disabled={selected.size === 0} onClick={() => void redrive([...selected])}>Redrive selected ({selected.size})</button>}
        {canAct && rows.length > 0 && <button type="button" onClick={() => void redrive('filter')}>Redrive all {status}{subscription ? ` of ${subscription}` : ''}</button>}
      </form>
      <ProblemBox problem={problem ?? list.problem} />
      {done && <p className="done" role="status">{done}</p>}
      <table data-testid="deliveries">
        <thead><tr>{canAct && <th />}<th>created</th><th>subscription</th><th>topic</th><th>status</th><th>attempts</th><th>cause</th>{canAct && <th />}</tr></thead>
        <tbody>
          {rows.map((d) => (
            <tr key={d.id} data-id={d.id}>
              {canAct && <td><input type="checkbox" aria-label={`select ${d.id}`} checked={selected.has(d.id)} onChange={(e) => {
                const s = new Set(selected); if (e.target.checked) s.add(d.id); else s.delete(d.id); setSelected(s);
              }} /></td>}
              <td>{time(d.created_at)}</td><td>{d.subscription}</td><td>{d.topic}</td><td><StateBadge state={d.status} /></td>
              <td>{d.attempts}{d.redrives ? ` (${d.redrives} redrives)` : ''}</td>
              <td className="cause">{d.last_status_code ? `${d.last_status_code} ` : ''}{d.last_error ?? ''}</td>
              {canAct && <td><button type="button" onClick={() => void redrive([d.id])}>Redrive</button></td>}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && !list.loading && <p className="empty">No {status} deliveries.</p>}
      {list.data?.next_cursor && <a className="next" href="#" onClick={(e) => { e.preventDefault(); nav({ before: list.data!.next_cursor! }); }}>Older →</a>}
    </>
  );
}

function InboxList({ params, me }: { params: URLSearchParams; me: Me }): ReactNode {
  const status: InboxStatus = pick(params.get('status'), INBOX_STATUSES, 'failed');
  const provider = params.get('provider') ?? '';
  const before = params.get('before') ?? '';
  const [problem, setProblem] = useState<Problem | null>(null);
  const list = useLoad(() => must(api.GET('/admin/v1/inbox', { params: { query: {
    status, limit: PAGE, ...(provider ? { provider } : {}), ...(before ? { starting_after: before } : {}),
  } } })), params.toString());
  const rows = list.data?.data ?? [];
  const nav = (p: Record<string, string>) => go(hrefOf('deliveries', { view: 'inbox', status, provider, ...p }));
  const replay = async (id: string) => {
    setProblem(null);
    try { await must(api.POST('/admin/v1/inbox/{id}/replay', { params: { path: { id } } })); list.reload(); } catch (e) { setProblem(toProblem(e)); }
  };
  return (
    <>
      <form className="filters" onSubmit={(e) => { e.preventDefault(); const f = new FormData(e.currentTarget); nav({ provider: String(f.get('provider') ?? ''), status: String(f.get('status')) }); }}>
        <select name="status" defaultValue={status}>{INBOX_STATUSES.map((s) => <option key={s}>{s}</option>)}</select>
        <input name="provider" placeholder="provider" defaultValue={provider} />
        <button type="submit">Filter</button>
      </form>
      <ProblemBox problem={problem ?? list.problem} />
      <table data-testid="inbox">
        <thead><tr><th>received</th><th>provider</th><th>event</th><th>record</th><th>status</th><th>attempts</th><th>cause</th>{me.role === 'operator' && <th />}</tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id} data-id={r.id}>
              <td>{time(r.received_at)}</td><td>{r.provider}</td><td>{r.event_type ?? r.event_id}</td>
              <td>{r.entity_id ? <a href={hrefOf('story', { id: r.entity_id })} onClick={(e) => { e.preventDefault(); go(hrefOf('story', { id: r.entity_id! })); }}>{r.entity_type} {r.entity_id}</a> : '—'}</td>
              <td><StateBadge state={r.status} /></td><td>{r.attempts}</td><td className="cause">{r.last_error ?? ''}</td>
              {me.role === 'operator' && <td><button type="button" onClick={() => void replay(r.id)}>Replay</button></td>}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && !list.loading && <p className="empty">No {status} notifications.</p>}
      {list.data?.next_cursor && <a className="next" href="#" onClick={(e) => { e.preventDefault(); nav({ before: list.data!.next_cursor! }); }}>Older →</a>}
    </>
  );
}
