-- Postings in one round trip. A posting (and a deposit credit) is one function call that does
-- what src/ledger/post.ts and credit-deposit.ts used to do in four or five statements: the
-- idempotency look-up, the balance rows locked in (account id, shard) order, the wallet rules
-- checked under those locks, the transaction, its entries and the balance changes. Called outside
-- an explicit transaction (autocommit), it is one statement: BEGIN and COMMIT cost no round trip
-- and the wallet's row lock is held only from the lock to the commit, not across network waits.
-- The deferred zero-sum trigger of 0006 still checks every transaction at COMMIT.
--
-- Each statement is a single-row look-up by primary or unique key, so its cached (generic) plan
-- is an index scan whatever the parameters.

-- The wallet rules for a change of `posted` by p_posted on a locked balance row (see checkWallet
-- in src/ledger/balances.ts, which places holds with the same rules): a restricted wallet takes
-- nothing; posted + incoming holds may not rise above the limit; available (posted − outgoing
-- holds) may not fall below zero. Returns (error code, headroom or available), or nulls.
CREATE FUNCTION seigo_ledger_check_wallet(
  p_posted bigint, b_posted bigint, b_pending_in bigint, b_pending_out bigint, p_limit bigint, p_restricted boolean,
  OUT error text, OUT amount bigint)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF p_restricted AND p_posted <> 0 THEN
    error := 'account_restricted';
  ELSIF p_posted > 0 AND p_posted > greatest(p_limit - b_posted - b_pending_in, 0) THEN
    error := 'balance_limit_exceeded';
    amount := greatest(p_limit - b_posted - b_pending_in, 0);
  ELSIF p_posted < 0 AND b_posted - b_pending_out + p_posted < 0 THEN
    error := 'insufficient_funds';
    amount := greatest(b_posted - b_pending_out, 0);
  END IF;
END $$;

-- One posting: entries (p_accounts[i], p_amounts[i]). Result: (transaction_id, duplicate) on
-- success or replay; otherwise error = 'account_not_found' (detail: the ids), 'unbalanced'
-- (detail: the currency, amount: its sum), or a wallet refusal ('balance_limit_exceeded' with
-- amount = headroom, 'insufficient_funds' with amount = available, 'account_restricted') for
-- account_id, the first refused account in entry order. Nothing is written unless it succeeds.
CREATE FUNCTION seigo_ledger_post(
  p_id uuid, p_key text, p_kind text, p_description text, p_metadata jsonb, p_reverses uuid,
  p_accounts uuid[], p_amounts bigint[], p_default_limit bigint, p_enforce boolean)
