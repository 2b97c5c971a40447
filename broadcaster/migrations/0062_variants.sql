-- A/B variants (SPEC 5C): the ledger records which variant each recipient got (the message
-- carries it as variant_id in its custom data). Nullable without a default: a catalogue-only
-- change, and campaigns without variants write NULL as before.
ALTER TABLE campaign_recipients ADD COLUMN variant_id text;
