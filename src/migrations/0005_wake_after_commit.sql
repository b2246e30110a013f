-- Workers are now woken after commit by the process that committed (src/kernel/wake.ts), not by
-- NOTIFY inside the writing transaction: PostgreSQL serializes the commits of transactions that
-- NOTIFY on a global queue lock, which cost ~1.8 ms per intake batch and defeated group commit.
DROP TRIGGER IF EXISTS inbox_notify ON inbox;
DROP TRIGGER IF EXISTS deliveries_notify ON deliveries;
DROP FUNCTION IF EXISTS seigo_notify_work();
