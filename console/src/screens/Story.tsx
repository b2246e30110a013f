// Record story: paste any id (deposit, payment, provider event, transfer, user, case) and see everything
// the engine did about it on one timeline, with the action that fits one click away.
import { useState, type FormEvent, type ReactNode } from 'react';
import { api, must, type Problem } from '../api.ts';
import { go, hrefOf } from '../nav.ts';
import { ENTITY_TYPES, overall, timeline, type Action, type Entry, type FullCase, type Status } from '../story.ts';
import { ProblemBox, StateBadge, time, toProblem, useLoad, type Me } from '../ui.tsx';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

async function loadStory(type: string, id: string): Promise<Entry[]> {
  const types = type === 'any' ? [...ENTITY_TYPES] : [type];
  const statuses = await Promise.all(types.map((t) => must(api.GET('/admin/v1/status/{entity_type}/{entity_id}', { params: { path: { entity_type: t, entity_id: id } } }))));
  let kase: FullCase | null = null;
  if ((type === 'any' || type === 'case') && UUID.test(id)) {
    const r = await api.GET('/admin/v1/cases/{id}', { params: { path: { id } } });
    kase = r.data ?? null;
    if (kase) statuses.push(await must(api.GET('/admin/v1/status/{entity_type}/{entity_id}', { params: { path: { entity_type: kase.subject.type, entity_id: kase.subject.id } } })));
  }
  return timeline(statuses.filter((s: Status) => s.items.length > 0), kase);
}

async function act(a: Action): Promise<void> {
  if (a.kind === 'redrive') await must(api.POST('/admin/v1/deliveries/{id}/redrive', { params: { path: { id: a.deliveryId } } }));
  if (a.kind === 'replay') await must(api.POST('/admin/v1/inbox/{id}/replay', { params: { path: { id: a.inboxId } } }));
  if (a.kind === 'open-case') go(hrefOf('cases', { id: a.caseId }));
}

const LABEL: Record<Action['kind'], string> = { redrive: 'Redrive', replay: 'Replay', 'open-case': 'Open case' };

export function Story({ params, me }: { params: URLSearchParams; me: Me }): ReactNode {
  const id = params.get('id') ?? '';
  const type = params.get('type') ?? 'any';
  const [draft, setDraft] = useState({ id, type });
  const [problem, setProblem] = useState<Problem | null>(null);
  const story = useLoad(() => (id ? loadStory(type, id) : Promise.resolve([])), `${type}:${id}`);
  const search = (e: FormEvent) => { e.preventDefault(); go(hrefOf('story', { id: draft.id.trim(), type: draft.type === 'any' ? '' : draft.type })); };
  const run = async (a: Action) => {
    setProblem(null);
    try { await act(a); story.reload(); } catch (e) { setProblem(toProblem(e)); }
  };
  const entries = story.data ?? [];
  return (
    <section>
      <form className="filters" onSubmit={search}>
        <input name="id" placeholder="Any id: deposit, payment, provider event, transfer, user, case" value={draft.id} size={48}
          onChange={(e) => setDraft({ ...draft, id: e.target.value })} />
        <select name="type" value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.target.value })}>
          <option value="any">any kind</option>
          {[...ENTITY_TYPES, 'case'].map((t) => <option key={t} value={t}>{t}</option>)}
        </select>
        <button type="submit">Show story</button>
      </form>
      <ProblemBox problem={problem ?? story.problem} />
      {id && !story.loading && (
        <p className="summary">Story of <code>{id}</code>: <StateBadge state={overall(entries)} /> {entries.length} steps</p>
      )}
      {entries.length > 0 && (
        <ol className="timeline" data-testid="timeline">
          {entries.map((e) => (
            <li key={`${e.kind}:${e.id}`} className={`step step-${e.state}`} data-kind={e.kind} data-status={e.status}>
              <span className="when">{time(e.at)}</span>
              <span className="what"><b>{e.kind}</b> {e.title} <StateBadge state={e.status} /></span>
              {e.cause && <span className="cause">{e.cause}</span>}
              <span className="via">{e.via} · <code>{e.id}</code></span>
              {e.action && (me.role === 'operator' || e.action.kind === 'open-case') && (
                <button type="button" onClick={() => void run(e.action!)}>{LABEL[e.action.kind]}</button>
              )}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
