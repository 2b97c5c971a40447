-- Fan-out performance.
--
-- A campaign inserts a channel per recipient, set-based, millions per run. The foreign key
-- to apps made PostgreSQL probe apps once per inserted channel (a quarter of a batch's write
-- statement). Like members and messages (0001: hot fan-out tables carry no foreign keys),
-- channels now rely on the store layer, which scopes every write by app_id.
ALTER TABLE channels DROP CONSTRAINT IF EXISTS channels_app_id_fkey;
