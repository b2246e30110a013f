// The Grafana dashboard in docs/grafana/seigo.json names only metrics the engine exports: every metric in
// every panel query is found in a real /metrics scrape of a running engine (histograms by their _bucket,
// _sum and _count series). Node's default metrics carry their standard names, not a doubled prefix.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestEngine, type TestEngine } from '../../test/helpers/engine.ts';

const DASHBOARD = join(import.meta.dirname, '..', '..', 'docs', 'grafana', 'seigo.json');
const METRIC = /\b(?:seigo|process|nodejs)_[a-z0-9_]+/g;

/** Every series name a scrape can hold: each `# TYPE` family, with a histogram's or summary's own series. */
export function exportedNames(scrape: string): Set<string> {
  const names = new Set<string>();
  for (const m of scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

describe('the Grafana dashboard', () => {
  let t: TestEngine;
  let scrape: string;
  beforeAll(async () => {
    t = await startTestEngine();
    await fetch(`${t.url}/healthz`); // one request, so the request metrics have a series too
    const res = await fetch(`${t.url}/metrics`);
    expect(res.status).toBe(200);
    scrape = await res.text();
  });
  afterAll(async () => { await t?.close(); });

  it('names only metrics that a running engine exports, in every panel', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const exported = exportedNames(scrape);
    const missing: string[] = [];
    let named = 0;
    for (const panel of dashboard.panels) {
      const inPanel = panel.targets.flatMap((x) => x.expr.match(METRIC) ?? []);
      expect(inPanel.length, `panel "${panel.title}" names no metric`).toBeGreaterThan(0);
      for (const name of inPanel) {
        named++;
        if (!exported.has(name)) missing.push(`${panel.title}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
    expect(named).toBeGreaterThanOrEqual(20);
  });

  it('default Node metrics have their standard names, and the reconciliation and queue-age gauges are there', () => {
    const exported = exportedNames(scrape);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      expect(exported).toContain(name);
    }
    expect([...exported].filter((n) => n.includes('process_process') || n.startsWith('seigo_process_'))).toEqual([]);
    for (const name of ['seigo_reconcile_last_run_timestamp_seconds', 'seigo_reconcile_breaks_open', 'seigo_queue_oldest_age_seconds', 'seigo_inbox_oldest_due_age_seconds']) {
      expect(exported).toContain(name);
    }
  });

  it('the reconciliation gauges give each scope its latest run and its open breaks', async () => {
    const pool = t.tdb.db.pool;
    await pool.query(`INSERT INTO reconcile_runs (id, source, scope, status, started_at) VALUES
      (gen_random_uuid(), 'provider', 'provider:a', 'succeeded', '2026-11-01T00:00:00Z'),
      (gen_random_uuid(), 'provider', 'provider:a', 'failed', '2026-11-02T00:00:00Z'),
      (gen_random_uuid(), 'provider', 'provider:b', 'succeeded', '2026-11-03T00:00:00Z')`);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain(`seigo_reconcile_last_run_timestamp_seconds{scope="provider:a"} ${Date.parse('2026-11-02T00:00:00Z') / 1000}`);
    expect(text).toContain(`seigo_reconcile_last_run_timestamp_seconds{scope="provider:b"} ${Date.parse('2026-11-03T00:00:00Z') / 1000}`);
    expect(text).toContain('seigo_reconcile_last_run_succeeded{scope="provider:a"} 0');
    expect(text).toContain('seigo_reconcile_last_run_succeeded{scope="provider:b"} 1');
  });
});
