// Where the console is: the screen comes from the path under /console/, filters and cursors from the
// query string, so any view is a link an operator can share.
import { useEffect, useState } from 'react';

export const SCREENS = ['story', 'deliveries', 'cases', 'reconcile', 'health'] as const;
export type Screen = (typeof SCREENS)[number];
export const BASE = '/console/';

export interface Place { screen: Screen; params: URLSearchParams }

/** The screen and its parameters for a location; unknown paths land on the record story. */
export function placeOf(pathname: string, search: string): Place {
  const rest = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : '';
  const first = rest.split('/')[0] ?? '';
  const screen = (SCREENS as readonly string[]).includes(first) ? (first as Screen) : 'story';
  return { screen, params: new URLSearchParams(search) };
}

/** The link to a screen with the given filters; empty values are left out so links stay short. */
export function hrefOf(screen: Screen, params: Record<string, string | undefined | null> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return `${BASE}${screen}${s ? `?${s}` : ''}`;
}

export function go(href: string): void {
  window.history.pushState(null, '', href);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

/** The current place, following back/forward and go(). */
export function usePlace(): Place {
  const [place, setPlace] = useState(() => placeOf(window.location.pathname, window.location.search));
  useEffect(() => {
    const on = () => setPlace(placeOf(window.location.pathname, window.location.search));
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  return place;
}
