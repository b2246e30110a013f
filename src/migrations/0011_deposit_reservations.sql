-- Reservation deposits (konbini, Pay-easy; seed 001 事前予約型, MISSION D2/C2/C3): new statuses and
-- the columns the reservation flow keeps. See src/deposits/reservation.ts.
ALTER TABLE deposits DROP CONSTRAINT deposits_status_check;
ALTER TABLE deposits ADD CONSTRAINT deposits_status_check CHECK (status IN (
  'pending', 'processing', 'succeeded', 'failed', 'unknown', 'awaiting_payment', 'paid_preliminary', 'expired', 'cancelled'));

ALTER TABLE deposits
  -- The incoming ledger hold that makes a pending reservation count toward the limit (C2); NULL
  -- once released (paid, expired, failed) or for deposits without one.
  ADD COLUMN hold_id uuid,
  ADD COLUMN payment_deadline timestamptz,
  -- What the customer needs to pay: konbini receipt / confirmation code, Pay-easy numbers.
  ADD COLUMN payment_instructions jsonb,
  -- Which paid notice credited the wallet (NULL: not credited now).
  ADD COLUMN credited_at_notice text CHECK (credited_at_notice IN ('preliminary', 'final')),
  -- Bumped by each reversal of a preliminary credit, so a later credit has a fresh ledger key.
  ADD COLUMN credit_attempt integer NOT NULL DEFAULT 0 CHECK (credit_attempt >= 0),
  -- 速報取消 notices that arrived before their 速報 (reordered): the next 速報 is absorbed by one.
  ADD COLUMN early_preliminary_cancels integer NOT NULL DEFAULT 0 CHECK (early_preliminary_cancels >= 0),
  -- The final notice came after the payment deadline (paid after expiry).
  ADD COLUMN paid_after_deadline boolean NOT NULL DEFAULT false,
  -- What a reversed preliminary credit took the wallet below zero by (the user had spent it).
  ADD COLUMN shortfall bigint NOT NULL DEFAULT 0 CHECK (shortfall >= 0);
