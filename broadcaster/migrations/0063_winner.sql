-- A/B winner (SPEC 5C): the variants go to a test fraction first; after `wait` the best
-- variant by the metric goes to everyone else. winner: the config {metric, test_fraction,
-- wait}; winner_phase: NULL (test batches running) | 'waiting' (until winner_at) | 'sending'
-- (winner_variant to the rest, by a second pass of batches numbered from plan_batches on).
ALTER TABLE campaigns
    ADD COLUMN winner jsonb,
    ADD COLUMN winner_phase text CHECK (winner_phase IN ('waiting', 'sending')),
    ADD COLUMN winner_at timestamptz,
    ADD COLUMN winner_variant text;
