-- Click tracking (SPEC 5C).
--
-- A click is recorded in the redirect's request by one statement: its row in campaign_clicks
-- (0060, append-only), the recipient's first click on the ledger row (clicked_at, under that
-- row's lock, so concurrent first clicks count once) and the counters. The counters are
-- spread over 16 rows per campaign by recipient: one per-minute row would be a single hot
-- row that every click of a popular campaign queues on until its commit is flushed.
-- The per-minute click buckets of the timeline are read from campaign_clicks (its primary
-- key is in time order per campaign).
CREATE TABLE campaign_click_counts (
    app_id         bigint NOT NULL,
    campaign_id    text NOT NULL,
    shard          smallint NOT NULL,
    clicks         bigint NOT NULL DEFAULT 0,
    users_clicked  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, campaign_id, shard)
);
ALTER TABLE campaign_minutes DROP COLUMN clicks, DROP COLUMN users_clicked;
ALTER TABLE campaigns ADD COLUMN track_clicks boolean NOT NULL DEFAULT false;
