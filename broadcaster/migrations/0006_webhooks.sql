-- Webhook deliveries: one row per (outbox event, receiver), created by the dispatcher when
-- it consumes the outbox. PostgreSQL is the record: a row stays 'pending' until the receiver
-- answered 2xx (then the row is deleted) or its retries are exhausted ('failed', kept for
-- GET /webhooks/failed and POST /webhooks/replay).
--
-- A claimed (in-flight) row stays 'pending' with next_at pushed out by a lease, so a worker
-- that dies mid-request lets another one retry it once the lease runs out.
-- `held` implements per-campaign ordering per receiver: message events wait for the
-- campaign's earlier campaign.* events, campaign.* events wait for everything earlier.
CREATE TABLE webhook_deliveries (
    id                 bigserial PRIMARY KEY,
    app_id             bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    webhook_id         uuid NOT NULL DEFAULT gen_random_uuid(),  -- X-Webhook-Id
    event_id           bigint NOT NULL,          -- outbox id: the event order
    receiver           text NOT NULL,            -- 'webhook_url' or 'hook:<event_hooks id>'
    url                text NOT NULL,
    event_type         text NOT NULL,
    campaign_id        text,
    barrier            boolean NOT NULL,         -- a campaign.* event (ordering fence)
    payload            text NOT NULL,            -- the exact body POSTed and signed
    state              text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    held               boolean NOT NULL DEFAULT false,
    attempt            integer NOT NULL DEFAULT 0,   -- attempts made in the current series
    series             integer NOT NULL DEFAULT 1,   -- 1 + number of replays
    series_started_at  timestamptz NOT NULL DEFAULT now(),
    next_at            timestamptz NOT NULL DEFAULT now(),
    last_status        integer,
    last_error         text,
    failed_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- The claim scan: due, unheld, pending rows.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at)
    WHERE state = 'pending' AND NOT held;
-- Ordering checks per (app, receiver, campaign).
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (app_id, receiver, campaign_id, event_id)
    WHERE state = 'pending' AND campaign_id IS NOT NULL;
CREATE INDEX webhook_deliveries_fences ON webhook_deliveries (app_id, receiver, campaign_id, event_id)
    WHERE state = 'pending' AND barrier AND campaign_id IS NOT NULL;
CREATE INDEX webhook_deliveries_held ON webhook_deliveries (app_id, receiver, campaign_id, event_id)
    WHERE state = 'pending' AND held;
-- GET /webhooks/failed pages and replay by id / since (only failed rows are looked up by
-- webhook_id, so no index on it: every index costs on each insert and release).
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (app_id, id) WHERE state = 'failed';
