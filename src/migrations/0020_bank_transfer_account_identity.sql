-- Issue 17: a bank transfer is matched on the whole credited account — bank code, branch code,
-- account type (預金種目) and number — never on the number alone: account 1234567 at another bank or
-- branch, or a checking (当座) account with our number, is not our user's (src/deposits/bank-transfer.ts).

-- Every virtual account we ever opened is an ordinary (普通) account: what the bank's files and
-- webhooks have always said of them (預金種目 1), so that is the backfill and the default.
ALTER TABLE virtual_accounts ADD COLUMN account_type text NOT NULL DEFAULT 'ordinary'
  CHECK (account_type IN ('ordinary', 'checking', 'savings'));

-- The credited account as the bank named it; NULL where it did not say (a webhook without bank or
-- branch), which matches no virtual account. 'other' is 預金種目 9.
ALTER TABLE bank_transfers
  ADD COLUMN bank_code text CHECK (bank_code ~ '^[0-9]{4}$'),
  ADD COLUMN branch_code text CHECK (branch_code ~ '^[0-9]{3}$'),
  ADD COLUMN account_type text CHECK (account_type IN ('ordinary', 'checking', 'savings', 'other'));

-- Backfill: a file record's (or a webhook's 照会番号) id names the account: zengin:<bank>-<branch>-<type>-<number>:…
UPDATE bank_transfers b SET bank_code = x.m[1], branch_code = x.m[2],
  account_type = CASE x.m[3] WHEN '1' THEN 'ordinary' WHEN '2' THEN 'checking' WHEN '4' THEN 'savings' ELSE 'other' END
FROM (SELECT external_id, regexp_match(external_id, '^zengin:([0-9]{4})-([0-9]{3})-([0-9])-[0-9]{7}:') AS m FROM bank_transfers) x
WHERE x.external_id = b.external_id AND x.m IS NOT NULL;
-- Other ids: the virtual account the transfer was booked to (by its number, as it was then), if any.
UPDATE bank_transfers b SET bank_code = v.bank_code, branch_code = v.branch_code, account_type = v.account_type
FROM virtual_accounts v WHERE b.bank_code IS NULL AND b.user_id = v.user_id AND b.account_number = v.account_number;

-- Reconciliation compares only the accounts and days a bank file covers (src/reconcile/sources.ts).
CREATE INDEX bank_transfers_account_day ON bank_transfers (account_number, transaction_date);
