-- The audience of a campaign, fixed when it starts (SPEC 5): one row per distinct recipient
-- (user id or channel cid), copied from its segments (or user_ids) by one set-based
-- INSERT ... SELECT inside the transaction that makes the campaign in_progress. Batches read
-- their ids from it by range (after, upto], so later changes to segments, targets, users or
-- channels cannot add, drop or reorder recipients; the recipients endpoint lists it LEFT JOIN
-- the ledger (no ledger row = pending).
CREATE TABLE campaign_audience (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    target_id    text NOT NULL,
    PRIMARY KEY (app_id, campaign_id, target_id)
);
