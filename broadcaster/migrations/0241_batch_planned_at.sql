-- When a batch row was planned: with its campaign and number it makes the batch's message id
-- prefix (ids.batch_prefix), so every attempt of a batch writes the same message ids and new
-- channel ids. A batch commit lost in a PostgreSQL crash (batches commit asynchronously) is
-- redone under the ids a reader may already have seen. Existing rows get the upgrade's time.
ALTER TABLE campaign_batches ADD COLUMN planned_at timestamptz NOT NULL DEFAULT now();
