-- Subscriptions may publish to NATS JetStream (src/outbox/deliver-nats.ts): a third target type.
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_target_type_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_target_type_check CHECK (target_type IN ('handler', 'http', 'nats'));

-- NOT VALID then VALIDATE: the scan of a large deliveries table does not hold writers back.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_target_type_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_target_type_check CHECK (target_type IN ('handler', 'http', 'nats')) NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_target_type_check;
