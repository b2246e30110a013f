-- Idempotency keys held by a live process, not by a lease: each API process holds a session-level
-- advisory lock (IDEMPOTENCY_OWNER_LOCK_CLASS, owner) on a connection of its own, and names that
-- owner on the keys it claims. A session lock dies with its connection, so the keys of a killed
-- process are free at once; a key is taken over only when its owner's lock is not held. Rows from
-- before this migration (owner NULL) keep their time lease (locked_until).
ALTER TABLE idempotency_keys ADD COLUMN owner int;

-- Whether the process that claimed a key still holds its owner lock in this database. Reads
-- pg_locks, so it is called only for a key found in progress, never on the first claim.
CREATE FUNCTION idempotency_owner_alive(owner int) RETURNS boolean
LANGUAGE sql STABLE AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      -- pg_advisory_lock(int4, int4) shows as classid = key1, objid = key2, objsubid = 2.
      AND classid = 1936025959::oid AND objid = owner::oid AND objsubid = 2)
$$;
