-- PL/pgSQL caches each statement's plan like a prepared statement, and PostgreSQL's default plan
-- choice kept re-planning these on every call (and planned while the tables were still small).
-- Their plans do not depend on the values (key look-ups, locks by primary key), so they always
-- use the generic plan. On the intake's batch INSERT this cut ~300 to ~55 µs of CPU per row; on
-- the ledger bench the gain was small (0.14x -> 0.16x pgbench, within noise): the ledger's cost is
-- elsewhere (foreign-key checks, the per-row balance trigger), noted for the next session.
ALTER FUNCTION seigo_ledger_post(uuid, text, text, text, jsonb, uuid, uuid[], bigint[], bigint, boolean)
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seigo_ledger_credit_deposit(uuid, text, text, text, bigint, uuid, text, text, jsonb, bigint, uuid[])
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seigo_ledger_deposit_outcome(uuid, uuid, uuid, uuid)
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION ledger_check_balanced()
  SET plan_cache_mode = force_generic_plan;
