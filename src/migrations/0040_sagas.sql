-- Sagas: a named list of steps, each invoked and, when a later step fails for good,
-- compensated newest first. Every step's start and result is a row committed before the next step
-- begins, so a saga whose worker died is resumed by another from what the rows say.
CREATE TABLE sagas (
  id           uuid PRIMARY KEY,
  name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  -- The starter's key: one saga per (name, key), so starting twice returns the first.
  key          text CHECK (length(key) BETWEEN 1 AND 500),
  status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'compensating', 'completed', 'compensated', 'failed')),
  input        jsonb NOT NULL DEFAULT '{}',
  entity_type  text,
  entity_id    text,
  -- The step being invoked or compensated, and the last failure's cause, for the operator.
  current_step text,
  last_error   text,
  next_run_at  timestamptz NOT NULL DEFAULT now(),
  -- The lease of the worker advancing it: a fresh token per claim; writes are fenced by it.
  lease_token  uuid,
  locked_until timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  CONSTRAINT sagas_finished CHECK ((status IN ('completed', 'compensated', 'failed')) = (finished_at IS NOT NULL))
);
CREATE UNIQUE INDEX sagas_name_key ON sagas (name, key) WHERE key IS NOT NULL;
CREATE INDEX sagas_due ON sagas (next_run_at) WHERE status IN ('running', 'compensating');
-- Admin lists page newest first by id (UUIDv7 is time-ordered).
CREATE INDEX sagas_status_id ON sagas (status, id DESC);
CREATE INDEX sagas_name_id ON sagas (name, id DESC);
CREATE INDEX sagas_entity ON sagas (entity_type, entity_id) WHERE entity_id IS NOT NULL;

CREATE TABLE saga_steps (
  saga_id       uuid NOT NULL REFERENCES sagas (id),
  position      int NOT NULL CHECK (position >= 0),
  step_id       text NOT NULL CHECK (length(step_id) BETWEEN 1 AND 200),
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN (
                  'pending', 'running', 'succeeded', 'failed', 'unknown', 'compensating', 'compensated', 'compensation_failed')),
  output        jsonb,
  error         text,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (saga_id, position),
  CONSTRAINT saga_steps_step UNIQUE (saga_id, step_id)
);

-- One row per try of a step's invoke or compensate, written as `started` before the call and
-- completed after it; an attempt whose outcome is unknown is asked about (`inquiries`) before anything else.
CREATE TABLE saga_step_attempts (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  saga_id          uuid NOT NULL REFERENCES sagas (id),
  step_id          text NOT NULL,
  phase            text NOT NULL CHECK (phase IN ('invoke', 'compensate')),
  attempt          int NOT NULL CHECK (attempt >= 1),
  status           text NOT NULL DEFAULT 'started' CHECK (status IN ('started', 'succeeded', 'failed', 'unknown')),
  idempotency_key  text NOT NULL,
  inquiries        int NOT NULL DEFAULT 0,
  output           jsonb,
  error_code       text,
  error_message    text,
  started_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  CONSTRAINT saga_step_attempts_one UNIQUE (saga_id, step_id, phase, attempt)
);

-- Every transition of a saga or of one of its steps, with its cause.
CREATE TABLE saga_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  saga_id      uuid NOT NULL REFERENCES sagas (id),
  at           timestamptz NOT NULL DEFAULT now(),
  step_id      text,
  from_status  text,
  to_status    text NOT NULL,
  cause        text NOT NULL
);
CREATE INDEX saga_events_saga ON saga_events (saga_id, id);

-- A compensation that failed for good opens a case about the saga; a store subscription claimed by a
-- second member opens one about the in-app subscription (0041).
ALTER TABLE cases DROP CONSTRAINT cases_subject_type_check;
ALTER TABLE cases ADD CONSTRAINT cases_subject_type_check CHECK (subject_type IN (
  'deposit', 'operation', 'delivery', 'inbox', 'recon_break', 'ledger_account', 'ledger_transaction', 'bank_transfer', 'saga', 'iap_subscription'));
