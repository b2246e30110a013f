-- The ledger's write path, leaner per deposit (seigo bench ledger; docs/benchmarks.md).
--
-- 1. The statement-level entry check looks up each ledger transaction and each (account,
-- currency) once, in two look-ups of their own, instead of joining every entry with every
-- transaction of the statement (a nested loop that grew with the square of a batch).
CREATE OR REPLACE FUNCTION ledger_check_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  bad record;
BEGIN
  SELECT d.transaction_id, t.id IS NULL AS no_transaction INTO bad
  FROM (SELECT DISTINCT transaction_id FROM added) d
  LEFT JOIN ledger_transactions t ON t.id = d.transaction_id
  WHERE t.id IS NULL OR t.created_xid <> pg_current_xact_id()
  LIMIT 1;
  IF FOUND AND bad.no_transaction THEN
    RAISE EXCEPTION 'ledger entry for transaction %, which does not exist', bad.transaction_id
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_entries_transaction';
  ELSIF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % was committed earlier: entries cannot be added to it; post a new transaction', bad.transaction_id
      USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'ledger_entries_transaction';
  END IF;
  SELECT d.account_id, d.currency INTO bad
  FROM (SELECT DISTINCT account_id, currency FROM added) d
  WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = d.account_id AND a.currency = d.currency)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger entry for account % in %: no such account in that currency', bad.account_id, bad.currency
      USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_entries_account';
  END IF;
  RETURN NULL;
END $$;

-- 2. seigo_ledger_credit_deposits (0016), the same decisions with less work per deposit: the
-- transactions are inserted without ON CONFLICT (a speculative insertion costs an extra look-up
-- of the key per row, and the keys were already looked up under their locks); each source account
-- is looked up once per batch, not once per deposit; and the outcome of a deposit posted before
-- reads its entries only when there is one (the look-up ran for every item, with a NULL key).
CREATE OR REPLACE FUNCTION seigo_ledger_credit_deposits(
  p_ids uuid[], p_keys text[], p_owners text[], p_currencies text[], p_amounts bigint[], p_sources uuid[], p_modes text[],
  p_descriptions text[], p_metadata jsonb[], p_default_limits bigint[], p_new_ids uuid[])
RETURNS TABLE (idx int, transaction_id uuid, duplicate boolean, credited bigint, escrowed bigint, suspended bigint,
               wallet_id uuid, error text, amount bigint, detail text)
LANGUAGE plpgsql
-- Every statement here looks rows up by key. With arrays of unknown length the planner could pick
-- a hash join over a whole table for the batch look-ups; index look-ups are always right here.
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
  n int := cardinality(p_ids);
  wallets uuid[];
  escrows uuid[];
  suspenses uuid[];
  existing uuid[];      -- the transaction already posted under the item's key
  firsts int[];         -- the first item in this batch with the same key
  src_currency text[];
  src_shards int[];
  shards int[];         -- the source shard each item uses
  lk_ids uuid[];        -- the locked balance rows, in lock order
  lk_posted bigint[];
  lk_pending bigint[];
  wpos int[];           -- each item's wallet row among them
  limits bigint[];
  restricted boolean[];
  o_tx uuid[] := array_fill(NULL::uuid, ARRAY[n]);
  o_credited bigint[] := array_fill(0::bigint, ARRAY[n]);
  o_escrowed bigint[] := array_fill(0::bigint, ARRAY[n]);
  o_suspended bigint[] := array_fill(0::bigint, ARRAY[n]);
  o_error text[] := array_fill(NULL::text, ARRAY[n]);
  o_amount bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  o_detail text[] := array_fill(NULL::text, ARRAY[n]);
  p int;
  room bigint;
  written int := 0;
  -- One shard of each hot source account for the whole batch: its deposits then change one row of
  -- it, and two batches in flight meet on it only as often as two single deposits would.
  pick double precision := random();
