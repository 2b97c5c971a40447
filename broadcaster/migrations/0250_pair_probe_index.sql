-- The 1:1 pair probe (store/distinct.probe) must use the pair index whatever the statistics
-- say. With the index on plain app_id, every index leading with app_id (channels_pkey,
-- channels_app_created) was as good a match for "app_id = $1 AND ..." as far as the planner
-- knew, and when ANALYZE last saw the app with few channels (a new app, an app whose campaign
-- is creating them, a table vacuumed empty) it estimated ~1 row for app_id alone and planned
-- the probe on channels_app_created: each of a batch's 2,000 probes walked all the app's
-- channels, and a batch ran 30-120 s (docs/scaling.md, the first-batches stall). The probe now
-- compares app_id + 0, an expression only this index has, so it is the probe's only index;
-- the values and their order are app_id's, so inserts still land where they did.
DROP INDEX channels_distinct_pair;
CREATE UNIQUE INDEX channels_distinct_pair ON channels ((app_id + 0), type, pair_lo, pair_hi)
    WHERE pair_lo IS NOT NULL;
