-- Deliveries are claimed per receiver (each gets as many as its adaptive window allows,
-- webhooks/adapt.py), and the receivers that have due rows are found by a skip scan over
-- (app_id, receiver): one index serves both. The global due index it replaces was read
-- only by the old claim-anything-due query.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_receiver
    ON webhook_deliveries (app_id, receiver, next_at) WHERE state = 'pending' AND NOT held;
DROP INDEX IF EXISTS webhook_deliveries_due;
