-- Periodic jobs are rows with a next-run time, claimed like any other work, so that with any
-- number of workers each run happens exactly once.
CREATE TABLE periodic_jobs (
  name          text PRIMARY KEY,
  interval_ms   bigint NOT NULL CHECK (interval_ms > 0),
  next_run_at   timestamptz NOT NULL DEFAULT now(),
  locked_until  timestamptz,
  locked_by     text,
  runs          bigint NOT NULL DEFAULT 0,
  last_run_at   timestamptz,
  last_error    text
);

-- Live worker and api processes, for the operator's view; a row older than a few heartbeats is a dead process.
CREATE TABLE processes (
  id            text PRIMARY KEY,
  role          text NOT NULL,
  hostname      text NOT NULL,
  pid           int NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- Wakes workers as soon as work is committed; workers also poll, so a lost NOTIFY only delays.
CREATE FUNCTION seigo_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('seigo_work', TG_ARGV[0]);
  RETURN NULL;
END $$;
