-- Tickets: issued by partners for a product and a day, each with a QR token signed
-- by seigo (Ed25519), redeemed exactly once online or offline at a gate; every scan a gate reports
-- is kept, conflicts open cases, and sales, refunds and redemptions are posted to the ledger by a
-- worker (the partner role never touches the ledger or cases).

ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
  CHECK (kind IN ('wallet', 'clearing', 'escrow', 'suspense', 'refunds_payable', 'fees', 'revenue', 'deferred_revenue'));
ALTER TABLE cases DROP CONSTRAINT cases_subject_type_check;
ALTER TABLE cases ADD CONSTRAINT cases_subject_type_check CHECK (subject_type IN (
  'deposit', 'operation', 'delivery', 'inbox', 'recon_break', 'ledger_account', 'ledger_transaction', 'bank_transfer', 'saga', 'iap_subscription', 'ticket'));

-- One Ed25519 key per UTC day signs that day's tickets; gates get the public halves (the manifest).
-- The private half is never granted to the partner role: the engine signs with its own connection.
CREATE TABLE ticket_signing_keys (
  kid             text PRIMARY KEY CHECK (kid ~ '^tk-[0-9]{8}$'),
  private_pkcs8   bytea NOT NULL,
  public_jwk      jsonb NOT NULL,
  signs_from      timestamptz NOT NULL,
  signs_until     timestamptz NOT NULL,
  verifies_until  timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tickets (
  id                  uuid PRIMARY KEY,
  partner_id          uuid NOT NULL REFERENCES partners (id),
  product_id          uuid NOT NULL REFERENCES partner_products (id),
  facility            text NOT NULL,
  issue_id            uuid NOT NULL,
  valid_from          timestamptz NOT NULL,
  valid_until         timestamptz NOT NULL CHECK (valid_until > valid_from),
  price               bigint NOT NULL CHECK (price >= 0),
  currency            text NOT NULL,
  qr                  text NOT NULL,
  status              text NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'redeemed', 'cancelled', 'refunded')),
  -- The redemption that counts: the earliest by gate time once offline uploads are in.
  redemption_id       uuid,
  redeemed_gate       uuid REFERENCES partner_gates (id),
  redeemed_gate_time  timestamptz,
  redeemed_at         timestamptz,
  closed_at           timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'redeemed') = (redemption_id IS NOT NULL AND redeemed_gate IS NOT NULL AND redeemed_gate_time IS NOT NULL))
);
CREATE INDEX tickets_partner ON tickets (partner_id, created_at);
CREATE INDEX tickets_revoked ON tickets (partner_id, facility, valid_from) WHERE status IN ('cancelled', 'refunded');

-- Every transition with its cause; `posting` names what the ledger worker must post for it.
CREATE TABLE ticket_events (
  id           uuid PRIMARY KEY,
  ticket_id    uuid NOT NULL REFERENCES tickets (id),
  partner_id   uuid NOT NULL,
  from_status  text,
  to_status    text NOT NULL,
  cause        text NOT NULL,
  posting      text CHECK (posting IN ('sold', 'redeemed', 'refunded')),
  posted_at    timestamptz,
  ledger_transaction_id uuid,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id);
CREATE INDEX ticket_events_unposted ON ticket_events (id) WHERE posting IS NOT NULL AND posted_at IS NULL;

-- Every redemption a gate reported, online or uploaded: none is ever dropped.
CREATE TABLE ticket_redemptions (
  id           uuid PRIMARY KEY,
  partner_id   uuid NOT NULL,
  ticket_id    uuid NOT NULL,
  gate_id      uuid NOT NULL REFERENCES partner_gates (id),
  gate_time    timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  source       text NOT NULL CHECK (source IN ('online', 'offline')),
  batch_id     text,
  scan_index   integer,
  outcome      text NOT NULL CHECK (outcome IN ('accepted', 'conflict', 'duplicate', 'rejected')),
  reason       text
);
CREATE INDEX ticket_redemptions_ticket ON ticket_redemptions (ticket_id);

-- Two gates redeemed one ticket (or one was redeemed after its refund): a case each.
CREATE TABLE ticket_conflicts (
  id                   uuid PRIMARY KEY,
  partner_id           uuid NOT NULL,
  ticket_id            uuid NOT NULL REFERENCES tickets (id),
  cause                text NOT NULL CHECK (cause IN ('ticket_double_redemption', 'ticket_redeemed_after_refund')),
  winner_redemption_id uuid,
  loser_redemption_id  uuid NOT NULL,
  case_id              uuid,
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ticket_conflicts_open ON ticket_conflicts (id) WHERE case_id IS NULL;

-- Offline uploads, idempotent per (gate, batch id): a repeat gets the first answer.
CREATE TABLE gate_sync_batches (
  gate_id       uuid NOT NULL REFERENCES partner_gates (id),
  batch_id      text NOT NULL CHECK (length(batch_id) BETWEEN 1 AND 200),
  partner_id    uuid NOT NULL,
  request_hash  text NOT NULL,
  result        jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (gate_id, batch_id)
);

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tickets', 'ticket_events', 'ticket_redemptions', 'ticket_conflicts', 'gate_sync_batches'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY engine_all ON %I USING (current_user <> 'seigo_partner')$p$, t);
    EXECUTE format('CREATE POLICY partner_own ON %I TO seigo_partner USING (partner_id = seigo_current_partner())', t);
  END LOOP;
END $$;
GRANT SELECT, INSERT, UPDATE ON tickets, ticket_redemptions TO seigo_partner;
GRANT SELECT, INSERT ON ticket_events, ticket_conflicts TO seigo_partner;
GRANT SELECT, INSERT, UPDATE ON gate_sync_batches TO seigo_partner;
GRANT SELECT (kid, public_jwk, signs_from, signs_until, verifies_until) ON ticket_signing_keys TO seigo_partner;
