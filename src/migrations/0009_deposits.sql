-- Deposits (D1–D4): one row per deposit, whatever the method, moving along the state machine in
-- src/deposits/state.ts. The status CHECK is named so that a later migration can widen it
-- (awaiting_payment, expired, … for konbini / Pay-easy reservations) with DROP + ADD CONSTRAINT.
CREATE TABLE deposits (
  id                     uuid PRIMARY KEY,
  user_id                text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
  method                 text NOT NULL CHECK (method IN ('card', 'konbini', 'payeasy', 'bank_transfer')),
  amount                 bigint NOT NULL CHECK (amount > 0),
  currency               text NOT NULL DEFAULT 'JPY' CHECK (currency ~ '^[A-Z]{3}$'),
  status                 text NOT NULL,
  provider               text NOT NULL,
  -- The caller's idempotency key for the request that created it (unique per user when given).
  client_key             text,
  operation_id           uuid,
  provider_payment_id    text,
  failure_code           text,
  failure_message        text,
  credited               bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),
  escrowed               bigint NOT NULL DEFAULT 0 CHECK (escrowed >= 0),
  suspended              bigint NOT NULL DEFAULT 0 CHECK (suspended >= 0),
  ledger_transaction_id  uuid,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT deposits_status_check CHECK (status IN ('pending', 'processing', 'succeeded', 'failed', 'unknown')),
  -- A succeeded deposit is booked in full: wallet + escrow + suspense = amount, in one ledger transaction.
  CONSTRAINT deposits_succeeded_booked CHECK (
    status <> 'succeeded' OR (ledger_transaction_id IS NOT NULL AND credited + escrowed + suspended = amount)),
  CONSTRAINT deposits_user_client_key UNIQUE (user_id, client_key)
);
CREATE INDEX deposits_user_created ON deposits (user_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX deposits_operation ON deposits (operation_id) WHERE operation_id IS NOT NULL;
-- In-flight deposits count toward the user's limit at the next request's pre-check.
CREATE INDEX deposits_in_flight ON deposits (user_id, currency) WHERE status IN ('pending', 'processing', 'unknown');
CREATE INDEX deposits_status_updated ON deposits (status, updated_at) WHERE status IN ('pending', 'processing', 'unknown');

-- Every transition with its cause.
CREATE TABLE deposit_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deposit_id   uuid NOT NULL REFERENCES deposits (id),
  at           timestamptz NOT NULL DEFAULT now(),
  from_status  text,
  to_status    text NOT NULL,
  cause        text NOT NULL
);
CREATE INDEX deposit_events_deposit ON deposit_events (deposit_id, id);
