-- Rotating a subscription's signing secret with an overlap: the secret it replaced keeps signing
-- beside the new one until previous_secret_expires_at, so a receiver can switch at its own pace
-- (Standard Webhooks allows several `v1,` signatures in one webhook-signature header).
ALTER TABLE subscriptions
  ADD COLUMN previous_secret text,
  ADD COLUMN previous_secret_expires_at timestamptz,
  ADD CONSTRAINT subscriptions_previous_secret_expiry CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));
