-- Bank-transfer deposits asked for in advance (POST /v1/deposits, method bank_transfer): the user
-- is told where to transfer and until when, a hold counts toward the limit, and the first incoming
-- transfer to their virtual account for that amount pays it. See src/deposits/bank-transfer-deposit.ts
-- and importTransfer in bank-transfer.ts.

-- The deposit a transfer paid (NULL: a transfer nobody announced, booked on its own). A deposit is
-- paid by one transfer at most, whatever races between imports.
ALTER TABLE bank_transfers ADD COLUMN deposit_id uuid REFERENCES deposits (id);
CREATE UNIQUE INDEX bank_transfers_deposit ON bank_transfers (deposit_id) WHERE deposit_id IS NOT NULL;

-- What an incoming transfer looks for: the user's awaiting deposits of its amount, oldest first.
CREATE INDEX deposits_bank_transfer_awaiting ON deposits (user_id, currency, amount, created_at, id)
  WHERE method = 'bank_transfer' AND status = 'awaiting_payment';
-- What the expiry job looks for: awaiting ones past their deadline.
CREATE INDEX deposits_bank_transfer_deadline ON deposits (payment_deadline)
  WHERE method = 'bank_transfer' AND status = 'awaiting_payment';
