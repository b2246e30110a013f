// A record's story: the integration status items of every kind the id may name, and a case's own
// events, merged into one timeline, newest first, with the action that fits each failed step.
import type { paths } from './api.ts';

export type Status = paths['/admin/v1/status/{entity_type}/{entity_id}']['get']['responses']['200']['content']['application/json'];
export type StatusItem = Status['items'][number];
export type FullCase = paths['/admin/v1/cases/{id}']['get']['responses']['200']['content']['application/json'];

/** The kinds of id an operator may paste; each is an entity type the engine records work under. */
export const ENTITY_TYPES = ['deposit', 'payment_intent', 'payment', 'charge', 'bank_transfer', 'deposit_refund', 'user', 'customer', 'order'] as const;

export type Action = { kind: 'redrive'; deliveryId: string } | { kind: 'replay'; inboxId: string } | { kind: 'open-case'; caseId: string };

export interface Entry {
  at: string;
  kind: StatusItem['kind'] | 'case-event';
  id: string;
  state: 'waiting' | 'done' | 'failed' | 'info';
  title: string;
  status: string;
  cause: string | null;
  /** Which record type this came from (the id may name several). */
  via: string;
  action: Action | null;
}

/** The one-click action for a status item, when there is one. */
export function actionFor(item: StatusItem): Action | null {
  if (item.kind === 'delivery' && (item.status === 'dead' || item.status === 'cancelled')) return { kind: 'redrive', deliveryId: item.id };
  if (item.kind === 'inbox' && item.status === 'failed') return { kind: 'replay', inboxId: item.id };
  if (item.kind === 'case' && item.state === 'failed') return { kind: 'open-case', caseId: item.id };
  return null;
}

/** One timeline from every status found and the case (if the id was a case), newest first, without repeats. */
export function timeline(statuses: Status[], kase: FullCase | null): Entry[] {
  const seen = new Set<string>();
  const out: Entry[] = [];
  for (const s of statuses) {
    for (const i of s.items) {
      const key = `${i.kind}:${i.id}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        at: i.updated_at, kind: i.kind, id: i.id, state: i.state, title: i.detail, status: i.status, cause: i.cause,
        via: `${s.entity_type} ${s.entity_id}`, action: actionFor(i),
      });
    }
  }
  for (const e of kase?.events ?? []) {
    out.push({
      at: e.at, kind: 'case-event', id: e.id, state: 'info', title: `case ${e.type}${e.to_status ? ` → ${e.to_status}` : ''}`,
      status: e.to_status ?? e.type, cause: e.note, via: `case by ${e.actor}`, action: null,
    });
  }
  return out.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : a.id.localeCompare(b.id)));
}

/** The overall state: failed wins over waiting wins over done, as the engine's own status does. */
export function overall(entries: Entry[]): 'failed' | 'waiting' | 'done' | 'none' {
  if (entries.length === 0) return 'none';
  if (entries.some((e) => e.state === 'failed')) return 'failed';
  if (entries.some((e) => e.state === 'waiting')) return 'waiting';
  return 'done';
}
