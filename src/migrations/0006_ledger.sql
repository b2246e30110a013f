-- The ledger: double-entry, immutable, balanced postings in integer minor units. The database
-- itself refuses an unbalanced transaction (deferred constraint trigger, checked at COMMIT) and any
-- change to a posted entry, so no code path (or psql session) can break the books.

-- One account per (kind, owner, currency): a wallet per user, a clearing account per provider,
-- escrow / suspense per user, refunds payable, fees and revenue for the platform.
-- A hot system account (a provider's clearing account takes a posting for every deposit) keeps
-- its balance in several rows ("shards") so that concurrent postings do not queue on one row lock;
-- its balance is the sum of its shard rows. Wallets have exactly one row: their limit is checked
-- under its lock.
CREATE TABLE ledger_accounts (
  id          uuid PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('wallet', 'clearing', 'escrow', 'suspense', 'refunds_payable', 'fees', 'revenue')),
  owner       text NOT NULL,
  currency    text NOT NULL DEFAULT 'JPY' CHECK (currency ~ '^[A-Z]{3}$'),
  shards      smallint NOT NULL DEFAULT 1 CHECK (shards BETWEEN 1 AND 256 AND (kind <> 'wallet' OR shards = 1)),
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ledger_accounts_kind_owner_currency UNIQUE (kind, owner, currency),
  -- Lets an entry's currency be checked against its account's by a foreign key.
  CONSTRAINT ledger_accounts_id_currency UNIQUE (id, currency)
);

CREATE TABLE ledger_transactions (
  id               uuid PRIMARY KEY,
  idempotency_key  text NOT NULL CONSTRAINT ledger_transactions_idempotency_key UNIQUE,
  kind             text NOT NULL DEFAULT 'posting',
  description      text,
  metadata         jsonb NOT NULL DEFAULT '{}',
  -- A correction is a new transaction that names the one it reverses.
  reverses         uuid REFERENCES ledger_transactions (id),
  created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger_entries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  transaction_id  uuid NOT NULL REFERENCES ledger_transactions (id),
  account_id      uuid NOT NULL,
  currency        text NOT NULL,
  -- Positive = credit to the account's balance, negative = debit.
  amount          bigint NOT NULL CHECK (amount <> 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (account_id, currency) REFERENCES ledger_accounts (id, currency)
);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);

-- Balances, kept in the same transaction as the entries. available = posted - pending_out.
CREATE TABLE ledger_balances (
  account_id   uuid NOT NULL REFERENCES ledger_accounts (id),
  shard        smallint NOT NULL DEFAULT 0,
  currency     text NOT NULL,
  posted       bigint NOT NULL DEFAULT 0,
  pending_in   bigint NOT NULL DEFAULT 0 CHECK (pending_in >= 0),
  pending_out  bigint NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, shard)
);

-- One row per account, shards summed: what operators and reports read.
CREATE VIEW ledger_account_balances AS
SELECT account_id, currency, sum(posted)::bigint AS posted, sum(pending_in)::bigint AS pending_in,
       sum(pending_out)::bigint AS pending_out, (sum(posted) - sum(pending_out))::bigint AS available
FROM ledger_balances GROUP BY account_id, currency;

-- Holds: money reserved on an account before it moves. Incoming (a konbini reservation waiting
-- for payment: counts toward the wallet's limit) or outgoing (reduces what is available).
-- A state machine: active -> captured | released | expired (see src/ledger/holds.ts).
CREATE TABLE ledger_holds (
  id                  uuid PRIMARY KEY,
  idempotency_key     text NOT NULL CONSTRAINT ledger_holds_idempotency_key UNIQUE,
  account_id          uuid NOT NULL REFERENCES ledger_accounts (id),
  shard               smallint NOT NULL DEFAULT 0,
  -- The other side of the posting made on capture.
  counter_account_id  uuid NOT NULL REFERENCES ledger_accounts (id),
  direction           text NOT NULL CHECK (direction IN ('in', 'out')),
  currency            text NOT NULL,
  amount              bigint NOT NULL CHECK (amount > 0),
  status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'captured', 'released', 'expired')),
  expires_at          timestamptz,
  -- Set when captured, in the same statement that moves the status: the posting follows it.
  transaction_id      uuid REFERENCES ledger_transactions (id) DEFERRABLE INITIALLY DEFERRED,
  created_at          timestamptz NOT NULL DEFAULT now(),
  closed_at           timestamptz,
  CHECK ((status = 'captured') = (transaction_id IS NOT NULL))
);
CREATE INDEX ledger_holds_expiry ON ledger_holds (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
CREATE INDEX ledger_holds_account ON ledger_holds (account_id, created_at);

CREATE TABLE ledger_hold_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  hold_id      uuid NOT NULL REFERENCES ledger_holds (id),
  at           timestamptz NOT NULL DEFAULT now(),
  from_status  text,
  to_status    text NOT NULL,
  cause        text NOT NULL
);
CREATE INDEX ledger_hold_events_hold ON ledger_hold_events (hold_id, id);

-- Per-user balance limit overriding the configured default (¥1,000,000 unless configured).
CREATE TABLE ledger_limits (
  owner       text NOT NULL,
  currency    text NOT NULL DEFAULT 'JPY',
  "limit"     bigint NOT NULL CHECK ("limit" >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner, currency)
);

-- Restricted (frozen) users: their deposits go to suspense.
CREATE TABLE ledger_restrictions (
  owner       text PRIMARY KEY,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- At COMMIT: every ledger transaction has at least two entries and sums to zero per currency.
-- Fired for the transaction row too, so a transaction with no entries at all is refused.
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  txid uuid;
  n int;
  unbalanced text;
BEGIN
  IF TG_TABLE_NAME = 'ledger_transactions' THEN
    txid := NEW.id;
  ELSE
    txid := NEW.transaction_id;
  END IF;
  SELECT count(*) INTO n FROM ledger_entries WHERE transaction_id = txid;
  IF n < 2 THEN
    RAISE EXCEPTION 'ledger transaction % has % entries; at least 2 are required', txid, n
      USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
  END IF;
  SELECT string_agg(currency || ' ' || total, ', ') INTO unbalanced
  FROM (SELECT currency, sum(amount) AS total FROM ledger_entries WHERE transaction_id = txid GROUP BY currency HAVING sum(amount) <> 0) s;
  IF unbalanced IS NOT NULL THEN
    RAISE EXCEPTION 'ledger transaction % does not balance: %', txid, unbalanced
      USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transaction_balanced';
  END IF;
  RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();

-- Postings are facts: never updated or deleted. Corrections are new (reversing) transactions.
CREATE FUNCTION ledger_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% on % is not allowed: ledger postings are immutable; post a reversal instead', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_immutable();
