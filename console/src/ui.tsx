// Small pieces every screen uses: a problem box that shows code and detail, loading of one resource,
// and a time shown in the operator's locale.
import { useCallback, useEffect, useState, type ReactNode } from 'react';
import { isProblem, type Problem } from './api.ts';

export type Role = 'viewer' | 'operator';
export interface Me { name: string; role: Role }

export function toProblem(e: unknown): Problem {
  return isProblem(e) ? e : { status: 0, code: 'network_error', detail: e instanceof Error ? e.message : String(e) };
}

export function ProblemBox({ problem }: { problem: Problem | null }): ReactNode {
  if (!problem) return null;
  return (
    <div className="problem" role="alert">
      <code data-testid="problem-code">{problem.code}</code> {problem.detail ?? ''}
    </div>
  );
}

/** Loads when `key` changes; `reload` fetches again (after an action). */
export function useLoad<T>(load: () => Promise<T>, key: string): { data: T | null; problem: Problem | null; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | null; problem: Problem | null; loading: boolean }>({ data: null, problem: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then((data) => live && setState({ data, problem: null, loading: false }),
      (e: unknown) => live && setState({ data: null, problem: toProblem(e), loading: false }));
    return () => { live = false; };
  }, [key, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

export const time = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : '—');

export function StateBadge({ state }: { state: string }): ReactNode {
  return <span className={`badge badge-${state}`}>{state}</span>;
}
