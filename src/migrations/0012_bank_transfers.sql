-- Bank-transfer deposits (seed 001 銀行振込, MISSION D3): per-user virtual accounts, and one row
-- per incoming transfer from the bank's Zengin transfer-notice file, keyed by the transfer's
-- external id so that importing the same file again changes nothing.

-- Virtual account numbers come from this sequence through a bijection on 0..9999999
-- (n * 7919 mod 10^7; 7919 is coprime to 10), so they never collide, yet neighbouring users do not
-- get neighbouring numbers (a one-digit typo in a payer's entry rarely lands on the next user; the
-- payer-name check catches the rest).
CREATE SEQUENCE virtual_account_seq MINVALUE 1 MAXVALUE 9999999 NO CYCLE;

CREATE TABLE virtual_accounts (
  account_number        text PRIMARY KEY CHECK (account_number ~ '^[0-9]{7}$'),
  bank_code             text NOT NULL CHECK (bank_code ~ '^[0-9]{4}$'),
  branch_code           text NOT NULL CHECK (branch_code ~ '^[0-9]{3}$'),
  user_id               text NOT NULL UNIQUE CHECK (length(user_id) BETWEEN 1 AND 255),
  registered_name_kana  text NOT NULL CHECK (length(registered_name_kana) BETWEEN 1 AND 200),
  created_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bank_transfers (
  external_id            text PRIMARY KEY,
  account_number         text NOT NULL,
  amount                 bigint NOT NULL CHECK (amount >= 0),
  currency               text NOT NULL DEFAULT 'JPY',
  payer_name             text NOT NULL,
  transaction_date       date,
  -- credited: booked to the user (wallet and/or escrow); suspense: some or all of it sits in a
  -- suspense account (unmatched, or the user is restricted) waiting for an operator.
  status                 text NOT NULL CHECK (status IN ('credited', 'suspense')),
  -- unknown_account | name_mismatch | account_restricted | zero_amount, or NULL.
  reason                 text,
  user_id                text,
  credited               bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),
  escrowed               bigint NOT NULL DEFAULT 0 CHECK (escrowed >= 0),
  suspended              bigint NOT NULL DEFAULT 0 CHECK (suspended >= 0),
  ledger_transaction_id  uuid,
  received_at            timestamptz NOT NULL DEFAULT now(),
  -- Every yen is somewhere: the user's wallet, their escrow, or a suspense account.
  CONSTRAINT bank_transfers_booked CHECK (credited + escrowed + suspended = amount),
  CONSTRAINT bank_transfers_reason CHECK (status = 'credited' OR reason IS NOT NULL)
);
CREATE INDEX bank_transfers_status_received ON bank_transfers (status, received_at DESC, external_id);
CREATE INDEX bank_transfers_user ON bank_transfers (user_id, received_at DESC) WHERE user_id IS NOT NULL;
