-- Outbox: messages published in the producer's transaction; one delivery row per matching subscription.
CREATE TABLE outbox_messages (
  id          uuid PRIMARY KEY,
  topic       text NOT NULL,
  key         text,
  entity_type text,
  entity_id   text,
  attributes  jsonb NOT NULL DEFAULT '{}',
  payload     jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_messages_topic_created ON outbox_messages (topic, created_at);
CREATE INDEX outbox_messages_entity ON outbox_messages (entity_type, entity_id) WHERE entity_id IS NOT NULL;

CREATE TABLE subscriptions (
  id                 uuid PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  -- an exact topic, or a prefix followed by '*' ("deposit.*")
  topic              text NOT NULL,
  filter             jsonb NOT NULL DEFAULT '{}',
  target_type        text NOT NULL CHECK (target_type IN ('handler', 'http')),
  target             jsonb NOT NULL,
  secret             text,
  retry_schedule_ms  bigint[] NOT NULL,
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
  status_reason      text,
  source             text NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (target_type <> 'http' OR secret IS NOT NULL)
);

CREATE TABLE deliveries (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id        uuid NOT NULL REFERENCES outbox_messages (id),
  subscription_id   uuid NOT NULL REFERENCES subscriptions (id),
  target_type       text NOT NULL CHECK (target_type IN ('handler', 'http')),
  status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'delivered', 'dead', 'cancelled')),
  attempts          int NOT NULL DEFAULT 0,
  next_attempt_at   timestamptz NOT NULL DEFAULT now(),
  locked_until      timestamptz,
  last_error        text,
  last_status_code  int,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  delivered_at      timestamptz,
  redrives          int NOT NULL DEFAULT 0,
  CONSTRAINT deliveries_message_subscription UNIQUE (message_id, subscription_id)
);
CREATE INDEX deliveries_ready ON deliveries (target_type, next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_subscription_status ON deliveries (subscription_id, status, created_at);
CREATE INDEX deliveries_dead ON deliveries (subscription_id, updated_at) WHERE status = 'dead';

CREATE TRIGGER deliveries_notify AFTER INSERT ON deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION seigo_notify_work('deliveries');
