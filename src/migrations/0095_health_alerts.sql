-- Health (src/health): request counts, errors and a latency histogram per minute, per HTTP route,
-- webhook provider, outbound provider and delivery subscription, added to by every process's
-- in-memory rollup when it flushes; and the circuit breakers each process holds. Alerts
-- (src/alerts) evaluate rules over these and the engine's own tables, and remember what fired.
CREATE TABLE health_buckets (
  bucket_at       timestamptz NOT NULL,
  source          text NOT NULL CHECK (source IN ('route', 'webhook', 'provider', 'delivery')),
  name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  requests        bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
  errors          bigint NOT NULL DEFAULT 0 CHECK (errors >= 0 AND errors <= requests),
  -- Counts per latency bound (src/health/rollup.ts LATENCY_BOUNDS_MS), the last one unbounded.
  latency_counts  bigint[] NOT NULL,
  PRIMARY KEY (bucket_at, source, name)
);
CREATE INDEX health_buckets_source ON health_buckets (source, name, bucket_at);

-- A breaker's state as one process last reported it; a report older than a few flushes is stale.
CREATE TABLE breaker_states (
  endpoint     text NOT NULL,
  process_id   text NOT NULL,
  state        text NOT NULL CHECK (state IN ('closed', 'open', 'half_open', 'isolated')),
  changed_at   timestamptz NOT NULL,
  reported_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (endpoint, process_id)
);

-- One row per rule and subject that ever fired: firing until the rule stops matching it.
CREATE TABLE alert_states (
  rule              text NOT NULL,
  subject           text NOT NULL,
  status            text NOT NULL CHECK (status IN ('firing', 'resolved')),
  value             double precision NOT NULL,
  threshold         double precision NOT NULL,
  summary           text NOT NULL,
  fired_at          timestamptz NOT NULL,
  resolved_at       timestamptz,
  last_notified_at  timestamptz NOT NULL,
  notifications     integer NOT NULL DEFAULT 1 CHECK (notifications >= 1),
  PRIMARY KEY (rule, subject),
  CONSTRAINT alert_states_resolved_at CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX alert_states_firing ON alert_states (rule) WHERE status = 'firing';
