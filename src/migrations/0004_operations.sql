-- Outbound operations: recorded before they are sent, so every call ends in a known state.
CREATE TABLE operations (
  id               uuid PRIMARY KEY,
  provider         text NOT NULL,
  kind             text NOT NULL,
  entity_type      text,
  entity_id        text,
  idempotency_key  text NOT NULL,
  idempotent       boolean NOT NULL DEFAULT false,
  request          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'succeeded', 'failed', 'unknown')),
  response         jsonb,
  error_code       text,
  error_message    text,
  attempts         int NOT NULL DEFAULT 0,
  inquiries        int NOT NULL DEFAULT 0,
  next_inquiry_at  timestamptz,
  deadline_at      timestamptz,
  locked_until     timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  completed_at     timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT operations_provider_idempotency_key UNIQUE (provider, idempotency_key)
);
CREATE INDEX operations_entity ON operations (entity_type, entity_id) WHERE entity_id IS NOT NULL;
CREATE INDEX operations_inquiry ON operations (next_inquiry_at) WHERE status IN ('unknown', 'sending');
CREATE INDEX operations_status_created ON operations (status, created_at);

-- Every transition with its cause, for the operator and for audit.
CREATE TABLE operation_events (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  operation_id  uuid NOT NULL REFERENCES operations (id),
  at            timestamptz NOT NULL DEFAULT now(),
  from_status   text,
  to_status     text NOT NULL,
  cause         text NOT NULL
);
CREATE INDEX operation_events_operation ON operation_events (operation_id, id);
