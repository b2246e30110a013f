// The console's shell: sign-in, the session (who, which role), the navigation and the current screen.
import { useEffect, useState, type ReactNode } from 'react';
import { api, whenSignedOut, type Problem } from './api.ts';
import { BASE, go, hrefOf, usePlace, type Screen } from './nav.ts';
import { Cases } from './screens/Cases.tsx';
import { Deliveries } from './screens/Deliveries.tsx';
import { Health } from './screens/Health.tsx';
import { Reconcile } from './screens/Reconcile.tsx';
import { SignIn } from './screens/SignIn.tsx';
import { Story } from './screens/Story.tsx';
import type { Me } from './ui.tsx';

const TITLES: Record<Screen, string> = { story: 'Record story', deliveries: 'Inbox and deliveries', cases: 'Cases', reconcile: 'Reconciliation', health: 'Health' };

export function App(): ReactNode {
  const [me, setMe] = useState<Me | null | 'unknown'>('unknown');
  const [signedOutBecause, setSignedOutBecause] = useState<Problem | null>(null);
  const place = usePlace();

  useEffect(() => {
    whenSignedOut((p) => { setSignedOutBecause(p); setMe(null); });
    api.GET('/admin/v1/session').then(({ data }) => setMe(data ?? null), () => setMe(null));
  }, []);

  if (me === 'unknown') return <p className="loading">Loading…</p>;
  if (me === null) return <SignIn reason={signedOutBecause} onSignedIn={(m) => { setSignedOutBecause(null); setMe(m); }} />;

  const signOut = async () => {
    await api.DELETE('/admin/v1/session');
    setMe(null);
  };
  const link = (s: Screen) => (
    <a key={s} href={hrefOf(s)} className={place.screen === s ? 'active' : ''} onClick={(e) => { e.preventDefault(); go(hrefOf(s)); }}>{TITLES[s]}</a>
  );
  return (
    <div className="shell">
      <header>
        <a className="brand" href={BASE} onClick={(e) => { e.preventDefault(); go(BASE); }}>seigo</a>
        <nav>{(['story', 'deliveries', 'cases', 'reconcile'] as const).map(link)}</nav>
        <span className="who" data-testid="who">{me.name} · {me.role}</span>
        <button type="button" onClick={() => void signOut()}>Sign out</button>
      </header>
      <main>
        <h1>{TITLES[place.screen]}</h1>
        {place.screen === 'story' && <Story params={place.params} me={me} />}
        {place.screen === 'deliveries' && <Deliveries params={place.params} me={me} />}
        {place.screen === 'cases' && <Cases params={place.params} me={me} />}
        {place.screen === 'reconcile' && <Reconcile params={place.params} />}
        {place.screen === 'health' && <Health params={place.params} />}
      </main>
    </div>
  );
}
