-- Trace context (W3C traceparent) carried with the work it belongs to (src/kernel/tracing.ts): a
-- notification's, the messages its processing published and the operations it recorded, so the
-- spans of later processing, calls and deliveries join the notification's trace. Null without tracing.
ALTER TABLE inbox ADD COLUMN traceparent text CHECK (length(traceparent) <= 64);
ALTER TABLE outbox_messages ADD COLUMN traceparent text CHECK (length(traceparent) <= 64);
ALTER TABLE operations ADD COLUMN traceparent text CHECK (length(traceparent) <= 64);
