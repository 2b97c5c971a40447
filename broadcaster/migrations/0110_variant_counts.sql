-- stats.variants as counters (SPEC 5C), written in the transaction of the work they count:
-- sent by the batch write (store/fanwrite), read by the read endpoint (ledger.on_read),
-- clicked by the recipient's first click, converted by its first attributed conversion.
-- A stats read sums O(variants x shards) rows instead of scanning the campaign's ledger
-- (an A/B campaign of 1M recipients was scanned whole on every poll of its progress).
-- Rows are spread over 16 shards (batch number, or recipient hash) so concurrent batches
-- and interactions do not queue on one counter row until their commits are flushed.
CREATE TABLE campaign_variant_counts (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    variant_id   text NOT NULL,
    shard        smallint NOT NULL,
    sent         bigint NOT NULL DEFAULT 0,
    read         bigint NOT NULL DEFAULT 0,
    clicked      bigint NOT NULL DEFAULT 0,
    converted    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, campaign_id, variant_id, shard)
);

-- the campaigns that already have ledger rows with variants: their counts so far, once
INSERT INTO campaign_variant_counts (app_id, campaign_id, variant_id, shard, sent, read, clicked)
SELECT r.app_id, r.campaign_id, r.variant_id, 0,
       count(*) FILTER (WHERE r.status IN ('sent', 'read')), count(*) FILTER (WHERE r.status = 'read'),
       count(r.clicked_at)
FROM campaign_recipients r WHERE r.variant_id IS NOT NULL
GROUP BY r.app_id, r.campaign_id, r.variant_id;

UPDATE campaign_variant_counts v SET converted = c.n
FROM (SELECT c.app_id, c.campaign_id, r.variant_id, count(*) AS n FROM campaign_converters c
      JOIN campaign_recipients r ON r.app_id = c.app_id AND r.campaign_id = c.campaign_id
       AND r.target_id = c.user_id
      WHERE r.variant_id IS NOT NULL GROUP BY 1, 2, 3) c
WHERE v.app_id = c.app_id AND v.campaign_id = c.campaign_id AND v.variant_id = c.variant_id AND v.shard = 0;
