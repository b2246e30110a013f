-- The zero-sum check at COMMIT (ledger_check_balanced, deferred, one call per ledger transaction)
-- first asks the question that nearly always has a plain answer: at least two entries, one
-- currency, summing to zero. That is one aggregate over the transaction's entries; the grouped
-- query that names each unbalanced currency runs only when the answer is no, to word the error.
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  n int;
  total numeric;
  one_currency boolean;
  unbalanced text;
BEGIN
  SELECT count(*)::int, sum(e.amount), min(e.currency) = max(e.currency) INTO n, total, one_currency
  FROM ledger_entries e WHERE e.transaction_id = NEW.id;
  IF n >= 2 AND one_currency AND total = 0 THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(sum(s.n), 0)::int, string_agg(s.currency || ' ' || s.total, ', ') FILTER (WHERE s.total <> 0)
    INTO n, unbalanced
  FROM (SELECT e.currency, sum(e.amount) AS total, count(*) AS n FROM ledger_entries e WHERE e.transaction_id = NEW.id GROUP BY e.currency) s;
  IF n < 2 THEN
    RAISE EXCEPTION 'ledger transaction % has % entries; at least 2 are required', NEW.id, n
      USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
  END IF;
  IF unbalanced IS NOT NULL THEN
    RAISE EXCEPTION 'ledger transaction % does not balance: %', NEW.id, unbalanced
      USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
  END IF;
  RETURN NULL;
END $$;
