-- Webhook events, written in the same transaction as the change that causes them.
-- The webhook dispatcher (jobs/webhooks) turns them into deliveries; nothing else reads it.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    app_id       bigint NOT NULL,
    event_type   text NOT NULL,
    campaign_id  text,              -- ordering key: campaign.* and its message events
    payload      jsonb NOT NULL,    -- the event body as delivered
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_app_campaign ON outbox (app_id, campaign_id, id);
