-- The stores' last word on an in-app subscription, applied from their notifications (src/iap/notification-saga.ts),
-- beside the billing system's own state: what `seigo sim iap` compares.
ALTER TABLE iap_subscriptions ADD COLUMN state text NOT NULL DEFAULT 'active'
  CHECK (state IN ('active', 'grace_period', 'billing_retry', 'expired', 'refunded', 'revoked'));
ALTER TABLE iap_subscriptions ADD COLUMN auto_renew boolean NOT NULL DEFAULT true;
