-- PL/pgSQL caches each statement's plan like a prepared statement, and PostgreSQL's default plan
-- choice kept re-planning these on every call (and planned while the tables were still small).
-- Their plans do not depend on the values (key look-ups, locks by primary key), so they always
-- use the generic plan. The gain on the ledger bench was small (0.14x -> 0.16x pgbench, within
-- noise): the ledger's cost is elsewhere (foreign-key checks, the per-row balance trigger).
-- Beware: a generic plan is made once; these statements look rows up by key, whose index plan
-- does not depend on table size, unlike a join (see docs/benchmarks.md on the intake).
ALTER FUNCTION seigo_ledger_post(uuid, text, text, text, jsonb, uuid, uuid[], bigint[], bigint, boolean)
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seigo_ledger_credit_deposit(uuid, text, text, text, bigint, uuid, text, text, jsonb, bigint, uuid[])
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION seigo_ledger_deposit_outcome(uuid, uuid, uuid, uuid)
  SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION ledger_check_balanced()
  SET plan_cache_mode = force_generic_plan;
