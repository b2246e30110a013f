// Health: request and error rates and p95 per route and provider over the last hours, queues, the
// oldest unknown operation, the DLQ and the breakers (GET /admin/v1/health; hours in the URL).
import type { ReactNode } from 'react';
import { api, must } from '../api.ts';
import { go, hrefOf } from '../nav.ts';
import { ProblemBox, StateBadge, time, useLoad } from '../ui.tsx';

const HOURS = ['1', '6', '24', '72'] as const;
const rate = (errors: number, requests: number) => (requests ? `${(Math.round((errors / requests) * 1000) / 10).toString()}%` : '–');
const p95 = (ms: number | null) => (ms === null ? '–' : ms < 0 ? '> 30 s' : `≤ ${ms} ms`);

export function Health({ params }: { params: URLSearchParams }): ReactNode {
  const hours = Number(params.get('hours') ?? '6');
  const h = useLoad(() => must(api.GET('/admin/v1/health', { params: { query: { hours, step_minutes: hours > 24 ? 60 : 10 } } })), String(hours));
  const d = h.data;
  return (
    <section>
      <ProblemBox problem={h.problem} />
      <p>
        Last {HOURS.map((x) => (
          <a key={x} href={hrefOf('health', { hours: x })} className={String(hours) === x ? 'active' : ''}
            onClick={(e) => { e.preventDefault(); go(hrefOf('health', { hours: x })); }}> {x} h </a>
        ))}
      </p>
      {d && (
        <>
          <p data-testid="health-summary">
            inbox pending {d.inbox.pending}, failed {d.inbox.failed} · DLQ {d.dlq_size} · unknown operations {d.unknown_operations.count}
            {d.unknown_operations.oldest_at ? ` (oldest ${time(d.unknown_operations.oldest_at)})` : ''}
          </p>
          <table data-testid="health-subjects">
            <thead><tr><th>source</th><th>name</th><th>requests</th><th>error rate</th><th>p95</th></tr></thead>
            <tbody>
              {d.subjects.map((s) => (
                <tr key={`${s.source}:${s.name}`}><td>{s.source}</td><td>{s.name}</td><td>{s.requests}</td><td>{rate(s.errors, s.requests)}</td><td>{p95(s.p95_ms)}</td></tr>
              ))}
            </tbody>
          </table>
          <table data-testid="health-series">
            <thead><tr><th>from</th><th>requests</th><th>error rate</th><th>p95</th></tr></thead>
            <tbody>
              {d.series.filter((s) => s.requests > 0).map((s) => (
                <tr key={s.at}><td>{time(s.at)}</td><td>{s.requests}</td><td>{rate(s.errors, s.requests)}</td><td>{p95(s.p95_ms)}</td></tr>
              ))}
            </tbody>
          </table>
          <table data-testid="health-queues">
            <thead><tr><th>subscription</th><th>pending</th><th>dead</th></tr></thead>
            <tbody>{d.subscriptions.map((s) => <tr key={s.subscription}><td>{s.subscription}</td><td>{s.pending}</td><td>{s.dead}</td></tr>)}</tbody>
          </table>
          <table data-testid="health-breakers">
            <thead><tr><th>endpoint</th><th>process</th><th>state</th><th>since</th></tr></thead>
            <tbody>{d.breakers.map((b) => <tr key={`${b.endpoint}:${b.process_id}`}><td>{b.endpoint}</td><td>{b.process_id}</td><td><StateBadge state={b.state} /></td><td>{time(b.changed_at)}</td></tr>)}</tbody>
          </table>
        </>
      )}
    </section>
  );
}
