-- The attempt log of each HTTP delivery, as Svix and Convoy show it: when it was tried, how long it
-- took, what the endpoint answered (a bounded excerpt) or why it failed. One row per attempt, written
-- with the attempt's outcome; deleted with its delivery.
CREATE TABLE delivery_attempts (
  id               uuid PRIMARY KEY,
  delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
  attempt          int NOT NULL CHECK (attempt >= 1),
  started_at       timestamptz NOT NULL,
  latency_ms       int NOT NULL CHECK (latency_ms >= 0),
  -- the endpoint's HTTP status; NULL when no answer came (timeout, refused connection)
  status_code      int,
  outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'disabled')),
  error            text CHECK (length(error) <= 1000),
  response_excerpt text CHECK (length(response_excerpt) <= 1024)
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
