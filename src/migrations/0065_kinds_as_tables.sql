-- Enumerations that several modules extend are rows, not CHECK lists: a module that needs a new
-- ledger account kind, case subject or delivery target type inserts a row in its own migration
-- (INSERT … ON CONFLICT DO NOTHING) instead of re-creating a CHECK that must list every other
-- module's values, which silently drops one added by a migration it did not know about.
CREATE TABLE ledger_account_kinds (kind text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'));
INSERT INTO ledger_account_kinds (kind) VALUES
  ('wallet'), ('clearing'), ('escrow'), ('suspense'), ('refunds_payable'), ('fees'), ('revenue'),
  ('deferred_revenue'), ('points'), ('points_provisional'), ('points_issued');
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_fkey FOREIGN KEY (kind) REFERENCES ledger_account_kinds (kind);

CREATE TABLE case_subject_types (subject_type text PRIMARY KEY CHECK (subject_type ~ '^[a-z][a-z0-9_]{0,39}$'));
INSERT INTO case_subject_types (subject_type) VALUES
  ('deposit'), ('operation'), ('delivery'), ('inbox'), ('recon_break'), ('ledger_account'),
  ('ledger_transaction'), ('bank_transfer'), ('saga'), ('iap_subscription'), ('ticket');
ALTER TABLE cases DROP CONSTRAINT cases_subject_type_check;
ALTER TABLE cases ADD CONSTRAINT cases_subject_type_fkey FOREIGN KEY (subject_type) REFERENCES case_subject_types (subject_type);

CREATE TABLE target_types (target_type text PRIMARY KEY CHECK (target_type ~ '^[a-z][a-z0-9_]{0,39}$'));
INSERT INTO target_types (target_type) VALUES ('handler'), ('http'), ('nats');
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_target_type_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_target_type_fkey FOREIGN KEY (target_type) REFERENCES target_types (target_type);
-- A delivery copies its subscription's target type when it is fanned out; a per-row foreign key on
-- the outbox's hottest insert would only re-check what the subscription's key already holds.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_target_type_check;
