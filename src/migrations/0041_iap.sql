-- In-app purchases: one internal subscription per store subscription, owned by one
-- member of the billing system. A store subscription is known by its store id: Apple's
-- originalTransactionId, Google's purchaseToken; an upgrade's new purchaseToken names the old one
-- (linkedPurchaseToken) and maps to the same internal subscription.
CREATE TABLE iap_subscriptions (
  id          uuid PRIMARY KEY,
  member_id   text NOT NULL CHECK (length(member_id) BETWEEN 1 AND 64),
  platform    text NOT NULL CHECK (platform IN ('app_store', 'google_play')),
  product_id  text NOT NULL CHECK (length(product_id) BETWEEN 1 AND 200),
  expires_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX iap_subscriptions_member ON iap_subscriptions (member_id);

CREATE TABLE iap_store_ids (
  platform         text NOT NULL CHECK (platform IN ('app_store', 'google_play')),
  store_id         text NOT NULL CHECK (length(store_id) BETWEEN 1 AND 1000),
  -- Deferred, so the store id is claimed first (its primary key decides a race) and the subscription follows.
  subscription_id  uuid NOT NULL REFERENCES iap_subscriptions (id) DEFERRABLE INITIALLY DEFERRED,
  -- The store id this one replaced (Google's linkedPurchaseToken), when it came by an upgrade.
  linked_from      text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (platform, store_id)
);
CREATE INDEX iap_store_ids_subscription ON iap_store_ids (subscription_id);
