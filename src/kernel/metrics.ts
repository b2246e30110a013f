// Prometheus metrics (prom-client), one registry per process. Node's default metrics keep their standard
// names (process_*, nodejs_*). Queue depth and age, cases and reconciliation are read from the database at
// scrape time, so every api and worker process reports the same truth; each of those reads is bounded by an
// index (a partial index, or `ORDER BY … LIMIT 1` on one), never a scan of a whole table.
import client from 'prom-client';
import type pg from 'pg';

export interface Metrics {
  registry: client.Registry;
  httpRequests: client.Counter<'route' | 'method' | 'status'>;
  httpDuration: client.Histogram<'route' | 'method'>;
  webhooks: client.Counter<'provider' | 'outcome'>;
  /** In-app purchases by platform and outcome (completed, pending, or the refusal's code: invalid_signature, unknown_product, …). */
  iapPurchases: client.Counter<'platform' | 'outcome'>;
  webhookDuration: client.Histogram<'provider'>;
  inboxProcessed: client.Counter<'provider' | 'outcome'>;
  deliveries: client.Counter<'subscription' | 'outcome'>;
  deliveryDuration: client.Histogram<'subscription'>;
  operationTransitions: client.Counter<'provider' | 'status'>;
  intakeBatchRows: client.Histogram;
}

