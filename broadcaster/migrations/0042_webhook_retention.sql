-- Retention (BROADCASTER_WEBHOOK_RETENTION_DAYS): failed deliveries are purged oldest first
-- in small batches; this index finds them without reading the others. Delivered rows are
-- deleted when they are delivered.
CREATE INDEX IF NOT EXISTS webhook_deliveries_failed_at ON webhook_deliveries (failed_at)
    WHERE state = 'failed';
