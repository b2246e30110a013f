import { describe, expect, it } from 'vitest';
import { overall, timeline, type FullCase, type Status } from './story.ts';

const item = (kind: Status['items'][number]['kind'], id: string, status: string, state: 'waiting' | 'done' | 'failed', at: string) =>
  ({ kind, id, status, state, detail: `${kind} ${id}`, cause: state === 'failed' ? 'boom' : null, updated_at: at });

describe('record story timeline', () => {
  it('merges statuses newest first, once per item, with the action that fits', () => {
    const a: Status = { entity_type: 'deposit', entity_id: 'd1', state: 'failed', items: [
      item('operation', 'o1', 'succeeded', 'done', '2026-01-01T00:00:01Z'),
      item('delivery', 'v1', 'dead', 'failed', '2026-01-01T00:00:03Z'),
    ] };
    const b: Status = { entity_type: 'payment_intent', entity_id: 'pi_1', state: 'done', items: [
      item('inbox', 'i1', 'failed', 'failed', '2026-01-01T00:00:02Z'),
      item('delivery', 'v1', 'dead', 'failed', '2026-01-01T00:00:03Z'),
    ] };
    const t = timeline([a, b], null);
    expect(t.map((e) => e.id)).toEqual(['v1', 'i1', 'o1']);
    expect(t[0]!.action).toEqual({ kind: 'redrive', deliveryId: 'v1' });
    expect(t[1]!.action).toEqual({ kind: 'replay', inboxId: 'i1' });
    expect(t[2]!.action).toBeNull();
    expect(overall(t)).toBe('failed');
  });

  it("adds a case's events and says none for an empty story", () => {
    const kase = { events: [{ id: '1', at: '2026-01-02T00:00:00Z', actor: 'op', type: 'resolved', from_status: 'open', to_status: 'resolved', note: 'ok', data: {} }] } as unknown as FullCase;
    const t = timeline([], kase);
    expect(t).toHaveLength(1);
    expect(t[0]).toMatchObject({ kind: 'case-event', title: 'case resolved → resolved', state: 'info' });
    expect(overall(timeline([], null))).toBe('none');
    expect(overall(t)).toBe('done');
  });
});
