-- Points (src/points): a consumer of card.* messages. Points are ledger postings in their own
-- asset ('PTS'): a user's confirmed points, their provisional points (not spendable), and the
-- platform's issuing account on the other side of every posting.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN (
  'wallet', 'clearing', 'escrow', 'suspense', 'refunds_payable', 'fees', 'revenue', 'deferred_revenue', 'points', 'points_provisional', 'points_issued'));

-- Every card event points has seen, once (the network's event id): a purchase's state is computed
-- from the set of its events, so their order and repetition cannot change it.
CREATE TABLE points_card_events (
  event_key     text PRIMARY KEY,
  purchase_key  text NOT NULL,
  topic         text NOT NULL CHECK (topic IN ('card.authorized', 'card.reversed', 'card.expired', 'card.cleared', 'card.refunded')),
  amount_jpy    bigint NOT NULL CHECK (amount_jpy >= 0),
  received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_card_events_purchase ON points_card_events (purchase_key);

-- One row per purchase (an authorization, or a clearing that came without one): what is posted so far.
CREATE TABLE points_purchases (
  purchase_key       text PRIMARY KEY,
  user_id            text NOT NULL,
  merchant_category  text NOT NULL,
  rule               text NOT NULL,
  rate_bp            int NOT NULL CHECK (rate_bp >= 0),
  provisional        bigint NOT NULL DEFAULT 0 CHECK (provisional >= 0),
  confirmed          bigint NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
  version            int NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_purchases_user ON points_purchases (user_id);

-- Confirmed points in lots that expire; spending takes the oldest first.
CREATE TABLE points_lots (
  id            uuid PRIMARY KEY,
  user_id       text NOT NULL,
  purchase_key  text NOT NULL REFERENCES points_purchases (purchase_key),
  amount        bigint NOT NULL CHECK (amount > 0),
  remaining     bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  confirmed_at  timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL
);
CREATE INDEX points_lots_user_open ON points_lots (user_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX points_lots_expiring ON points_lots (expires_at) WHERE remaining > 0;

-- Why each change happened: award (with its rule), spend, expiry, clawback.
CREATE TABLE points_history (
  id              uuid PRIMARY KEY,
  user_id         text NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('award', 'spend', 'expiry')),
  purchase_key    text,
  rule            text,
  provisional     bigint NOT NULL DEFAULT 0,
  confirmed       bigint NOT NULL DEFAULT 0,
  transaction_id  uuid NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX points_history_user ON points_history (user_id, created_at DESC);
