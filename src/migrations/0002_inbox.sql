-- Provider notifications, stored raw and durably before the sender is acknowledged.
CREATE TABLE inbox (
  id               uuid PRIMARY KEY,
  provider         text NOT NULL,
  event_id         text NOT NULL,
  source           text NOT NULL DEFAULT 'webhook' CHECK (source IN ('webhook', 'reconciliation', 'manual')),
  received_at      timestamptz NOT NULL DEFAULT now(),
  headers          jsonb NOT NULL DEFAULT '{}',
  body             bytea NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed', 'ignored')),
  event_type       text,
  entity_type      text,
  entity_id        text,
  attempts         int NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  processed_at     timestamptz,
  replays          int NOT NULL DEFAULT 0,
  CONSTRAINT inbox_provider_event_id UNIQUE (provider, event_id)
);
CREATE INDEX inbox_ready ON inbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX inbox_entity ON inbox (entity_type, entity_id) WHERE entity_id IS NOT NULL;
CREATE INDEX inbox_provider_received ON inbox (provider, received_at);
CREATE INDEX inbox_failed ON inbox (received_at) WHERE status = 'failed';

CREATE TRIGGER inbox_notify AFTER INSERT ON inbox
  FOR EACH STATEMENT EXECUTE FUNCTION seigo_notify_work('inbox');
