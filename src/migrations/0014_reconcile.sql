-- Reconciliation (issue 5, MISSION G1–G4; seeds 001 リコンサイル, 003 突合): one row per run, and
-- one row per discrepancy found. The other side's rows are staged per run in a temporary table
-- (src/reconcile/stage.ts), so nothing of them outlives the run but the breaks.
CREATE TABLE reconcile_runs (
  id            uuid PRIMARY KEY,
  -- provider | csv | zengin | deliveries
  source        text NOT NULL CHECK (source IN ('provider', 'csv', 'zengin', 'deliveries')),
  -- What the breaks of this run are deduplicated within: 'provider:stripe', 'zengin', 'csv:<provider>', 'deliveries'.
  scope         text NOT NULL,
  provider      text,
  file_name     text,
  window_from   timestamptz,
  window_to     timestamptz,
  status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  trigger       text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('manual', 'schedule', 'api')),
  external_rows bigint NOT NULL DEFAULT 0,
  internal_rows bigint NOT NULL DEFAULT 0,
  -- { matched, missing_here, missing_there, amount_mismatch, status_mismatch, duplicate_there }
  counts        jsonb NOT NULL DEFAULT '{}',
  -- { notifications, inquiries, imports, cases }: what the repair step did.
  repairs       jsonb NOT NULL DEFAULT '{}',
  -- Milliseconds per phase: { stage, match, repair, total }.
  timings       jsonb NOT NULL DEFAULT '{}',
  error         text,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz
);
CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at DESC, id DESC);
CREATE INDEX reconcile_runs_scope ON reconcile_runs (scope, started_at DESC);

-- One row per discrepancy (scope, class, key): seen again by a later run, the same row is updated
-- (run_id = the latest run that saw it), so re-running a window opens nothing twice. A break the
-- next run covering its time no longer sees is resolved. One open break per (scope, class, key) is
-- kept by the run's statement itself, under a per-scope advisory lock (src/reconcile/run.ts), not
-- by a unique index: a run inserts tens of thousands of breaks at once, and an index on random
-- keys (or on random uuids) cost more than the match. Every index here is appended to at its end.
CREATE TABLE reconcile_breaks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  scope            text NOT NULL,
  provider         text,
  class            text NOT NULL CHECK (class IN ('missing_here', 'missing_there', 'amount_mismatch', 'status_mismatch', 'duplicate_there')),
  match_key        text NOT NULL,
  -- No foreign keys to reconcile_runs either: per-row key checks were a fifth of a run's time.
  run_id           uuid NOT NULL,
  first_run_id     uuid NOT NULL,
  seen_count       int NOT NULL DEFAULT 1,
  status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  external_id      text,
  -- The internal record: deposit id, bank transfer external id or delivery id.
  internal_type    text,
  internal_id      text,
  external_amount  bigint,
  internal_amount  bigint,
  currency         text,
  external_status  text,
  internal_status  text,
  external_count   int NOT NULL DEFAULT 0,
  occurred_at      timestamptz,
  -- The other side's row as they gave it (provider history, Zengin), so a repair can replay it.
  external_raw     jsonb,
  -- none | notification | inquiry | import | case: the last repair step taken.
  repair           text NOT NULL DEFAULT 'none' CHECK (repair IN ('none', 'notification', 'inquiry', 'import', 'case')),
  repair_ref       text,
  repaired_at      timestamptz,
  case_id          uuid,
  first_seen_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at     timestamptz NOT NULL DEFAULT now(),
  resolved_at      timestamptz,
  resolved_run_id  uuid
);
CREATE INDEX reconcile_breaks_run ON reconcile_breaks (run_id, class, id);
CREATE INDEX reconcile_breaks_scope_open ON reconcile_breaks (scope) WHERE status = 'open';

-- A break as one run's statement gathers it (src/reconcile/run.ts): counted and collected in one
-- pass over the classified rows.
CREATE TYPE reconcile_break_row AS (
  class text, match_key text, external_id text, internal_id text, external_amount bigint, internal_amount bigint, currency text,
  external_status text, internal_status text, external_count int, occurred_at timestamptz
);
