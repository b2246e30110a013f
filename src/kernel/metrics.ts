// Prometheus metrics (prom-client), one registry per process. Queue depth and age are read from
// the database at scrape time, so every api and worker process reports the same truth.
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
  client.collectDefaultMetrics({ register: registry, prefix: 'seigo_process_' });
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
  if (pool) {
    new client.Gauge({
      name: 'seigo_queue_depth', help: 'Unfinished deliveries per subscription', labelNames: ['subscription'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ name: string; n: string }>(
          `SELECT s.name, count(d.id) AS n FROM subscriptions s LEFT JOIN deliveries d ON d.subscription_id = s.id AND d.status IN ('pending', 'sending') GROUP BY s.name`);
        for (const row of r.rows) this.set({ subscription: row.name }, Number(row.n));
      },
    });
    new client.Gauge({
      name: 'seigo_queue_oldest_age_seconds', help: 'Age of the oldest unfinished delivery per subscription', labelNames: ['subscription'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ name: string; age: number }>(
          `SELECT s.name, COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at)), 0)::float8 AS age FROM subscriptions s
           LEFT JOIN deliveries d ON d.subscription_id = s.id AND d.status IN ('pending', 'sending') GROUP BY s.name`);
        for (const row of r.rows) this.set({ subscription: row.name }, row.age);
      },
    });
    new client.Gauge({
      name: 'seigo_dead_deliveries', help: 'Dead deliveries (DLQ) per subscription', labelNames: ['subscription'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ name: string; n: string }>(
          `SELECT s.name, count(d.id) AS n FROM subscriptions s LEFT JOIN deliveries d ON d.subscription_id = s.id AND d.status = 'dead' GROUP BY s.name`);
        for (const row of r.rows) this.set({ subscription: row.name }, Number(row.n));
      },
    });
    new client.Gauge({
      name: 'seigo_inbox_pending', help: 'Inbox rows waiting to be processed, and failed ones', labelNames: ['status'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM inbox WHERE status IN ('pending', 'failed') GROUP BY status`);
        this.set({ status: 'pending' }, 0);
        this.set({ status: 'failed' }, 0);
        for (const row of r.rows) this.set({ status: row.status }, Number(row.n));
      },
    });
    new client.Gauge({
      name: 'seigo_operations', help: 'Outbound operations by provider and state', labelNames: ['provider', 'status'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ provider: string; status: string; n: string }>('SELECT provider, status, count(*) AS n FROM operations GROUP BY provider, status');
        for (const row of r.rows) this.set({ provider: row.provider, status: row.status }, Number(row.n));
      },
    });
    new client.Gauge({
      name: 'seigo_operations_unknown_overdue', help: 'Operations still unknown past their deadline', registers: [registry],
      async collect() {
        const r = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM operations WHERE status = 'unknown' AND deadline_at < now()`);
        this.set(Number(r.rows[0]?.n ?? 0));
      },
    });
    new client.Gauge({
      name: 'seigo_cases_open', help: 'Cases waiting for a person (open or investigating) by kind and cause', labelNames: ['kind', 'cause'], registers: [registry],
      async collect() {
        this.reset();
        const r = await pool.query<{ kind: string; cause: string; n: string }>(
          `SELECT kind, cause, count(*) AS n FROM cases WHERE status IN ('open', 'investigating') GROUP BY kind, cause`);
        for (const row of r.rows) this.set({ kind: row.kind, cause: row.cause }, Number(row.n));
      },
    });
  }
  return m;
}
