-- Idempotency keys for API clients' POST requests (Stripe semantics): the first request with a key
-- runs and its response is stored; a retry with the same key and parameters gets that response back.
CREATE TABLE idempotency_keys (
  client          text NOT NULL,
  key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  method          text NOT NULL,
  -- the request target as sent (path and query string)
  path            text NOT NULL,
  -- SHA-256 (hex) of the canonical JSON of the request body
  request_hash    text NOT NULL,
  status          text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'done')),
  -- The attempt that holds the key and until when: a crashed attempt's key is taken over once
  -- locked_until has passed, and an attempt that lost its lock cannot store over its successor.
  locked_by       uuid,
  locked_until    timestamptz,
  response_status int CHECK (response_status BETWEEN 100 AND 599),
  response_type   text,
  -- text, not jsonb: jsonb reorders keys and drops whitespace, and a replay must be byte-identical
  response_body   text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  completed_at    timestamptz,
  PRIMARY KEY (client, key),
  CHECK ((status = 'in_progress') = (locked_by IS NOT NULL AND locked_until IS NOT NULL)),
  CHECK ((status = 'done') = (response_status IS NOT NULL AND response_body IS NOT NULL AND completed_at IS NOT NULL))
);
-- Pruning deletes by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