export function createMetrics(pool?: pg.Pool): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const m: Metrics = {
    registry,
    httpRequests: new client.Counter({ name: 'seigo_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'method', 'status'], registers: [registry] }),
    httpDuration: new client.Histogram({ name: 'seigo_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route', 'method'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [registry] }),
    iapPurchases: new client.Counter({ name: 'seigo_iap_purchases_total', help: 'In-app purchases by platform and outcome (completed, pending, or the refusal code)', labelNames: ['platform', 'outcome'], registers: [registry] }),
    webhooks: new client.Counter({ name: 'seigo_webhooks_received_total', help: 'Provider notifications by provider and outcome (accepted, duplicate, invalid_signature, …)', labelNames: ['provider', 'outcome'], registers: [registry] }),
    webhookDuration: new client.Histogram({ name: 'seigo_webhook_ack_duration_seconds', help: 'Time from request to acknowledgement (stored and committed) by provider', labelNames: ['provider'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] }),
    inboxProcessed: new client.Counter({ name: 'seigo_inbox_processed_total', help: 'Inbox rows processed by provider and outcome', labelNames: ['provider', 'outcome'], registers: [registry] }),
    deliveries: new client.Counter({ name: 'seigo_deliveries_total', help: 'Delivery attempts by subscription and outcome', labelNames: ['subscription', 'outcome'], registers: [registry] }),
    deliveryDuration: new client.Histogram({ name: 'seigo_delivery_duration_seconds', help: 'HTTP delivery latency by subscription', labelNames: ['subscription'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    operationTransitions: new client.Counter({ name: 'seigo_operation_transitions_total', help: 'Outbound operation state changes by provider and new status', labelNames: ['provider', 'status'], registers: [registry] }),
    intakeBatchRows: new client.Histogram({ name: 'seigo_intake_batch_rows', help: 'Rows per group-committed inbox batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: [registry] }),
  };
  if (pool) registerDatabaseGauges(registry, pool);
  return m;
}

// Per subscription, through deliveries_subscription_status (subscription_id, status, created_at): counts of the
// unfinished rows only, and the oldest of each status by `ORDER BY created_at LIMIT 1`.
const QUEUE_BY_SUBSCRIPTION = `
SELECT s.name,
  (SELECT count(*) FROM deliveries d WHERE d.subscription_id = s.id AND d.status = 'pending')
  + (SELECT count(*) FROM deliveries d WHERE d.subscription_id = s.id AND d.status = 'sending') AS depth,
  COALESCE(EXTRACT(EPOCH FROM now() - LEAST(
    (SELECT d.created_at FROM deliveries d WHERE d.subscription_id = s.id AND d.status = 'pending' ORDER BY d.created_at LIMIT 1),
    (SELECT d.created_at FROM deliveries d WHERE d.subscription_id = s.id AND d.status = 'sending' ORDER BY d.created_at LIMIT 1))), 0)::float8 AS age,
  (SELECT count(*) FROM deliveries d WHERE d.subscription_id = s.id AND d.status = 'dead') AS dead
FROM subscriptions s`;
// inbox_ready (next_attempt_at) WHERE pending, inbox_failed WHERE failed: the waiting rows only.
const INBOX_QUEUE = `
SELECT (SELECT count(*) FROM inbox WHERE status = 'pending') AS pending,
       (SELECT count(*) FROM inbox WHERE status = 'failed') AS failed,
       COALESCE(EXTRACT(EPOCH FROM now() - (SELECT next_attempt_at FROM inbox WHERE status = 'pending' ORDER BY next_attempt_at LIMIT 1)), 0)::float8 AS due_age`;
// operations_status_created (status, created_at): operations still in flight; finished ones are counted by
// seigo_operation_transitions_total, not by reading the table.
const OPERATIONS_IN_FLIGHT = `
SELECT provider, status, count(*) AS n FROM operations WHERE status IN ('pending', 'sending', 'unknown') GROUP BY provider, status`;
const OPERATIONS_OVERDUE = `SELECT count(*) AS n FROM operations WHERE status = 'unknown' AND deadline_at < now()`;
const CASES_OPEN = `SELECT kind, cause, count(*) AS n FROM cases WHERE status IN ('open', 'investigating') GROUP BY kind, cause`;
// The latest run of each scope by a skip scan over reconcile_runs_scope (scope, started_at DESC): one index
// descent per scope, however many runs there are.
const RECONCILE_LAST_RUNS = `
WITH RECURSIVE scopes AS (
  (SELECT scope FROM reconcile_runs ORDER BY scope LIMIT 1)
  UNION ALL
  SELECT (SELECT r.scope FROM reconcile_runs r WHERE r.scope > scopes.scope ORDER BY r.scope LIMIT 1) FROM scopes WHERE scopes.scope IS NOT NULL
)
SELECT scopes.scope, EXTRACT(EPOCH FROM last.started_at)::float8 AS started, EXTRACT(EPOCH FROM last.finished_at)::float8 AS finished, last.status
FROM scopes CROSS JOIN LATERAL (
  SELECT started_at, finished_at, status FROM reconcile_runs r WHERE r.scope = scopes.scope ORDER BY started_at DESC LIMIT 1
) last WHERE scopes.scope IS NOT NULL`;
// reconcile_breaks_scope_open (scope) WHERE open: the open breaks only.
const RECONCILE_BREAKS_OPEN = `SELECT scope, class, count(*) AS n FROM reconcile_breaks WHERE status = 'open' GROUP BY scope, class`;

type GaugeCollect = (this: client.Gauge, pool: pg.Pool) => Promise<void>;

function gauge(registry: client.Registry, pool: pg.Pool, name: string, help: string, labelNames: string[], collect: GaugeCollect): void {
  new client.Gauge({ name, help, labelNames, registers: [registry], async collect() { await collect.call(this, pool); } });
}

/** The gauges read from the database at scrape time. A query that several gauges share runs once per scrape. */
export function registerDatabaseGauges(registry: client.Registry, pool: pg.Pool): void {
  const once = <T extends pg.QueryResultRow>(sql: string) => {
    let pending: Promise<T[]> | null = null;
    return () => {
      // Gauges collect concurrently within one scrape: they share the answer, and the next scrape asks again.
      pending ??= pool.query<T>(sql).then((r) => r.rows).finally(() => setImmediate(() => { pending = null; }));
      return pending;
    };
  };
  const queues = once<{ name: string; depth: string; age: number; dead: string }>(QUEUE_BY_SUBSCRIPTION);
  const inbox = once<{ pending: string; failed: string; due_age: number }>(INBOX_QUEUE);
  const runs = once<{ scope: string; started: number; finished: number | null; status: string }>(RECONCILE_LAST_RUNS);
  const bySubscription = (field: 'depth' | 'age' | 'dead'): GaugeCollect => async function (this: client.Gauge) {
    this.reset();
    for (const r of await queues()) this.set({ subscription: r.name }, Number(r[field]));
  };
  gauge(registry, pool, 'seigo_queue_depth', 'Unfinished deliveries (pending or sending) per subscription', ['subscription'], bySubscription('depth'));
  gauge(registry, pool, 'seigo_queue_oldest_age_seconds', 'Age of the oldest unfinished delivery per subscription (0: none)', ['subscription'], bySubscription('age'));
  gauge(registry, pool, 'seigo_dead_deliveries', 'Dead deliveries (DLQ) per subscription', ['subscription'], bySubscription('dead'));
  gauge(registry, pool, 'seigo_inbox_pending', 'Inbox rows waiting to be processed, and failed ones', ['status'], async function () {
    const [r] = await inbox();
    this.set({ status: 'pending' }, Number(r?.pending ?? 0));
    this.set({ status: 'failed' }, Number(r?.failed ?? 0));
  });
  gauge(registry, pool, 'seigo_inbox_oldest_due_age_seconds', 'How long the longest-due pending inbox row has been due (0: none)', [], async function () {
    this.set((await inbox())[0]?.due_age ?? 0);
  });
  gauge(registry, pool, 'seigo_operations', 'Outbound operations in flight (pending, sending, unknown) by provider and state', ['provider', 'status'], async function (p) {
    this.reset();
    for (const r of (await p.query<{ provider: string; status: string; n: string }>(OPERATIONS_IN_FLIGHT)).rows) this.set({ provider: r.provider, status: r.status }, Number(r.n));
  });
  gauge(registry, pool, 'seigo_operations_unknown_overdue', 'Operations still unknown past their deadline', [], async function (p) {
    this.set(Number((await p.query<{ n: string }>(OPERATIONS_OVERDUE)).rows[0]?.n ?? 0));
  });
  gauge(registry, pool, 'seigo_cases_open', 'Cases waiting for a person (open or investigating) by kind and cause', ['kind', 'cause'], async function (p) {
    this.reset();
    for (const r of (await p.query<{ kind: string; cause: string; n: string }>(CASES_OPEN)).rows) this.set({ kind: r.kind, cause: r.cause }, Number(r.n));
  });
  gauge(registry, pool, 'seigo_reconcile_last_run_timestamp_seconds', 'When the latest reconciliation run of each scope started (Unix seconds)', ['scope'], async function () {
    this.reset();
    for (const r of await runs()) this.set({ scope: r.scope }, r.started);
  });
  gauge(registry, pool, 'seigo_reconcile_last_run_succeeded', 'Whether the latest run of each scope succeeded (1), failed (0) or still runs (-1)', ['scope'], async function () {
    this.reset();
    for (const r of await runs()) this.set({ scope: r.scope }, r.status === 'succeeded' ? 1 : r.status === 'failed' ? 0 : -1);
  });
  gauge(registry, pool, 'seigo_reconcile_breaks_open', 'Reconciliation breaks still open, by scope and class', ['scope', 'class'], async function (p) {
    this.reset();
    for (const r of (await p.query<{ scope: string; class: string; n: string }>(RECONCILE_BREAKS_OPEN)).rows) this.set({ scope: r.scope, class: r.class }, Number(r.n));
  });
}
