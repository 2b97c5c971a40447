-- A campaign batch writes its message.new and channel.created events as ONE outbox row
-- (event_type 'batch': the batch's message id prefix, the row numbers of its messages and
-- the cids of the channels it created), expanded into the same per-event bodies when routed
-- (store/webhooks.py). Two rows per recipient, each with its primary-key entry, were the
-- outbox's share of a batch write with webhooks on. `events` counts what a row expands to
-- (the outbox depth gauge, the router's budget).
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS events integer NOT NULL DEFAULT 1;
-- Routing takes each app's rows in id order, round robin between apps (one app's backlog
-- does not delay another's); with a row per batch this index costs nothing per recipient.
CREATE INDEX IF NOT EXISTS outbox_app_id ON outbox (app_id, id);
-- Delivery rows are ordered by event_id (campaign.* fences): one row of the outbox now
-- yields many events, so event ids are drawn when routed, in outbox order, under the
-- routing lock; they start above every id used so far.
CREATE SEQUENCE IF NOT EXISTS webhook_event_ids;
SELECT setval('webhook_event_ids', greatest(
    coalesce((SELECT max(event_id) FROM webhook_deliveries), 0),
    (SELECT last_value FROM outbox_id_seq)) + 1);
