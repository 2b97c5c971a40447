-- Most channels have no custom fields (a campaign's 1:1 channels never do), and a GIN index
-- still takes an entry for an empty document: every new channel paid a GIN insert (its WAL
-- record and the metapage's) for an index no query can use on it. The index now holds only
-- channels with custom fields; the filter compiler puts the same predicate beside each
-- containment test (filter_schema.CHANNEL_SCHEMA's custom_guard), which a row with no custom
-- fields could never pass anyway.
DROP INDEX channels_custom;
CREATE INDEX channels_custom ON channels USING gin (custom jsonb_path_ops) WHERE custom <> '{}'::jsonb;
