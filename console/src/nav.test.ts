import { describe, expect, it } from 'vitest';
import { hrefOf, placeOf } from './nav.ts';

describe('console places', () => {
  it('reads the screen from the path and filters from the query', () => {
    const p = placeOf('/console/deliveries', '?status=dead&subscription=crm');
    expect(p.screen).toBe('deliveries');
    expect(p.params.get('status')).toBe('dead');
    expect(p.params.get('subscription')).toBe('crm');
  });
  it('lands on the record story for the bare and unknown paths', () => {
    expect(placeOf('/console/', '').screen).toBe('story');
    expect(placeOf('/console', '').screen).toBe('story');
    expect(placeOf('/console/nope', '').screen).toBe('story');
    expect(placeOf('/console/health', '?hours=24').screen).toBe('health');
  });
  it('writes links that read back the same, without empty filters', () => {
    const href = hrefOf('cases', { status: 'open', assignee: '', cause: 'recon missing&here', before: undefined });
    expect(href).toBe('/console/cases?status=open&cause=recon+missing%26here');
    const u = new URL(href, 'http://x');
    const p = placeOf(u.pathname, u.search);
    expect(p.screen).toBe('cases');
    expect(p.params.get('cause')).toBe('recon missing&here');
    expect(p.params.has('assignee')).toBe(false);
  });
});