BEGIN
  IF n IS NULL OR n = 0 THEN
    RETURN;
  END IF;
  IF cardinality(p_keys) <> n OR cardinality(p_owners) <> n OR cardinality(p_currencies) <> n OR cardinality(p_amounts) <> n
     OR cardinality(p_sources) <> n OR cardinality(p_modes) <> n OR cardinality(p_descriptions) <> n
     OR cardinality(p_metadata) <> n OR cardinality(p_default_limits) <> n OR cardinality(p_new_ids) <> 3 * n THEN
    RAISE EXCEPTION 'seigo_ledger_credit_deposits: arrays of different lengths';
  END IF;
  IF EXISTS (SELECT 1 FROM unnest(p_amounts) AS a WHERE a IS NULL OR a <= 0) THEN
    RAISE EXCEPTION 'a deposit amount must be positive';
  END IF;

  -- One caller at a time per idempotency key, taken in one order (no deadlock between batches):
  -- a concurrent call with the same key has committed, or not begun, by the look-up below.
  PERFORM pg_advisory_xact_lock(7001, k.h) FROM (SELECT DISTINCT hashtext(x) AS h FROM unnest(p_keys) AS x ORDER BY 1) k;

  -- In one look-up: the users' wallet, escrow and suspense accounts (created on first use, then
  -- looked up again), keys already posted, the first item of each key in this batch, the sources
  -- and the shard of each source this batch uses.
  FOR pass IN 1 .. 2 LOOP
    SELECT array_agg(w.wallet ORDER BY u.i), array_agg(w.escrow ORDER BY u.i), array_agg(w.suspense ORDER BY u.i),
           array_agg(t.id ORDER BY u.i), array_agg(u.f ORDER BY u.i), array_agg(s.currency ORDER BY u.i),
           array_agg(CASE WHEN s.shards = 1 THEN 0 ELSE floor(pick * s.shards)::int END ORDER BY u.i)
      INTO wallets, escrows, suspenses, existing, firsts, src_currency, shards
    FROM (SELECT x.o, x.c, x.k, x.src, x.i, (min(x.i) OVER (PARTITION BY x.k))::int AS f
          FROM unnest(p_owners, p_currencies, p_keys, p_sources) WITH ORDINALITY AS x(o, c, k, src, i)) u
    CROSS JOIN LATERAL (
      SELECT max(a.id::text) FILTER (WHERE a.kind = 'wallet')::uuid AS wallet,
             max(a.id::text) FILTER (WHERE a.kind = 'escrow')::uuid AS escrow,
             max(a.id::text) FILTER (WHERE a.kind = 'suspense')::uuid AS suspense
      FROM ledger_accounts a WHERE a.owner = u.o AND a.currency = u.c AND a.kind IN ('wallet', 'escrow', 'suspense')) w
    LEFT JOIN ledger_transactions t ON t.idempotency_key = u.k
    LEFT JOIN (SELECT a.id, a.currency, a.shards FROM ledger_accounts a
               WHERE a.id IN (SELECT DISTINCT x FROM unnest(p_sources) AS x)) s ON s.id = u.src;
    EXIT WHEN array_position(wallets, NULL) IS NULL AND array_position(escrows, NULL) IS NULL AND array_position(suspenses, NULL) IS NULL;
    IF pass = 2 THEN
      RAISE EXCEPTION 'ledger accounts could not be created';
    END IF;
    WITH ins AS (
      INSERT INTO ledger_accounts (id, kind, owner, currency, shards)
      SELECT DISTINCT ON (u.o, u.c, k.kind) p_new_ids[(u.i - 1) * 3 + k.j], k.kind, u.o, u.c, 1
      FROM unnest(p_owners, p_currencies) WITH ORDINALITY AS u(o, c, i),
           unnest(ARRAY['wallet', 'escrow', 'suspense']) WITH ORDINALITY AS k(kind, j)
      ORDER BY u.o, u.c, k.kind, u.i
      ON CONFLICT (kind, owner, currency) DO NOTHING
      RETURNING id, currency)
    INSERT INTO ledger_balances (account_id, shard, currency) SELECT ins.id, 0, ins.currency FROM ins;
  END LOOP;

  -- Lock the wallets and source shards of every item decided here, in (account id, shard) order
  -- as every writer does. A user's escrow and suspense rows are not locked here: most deposits
  -- leave them alone, and the UPDATE below locks the few it changes. The deposits that change them
  -- are serialized by the user's wallet lock already; another posting that holds one of them
  -- (a refund out of escrow) does not wait for the rows held here.
  SELECT array_agg(r.account_id ORDER BY r.account_id, r.shard), array_agg(r.posted ORDER BY r.account_id, r.shard),
         array_agg(r.pending_in ORDER BY r.account_id, r.shard)
    INTO lk_ids, lk_posted, lk_pending
  FROM (
    SELECT b.account_id, b.shard, b.posted, b.pending_in
    FROM (SELECT DISTINCT x.id, x.sh FROM generate_subscripts(p_ids, 1) AS i,
            LATERAL unnest(ARRAY[wallets[i], p_sources[i]], ARRAY[0, shards[i]]) AS x(id, sh)
          WHERE existing[i] IS NULL AND firsts[i] = i AND src_currency[i] = p_currencies[i]) x
    CROSS JOIN LATERAL (SELECT * FROM ledger_balances b WHERE b.account_id = x.id AND b.shard = x.sh) b
    ORDER BY b.account_id, b.shard
    FOR UPDATE OF b) r;

  -- Limits and restrictions, read under the wallets' locks as every writer of a wallet reads them.
  SELECT array_agg(array_position(lk_ids, wallets[u.i]) ORDER BY u.i), array_agg(l."limit" ORDER BY u.i),
         array_agg(x.owner IS NOT NULL ORDER BY u.i)
    INTO wpos, limits, restricted
  FROM unnest(p_owners, p_currencies) WITH ORDINALITY AS u(o, c, i)
  LEFT JOIN ledger_limits l ON l.owner = u.o AND l.currency = u.c
  LEFT JOIN ledger_restrictions x ON x.owner = u.o;

  FOR i IN 1 .. n LOOP
    CONTINUE WHEN existing[i] IS NOT NULL OR firsts[i] <> i;
    IF src_currency[i] IS NULL THEN
      o_error[i] := 'account_not_found';
      o_detail[i] := p_sources[i]::text;
      CONTINUE;
    ELSIF src_currency[i] <> p_currencies[i] THEN
      o_error[i] := 'currency_mismatch';
      o_detail[i] := src_currency[i];
      CONTINUE;
    END IF;
    p := wpos[i];
    IF p IS NULL THEN
      RAISE EXCEPTION 'ledger wallet % has no balance row', wallets[i];
    END IF;
    IF restricted[i] THEN
      o_suspended[i] := p_amounts[i];
    ELSE
      room := greatest(coalesce(limits[i], p_default_limits[i]) - lk_posted[p] - lk_pending[p], 0);
      IF p_amounts[i] <= room THEN
        o_credited[i] := p_amounts[i];
      ELSIF p_modes[i] = 'refusable' THEN
        o_error[i] := 'balance_limit_exceeded';
        o_amount[i] := room;
        CONTINUE;
      ELSE
        o_credited[i] := room;
        o_escrowed[i] := p_amounts[i] - room;
      END IF;
      lk_posted[p] := lk_posted[p] + o_credited[i];
    END IF;
    o_tx[i] := p_ids[i];
    written := written + 1;
  END LOOP;

  IF written > 0 THEN
    INSERT INTO ledger_transactions (id, idempotency_key, kind, description, metadata)
    SELECT p_ids[i], p_keys[i], 'deposit', p_descriptions[i],
           coalesce(p_metadata[i], '{}') || jsonb_build_object('owner', p_owners[i], 'mode', p_modes[i],
             'credited', o_credited[i]::text, 'escrowed', o_escrowed[i]::text, 'suspended', o_suspended[i]::text)
    -- No ON CONFLICT: the keys were looked up under their locks, so only a writer that bypasses
    -- those locks (a posting with a deposit's key) meets the unique index here, and its
    -- unique_violation (ledger_transactions_idempotency_key) fails the batch, as it should.
    FROM generate_subscripts(p_ids, 1) AS i WHERE o_tx[i] IS NOT NULL ORDER BY i;
    INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
    SELECT p_ids[i], e.acc, p_currencies[i], e.amt
    FROM generate_subscripts(p_ids, 1) AS i,
         LATERAL unnest(ARRAY[p_sources[i], wallets[i], escrows[i], suspenses[i]],
                        ARRAY[-p_amounts[i], o_credited[i], o_escrowed[i], o_suspended[i]]) WITH ORDINALITY AS e(acc, amt, pos)
    WHERE o_tx[i] IS NOT NULL AND e.amt <> 0 ORDER BY i, e.pos;
    -- One UPDATE may change a row only once: changes are summed per row.
    UPDATE ledger_balances b SET posted = b.posted + d.delta, updated_at = now()
    FROM (SELECT e.acc, e.sh, sum(e.amt)::bigint AS delta
          FROM generate_subscripts(p_ids, 1) AS i,
               LATERAL unnest(ARRAY[p_sources[i], wallets[i], escrows[i], suspenses[i]], ARRAY[shards[i], 0, 0, 0],
                              ARRAY[-p_amounts[i], o_credited[i], o_escrowed[i], o_suspended[i]]) AS e(acc, sh, amt)
          WHERE o_tx[i] IS NOT NULL AND e.amt <> 0 GROUP BY e.acc, e.sh) d
    WHERE b.account_id = d.acc AND b.shard = d.sh;
  END IF;

  -- Items whose key was posted before report that posting (read from its entries); later items
  -- with the key of an earlier item in this batch report the earlier item's outcome.
  RETURN QUERY
  SELECT i::int,
         coalesce(existing[f], o_tx[f]),
         existing[f] IS NOT NULL OR (f <> i AND o_tx[f] IS NOT NULL),
         CASE WHEN existing[f] IS NOT NULL THEN d.credited ELSE o_credited[f] END,
         CASE WHEN existing[f] IS NOT NULL THEN d.escrowed ELSE o_escrowed[f] END,
         CASE WHEN existing[f] IS NOT NULL THEN d.suspended ELSE o_suspended[f] END,
         wallets[i], o_error[f], o_amount[f], o_detail[f]
  FROM generate_subscripts(p_ids, 1) AS i
  CROSS JOIN LATERAL (SELECT firsts[i] AS f) ff
  LEFT JOIN LATERAL (
    SELECT coalesce(sum(e.amount) FILTER (WHERE e.account_id = wallets[i]), 0)::bigint AS credited,
           coalesce(sum(e.amount) FILTER (WHERE e.account_id = escrows[i]), 0)::bigint AS escrowed,
           coalesce(sum(e.amount) FILTER (WHERE e.account_id = suspenses[i]), 0)::bigint AS suspended
    FROM ledger_entries e WHERE existing[ff.f] IS NOT NULL AND e.transaction_id = existing[ff.f]) d ON existing[ff.f] IS NOT NULL
  ORDER BY i;
END $$;
