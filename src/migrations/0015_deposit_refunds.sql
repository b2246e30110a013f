-- Refunds of escrowed money (seed 001: a paid notice that cannot be fully credited is booked, the
-- excess waits in escrow, "and a refund is started"; MISSION C3), the expiry inquiry of lost
-- reservations, and 取消 (cancellation) records of Zengin transfer-notice files.
-- See src/deposits/refunds.ts, expiry-sweep.ts and bank-transfer.ts.

-- The bank account a user registered (through the wallet's backend) for refunds. One per user;
-- `version` grows with each change, so a payout refused for one account is tried again only when
-- the account changes.
CREATE TABLE refund_accounts (
  user_id         text PRIMARY KEY CHECK (length(user_id) BETWEEN 1 AND 255),
  bank_code       text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),
  bank_name       text CHECK (length(bank_name) BETWEEN 1 AND 60),
  branch_code     text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
  branch_name     text CHECK (length(branch_name) BETWEEN 1 AND 60),
  account_type    text NOT NULL CHECK (account_type IN ('ordinary', 'checking', 'savings')),
  account_number  text NOT NULL CHECK (account_number ~ '^[0-9]{7}$'),
  -- 口座名義: half-width katakana as the bank holds it (validated in code: Zengin characters).
  holder_kana     text NOT NULL CHECK (length(holder_kana) BETWEEN 1 AND 30),
  version         integer NOT NULL DEFAULT 1,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One payout of one source's escrow: pending (recorded with its operation; escrow moved to refunds
-- payable) → sent (the provider took the request) → succeeded (paid; refunds payable cleared) |
-- failed (refused or rejected; the money went back to escrow).
CREATE TABLE deposit_refunds (
  id                  uuid PRIMARY KEY,
  user_id             text NOT NULL,
  -- Where the escrow came from: a deposit (card, konbini, Pay-easy) or a bank transfer (Zengin file).
  source_type         text NOT NULL CHECK (source_type IN ('deposit', 'bank_transfer')),
  source_id           text NOT NULL,
  -- komoju_refund_request: a refund request against the original KOMOJU payment;
  -- komoju_disbursement: a payout to the account through KOMOJU's disbursements.
  route               text NOT NULL CHECK (route IN ('komoju_refund_request', 'komoju_disbursement')),
  provider            text NOT NULL,
  currency            text NOT NULL DEFAULT 'JPY',
  -- Taken from escrow; what the user receives (amount − fee when the user bears the fee); the fee.
  amount              bigint NOT NULL CHECK (amount > 0),
  payout_amount       bigint NOT NULL CHECK (payout_amount > 0),
  fee                 bigint NOT NULL CHECK (fee >= 0),
  fee_payer           text NOT NULL CHECK (fee_payer IN ('platform', 'user')),
  status              text NOT NULL CHECK (status IN ('pending', 'sent', 'succeeded', 'failed')),
  account_version     integer NOT NULL,
  operation_id        uuid,
  provider_refund_id  text,
  failure_code        text,
  failure_message     text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CHECK (payout_amount <= amount)
);
-- At most one refund of a source at a time, and none after one succeeded.
CREATE UNIQUE INDEX deposit_refunds_one_live ON deposit_refunds (source_type, source_id) WHERE status <> 'failed';
CREATE INDEX deposit_refunds_user ON deposit_refunds (user_id, created_at DESC);
CREATE INDEX deposit_refunds_open ON deposit_refunds (status, updated_at) WHERE status IN ('pending', 'sent');
CREATE UNIQUE INDEX deposit_refunds_operation ON deposit_refunds (operation_id) WHERE operation_id IS NOT NULL;

CREATE TABLE deposit_refund_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  refund_id    uuid NOT NULL REFERENCES deposit_refunds (id),
  at           timestamptz NOT NULL DEFAULT now(),
  from_status  text,
  to_status    text NOT NULL,
  cause        text NOT NULL
);
CREATE INDEX deposit_refund_events_refund ON deposit_refund_events (refund_id, id);

-- Escrow that could not be refunded (no account registered, or less than the fee), reported once
-- per source and cause; cleared when a refund of the source starts.
CREATE TABLE escrow_reports (
  source_type  text NOT NULL,
  source_id    text NOT NULL,
  cause        text NOT NULL,
  user_id      text NOT NULL,
  amount       bigint NOT NULL,
  case_id      text,
  reported_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_type, source_id, cause)
);

-- The refund sweep looks for escrow to refund among these only.
CREATE INDEX deposits_escrowed ON deposits (user_id) WHERE escrowed > 0;
CREATE INDEX bank_transfers_escrowed ON bank_transfers (user_id) WHERE escrowed > 0;

-- The expiry sweep: reservations past their deadline that no expiry notice closed.
CREATE INDEX deposits_awaiting_deadline ON deposits (payment_deadline) WHERE status IN ('awaiting_payment', 'paid_preliminary');

-- 取消 records of transfer-notice files: a transfer they cancel is `cancelled` (its booking
-- reversed), the record itself a `cancellation`; a cancellation that names no known transfer is
-- kept as `unmatched_cancel` (booked against suspense) for an operator.
ALTER TABLE bank_transfers DROP CONSTRAINT bank_transfers_status_check;
ALTER TABLE bank_transfers ADD CONSTRAINT bank_transfers_status_check CHECK (status IN ('credited', 'suspense', 'cancelled', 'cancellation', 'unmatched_cancel'));
ALTER TABLE bank_transfers
  -- On a cancellation record: the transfer it cancelled. On a cancelled transfer: the cancellation.
  ADD COLUMN cancels text,
  ADD COLUMN cancelled_by text,
  -- How far the reversal took the wallet below zero (the user had spent the money).
  ADD COLUMN shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0);
ALTER TABLE bank_transfers DROP CONSTRAINT bank_transfers_booked;
ALTER TABLE bank_transfers ADD CONSTRAINT bank_transfers_booked CHECK (status IN ('cancelled', 'cancellation', 'unmatched_cancel') OR credited + escrowed + suspended = amount);