RETURNS TABLE (transaction_id uuid, duplicate boolean, error text, account_id uuid, amount bigint, detail text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  ids uuid[];        -- distinct accounts, in lock order
  nets bigint[];     -- their net change
  firsts int[];      -- where each first appears among the entries
  shards int[];
  currencies text[];
  kinds text[];
  owners text[];
  missing uuid[];
  acc record;
  bal record;
  chk record;
  v_shard int;
  v_limit bigint;
  v_restricted boolean;
  v_existing uuid;
  v_cur text;
  v_sum bigint;
  err_pos int := 2147483647;
  err_code text;
  err_account uuid;
  err_amount bigint;
BEGIN
  IF cardinality(p_accounts) IS DISTINCT FROM cardinality(p_amounts) THEN
    RAISE EXCEPTION 'seigo_ledger_post: % accounts but % amounts', cardinality(p_accounts), cardinality(p_amounts);
  END IF;
  SELECT t.id INTO v_existing FROM ledger_transactions t WHERE t.idempotency_key = p_key;
  IF FOUND THEN
    RETURN QUERY SELECT v_existing, true, NULL::text, NULL::uuid, NULL::bigint, NULL::text;
    RETURN;
  END IF;

  SELECT array_agg(e.acc ORDER BY e.acc), array_agg(e.net ORDER BY e.acc), array_agg(e.pos ORDER BY e.acc)
    INTO ids, nets, firsts
  FROM (SELECT u.acc, sum(u.amt)::bigint AS net, min(u.pos)::int AS pos
        FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS u(acc, amt, pos) GROUP BY u.acc) e;

  -- The accounts (no lock: kind, owner, currency and shards never change).
  shards := array_fill(0, ARRAY[cardinality(ids)]);
  currencies := array_fill(NULL::text, ARRAY[cardinality(ids)]);
  kinds := currencies;
  owners := currencies;
  FOR i IN 1 .. cardinality(ids) LOOP
    SELECT a.kind, a.owner, a.currency, a.shards INTO acc FROM ledger_accounts a WHERE a.id = ids[i];
    IF NOT FOUND THEN
      missing := missing || ids[i];
    ELSE
      currencies[i] := acc.currency;
      kinds[i] := acc.kind;
      owners[i] := acc.owner;
      -- A hot account's shard is picked at random; a wallet has one row.
      shards[i] := CASE WHEN acc.shards = 1 THEN 0 ELSE floor(random() * acc.shards)::int END;
    END IF;
  END LOOP;
  IF missing IS NOT NULL THEN
    RETURN QUERY SELECT NULL::uuid, false, 'account_not_found', NULL::uuid, NULL::bigint,
      (SELECT string_agg(m::text, ', ' ORDER BY f) FROM unnest(missing) AS m JOIN unnest(ids, firsts) AS x(id, f) ON x.id = m);
    RETURN;
  END IF;

  -- Entries must balance per currency (checked again by the deferred trigger at COMMIT).
  SELECT c.cur, c.total INTO v_cur, v_sum
  FROM (SELECT x.cur, sum(x.net) AS total, min(x.f) AS f FROM unnest(currencies, nets, firsts) AS x(cur, net, f) GROUP BY x.cur) c
  WHERE c.total <> 0 ORDER BY c.f LIMIT 1;
  IF FOUND THEN
    RETURN QUERY SELECT NULL::uuid, false, 'unbalanced', NULL::uuid, v_sum, v_cur;
    RETURN;
  END IF;

  -- Lock the balance rows in (account id, shard) order, checking each wallet under its lock.
  FOR i IN 1 .. cardinality(ids) LOOP
    v_shard := shards[i];
    SELECT b.posted, b.pending_in, b.pending_out INTO bal
    FROM ledger_balances b WHERE b.account_id = ids[i] AND b.shard = v_shard FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'ledger account % has no balance row %', ids[i], v_shard;
    END IF;
    IF p_enforce AND kinds[i] = 'wallet' THEN
      -- Read under the wallet's lock, as every writer of this wallet reads them.
      SELECT l."limit" INTO v_limit FROM ledger_limits l WHERE l.owner = owners[i] AND l.currency = currencies[i];
      IF NOT FOUND THEN v_limit := p_default_limit; END IF;
      v_restricted := EXISTS (SELECT 1 FROM ledger_restrictions r WHERE r.owner = owners[i]);
      SELECT * INTO chk FROM seigo_ledger_check_wallet(nets[i], bal.posted, bal.pending_in, bal.pending_out, v_limit, v_restricted);
      IF chk.error IS NOT NULL AND firsts[i] < err_pos THEN
        err_pos := firsts[i];
        err_code := chk.error;
        err_account := ids[i];
        err_amount := chk.amount;
      END IF;
    END IF;
  END LOOP;
  IF err_code IS NOT NULL THEN
    -- A concurrent call with the same key may have committed while we waited for the locks.
    SELECT t.id INTO v_existing FROM ledger_transactions t WHERE t.idempotency_key = p_key;
    IF FOUND THEN
      RETURN QUERY SELECT v_existing, true, NULL::text, NULL::uuid, NULL::bigint, NULL::text;
    ELSE
      RETURN QUERY SELECT NULL::uuid, false, err_code, err_account, err_amount, NULL::text;
    END IF;
    RETURN;
  END IF;

  INSERT INTO ledger_transactions (id, idempotency_key, kind, description, metadata, reverses)
  VALUES (p_id, p_key, p_kind, p_description, p_metadata, p_reverses)
  ON CONFLICT (idempotency_key) DO NOTHING;
  IF NOT FOUND THEN
    -- The key was committed by a concurrent caller after our first look.
    SELECT t.id INTO v_existing FROM ledger_transactions t WHERE t.idempotency_key = p_key;
    RETURN QUERY SELECT v_existing, true, NULL::text, NULL::uuid, NULL::bigint, NULL::text;
    RETURN;
  END IF;
  INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
  SELECT p_id, u.acc, x.cur, u.amt
  FROM unnest(p_accounts, p_amounts) WITH ORDINALITY AS u(acc, amt, pos)
  JOIN unnest(ids, currencies) AS x(id, cur) ON x.id = u.acc
  ORDER BY u.pos;
  FOR i IN 1 .. cardinality(ids) LOOP
    IF nets[i] <> 0 THEN
      v_shard := shards[i];
      UPDATE ledger_balances b SET posted = b.posted + nets[i], updated_at = now()
      WHERE b.account_id = ids[i] AND b.shard = v_shard;
    END IF;
  END LOOP;
  RETURN QUERY SELECT p_id, false, NULL::text, NULL::uuid, NULL::bigint, NULL::text;
END $$;

-- A deposit already posted, as seigo_ledger_credit_deposit returns it (read from its entries).
CREATE FUNCTION seigo_ledger_deposit_outcome(p_tx uuid, p_wallet uuid, p_escrow uuid, p_suspense uuid)
RETURNS TABLE (transaction_id uuid, duplicate boolean, credited bigint, escrowed bigint, suspended bigint,
               wallet_id uuid, error text, amount bigint, detail text)
LANGUAGE sql STABLE AS $$
  SELECT p_tx, true,
         coalesce(sum(e.amount) FILTER (WHERE e.account_id = p_wallet), 0)::bigint,
         coalesce(sum(e.amount) FILTER (WHERE e.account_id = p_escrow), 0)::bigint,
         coalesce(sum(e.amount) FILTER (WHERE e.account_id = p_suspense), 0)::bigint,
         p_wallet, NULL::text, NULL::bigint, NULL::text
  FROM ledger_entries e WHERE e.transaction_id = p_tx
$$;

-- One deposit credited to p_owner's wallet from p_source (see src/ledger/credit-deposit.ts): the
-- user's wallet, escrow and suspense accounts are created if missing (ids from p_new_ids); a
-- restricted user's deposit goes to suspense; over the limit, a refusable deposit is refused
-- (error 'balance_limit_exceeded', amount = headroom) and an unrefusable one credits up to the
-- limit and escrows the rest. A replayed key returns the first outcome with duplicate = true.
-- Other errors: 'account_not_found' (the source), 'currency_mismatch' (detail: the source's).
CREATE FUNCTION seigo_ledger_credit_deposit(
  p_id uuid, p_key text, p_owner text, p_currency text, p_amount bigint, p_source uuid, p_mode text,
  p_description text, p_metadata jsonb, p_default_limit bigint, p_new_ids uuid[])
RETURNS TABLE (transaction_id uuid, duplicate boolean, credited bigint, escrowed bigint, suspended bigint,
               wallet_id uuid, error text, amount bigint, detail text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_wallet uuid;
  v_escrow uuid;
  v_suspense uuid;
  v_existing uuid;
  v_src_currency text;
  v_src_shards int;
  v_src_shard int;
  r record;
  v_found boolean := false;
  v_posted bigint;
  v_pending_in bigint;
  v_limit bigint;
  v_restricted boolean;
  v_room bigint;
  v_credited bigint := 0;
  v_escrowed bigint := 0;
  v_suspended bigint := 0;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'a deposit amount must be positive';
  END IF;
  -- The user's accounts (created on first use: a concurrent creation ends as one account), the
  -- idempotency key and the source, in one look-up.
  FOR pass IN 1 .. 2 LOOP
    SELECT u.wallet, u.escrow, u.suspense, k.id, s.currency, s.shards
      INTO v_wallet, v_escrow, v_suspense, v_existing, v_src_currency, v_src_shards
    FROM (SELECT max(a.id::text) FILTER (WHERE a.kind = 'wallet')::uuid AS wallet,
                 max(a.id::text) FILTER (WHERE a.kind = 'escrow')::uuid AS escrow,
                 max(a.id::text) FILTER (WHERE a.kind = 'suspense')::uuid AS suspense
          FROM ledger_accounts a WHERE a.kind IN ('wallet', 'escrow', 'suspense') AND a.owner = p_owner AND a.currency = p_currency) u
    LEFT JOIN ledger_transactions k ON k.idempotency_key = p_key
    LEFT JOIN ledger_accounts s ON s.id = p_source;
    EXIT WHEN v_wallet IS NOT NULL AND v_escrow IS NOT NULL AND v_suspense IS NOT NULL;
    IF pass = 2 THEN
      RAISE EXCEPTION 'ledger accounts of % in % could not be created', p_owner, p_currency;
    END IF;
    WITH ins AS (
      INSERT INTO ledger_accounts (id, kind, owner, currency, shards)
      SELECT n.id, n.kind, p_owner, p_currency, 1 FROM unnest(p_new_ids, ARRAY['wallet', 'escrow', 'suspense']) AS n(id, kind)
      ON CONFLICT (kind, owner, currency) DO NOTHING
      RETURNING id, currency
    )
    INSERT INTO ledger_balances (account_id, shard, currency) SELECT ins.id, 0, ins.currency FROM ins;
  END LOOP;

  IF v_existing IS NOT NULL THEN
    RETURN QUERY SELECT * FROM seigo_ledger_deposit_outcome(v_existing, v_wallet, v_escrow, v_suspense);
    RETURN;
  END IF;
  IF v_src_currency IS NULL THEN
    RETURN QUERY SELECT NULL::uuid, false, 0::bigint, 0::bigint, 0::bigint, v_wallet, 'account_not_found', NULL::bigint, p_source::text;
    RETURN;
  END IF;
  IF v_src_currency <> p_currency THEN
    RETURN QUERY SELECT NULL::uuid, false, 0::bigint, 0::bigint, 0::bigint, v_wallet, 'currency_mismatch', NULL::bigint, v_src_currency;
    RETURN;
  END IF;
  v_src_shard := CASE WHEN v_src_shards = 1 THEN 0 ELSE floor(random() * v_src_shards)::int END;

  -- The balance rows, locked in (account id, shard) order as every other writer takes them, with
  -- the wallet's limit and restriction read under its lock.
  FOR r IN
    SELECT b.account_id, b.posted, b.pending_in, l."limit" AS lim, (x.owner IS NOT NULL) AS restricted
    FROM ledger_balances b
    LEFT JOIN ledger_limits l ON b.account_id = v_wallet AND l.owner = p_owner AND l.currency = p_currency
    LEFT JOIN ledger_restrictions x ON b.account_id = v_wallet AND x.owner = p_owner
    WHERE (b.account_id = v_wallet AND b.shard = 0) OR (b.account_id = v_escrow AND b.shard = 0)
       OR (b.account_id = v_suspense AND b.shard = 0) OR (b.account_id = p_source AND b.shard = v_src_shard)
    ORDER BY b.account_id, b.shard
    FOR UPDATE OF b
  LOOP
    IF r.account_id = v_wallet THEN
      v_found := true;
      v_posted := r.posted;
      v_pending_in := r.pending_in;
      v_limit := coalesce(r.lim, p_default_limit);
      v_restricted := r.restricted;
    END IF;
  END LOOP;
  IF NOT v_found THEN
    RAISE EXCEPTION 'ledger wallet % has no balance row', v_wallet;
  END IF;

  IF v_restricted THEN
    v_suspended := p_amount;
  ELSE
    v_room := greatest(v_limit - v_posted - v_pending_in, 0);
    IF p_amount <= v_room THEN
      v_credited := p_amount;
    ELSIF p_mode = 'refusable' THEN
      -- A concurrent call with the same key may have committed while we waited for the locks.
      SELECT t.id INTO v_existing FROM ledger_transactions t WHERE t.idempotency_key = p_key;
      IF FOUND THEN
        RETURN QUERY SELECT * FROM seigo_ledger_deposit_outcome(v_existing, v_wallet, v_escrow, v_suspense);
      ELSE
        RETURN QUERY SELECT NULL::uuid, false, 0::bigint, 0::bigint, 0::bigint, v_wallet, 'balance_limit_exceeded', v_room, NULL::text;
      END IF;
      RETURN;
    ELSE
      v_credited := v_room;
      v_escrowed := p_amount - v_room;
    END IF;
  END IF;

  INSERT INTO ledger_transactions (id, idempotency_key, kind, description, metadata)
  VALUES (p_id, p_key, 'deposit', p_description,
          coalesce(p_metadata, '{}') || jsonb_build_object('owner', p_owner, 'mode', p_mode,
            'credited', v_credited::text, 'escrowed', v_escrowed::text, 'suspended', v_suspended::text))
  ON CONFLICT (idempotency_key) DO NOTHING;
  IF NOT FOUND THEN
    -- The key was committed by a concurrent caller after our first look.
    SELECT t.id INTO v_existing FROM ledger_transactions t WHERE t.idempotency_key = p_key;
    RETURN QUERY SELECT * FROM seigo_ledger_deposit_outcome(v_existing, v_wallet, v_escrow, v_suspense);
    RETURN;
  END IF;
  INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
  SELECT p_id, e.id, p_currency, e.amt
  FROM unnest(ARRAY[p_source, v_wallet, v_escrow, v_suspense], ARRAY[-p_amount, v_credited, v_escrowed, v_suspended]) WITH ORDINALITY AS e(id, amt, pos)
  WHERE e.amt <> 0 ORDER BY e.pos;
  -- One UPDATE may change a row only once: changes are summed per row.
  UPDATE ledger_balances b SET posted = b.posted + d.delta, updated_at = now()
  FROM (SELECT u.id, u.shard, sum(u.delta)::bigint AS delta
        FROM unnest(ARRAY[p_source, v_wallet, v_escrow, v_suspense], ARRAY[v_src_shard, 0, 0, 0], ARRAY[-p_amount, v_credited, v_escrowed, v_suspended]) AS u(id, shard, delta)
        WHERE u.delta <> 0 GROUP BY u.id, u.shard) d
  WHERE b.account_id = d.id AND b.shard = d.shard;
  RETURN QUERY SELECT p_id, false, v_credited, v_escrowed, v_suspended, v_wallet, NULL::text, NULL::bigint, NULL::text;
END $$;
