-- Triggered campaigns (SPEC 5A). Events are recorded durably (POST /events before its 201;
-- user upserts in the statement that writes the users), matched against listening
-- campaigns by one INSERT ... SELECT per campaign over a batch of events (the trigger's
-- filter compiled once), and each match becomes a campaign_triggers row: the primary key
-- (campaign, event) makes a send exactly once per (campaign, event). A due trigger appends
-- its user to the campaign's audience (its primary key: at most once per user) and a batch
-- over the new ids goes through the one send path.

ALTER TABLE campaigns
    ADD COLUMN trigger jsonb,
    ADD COLUMN delay text,
    ADD COLUMN once_per_user boolean NOT NULL DEFAULT true,
    ADD COLUMN times_triggered bigint NOT NULL DEFAULT 0;

CREATE TABLE events (
    app_id       bigint NOT NULL,
    id           text NOT NULL,
    type         text NOT NULL,
    user_id      text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    processed    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (app_id, id)          -- de-duplicates ids until the 7-day purge
);
CREATE INDEX events_pending ON events (app_id, recorded_at) WHERE NOT processed;
CREATE INDEX events_recorded ON events (recorded_at);

CREATE TABLE campaign_triggers (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    event_id     text NOT NULL,
    user_id      text NOT NULL,
    due_at       timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'queued', 'skipped')),
    reason       text,                -- skipped: already_sent_to_user
    batch_no     integer,             -- queued: the batch that sends it
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, campaign_id, event_id)
);
CREATE INDEX campaign_triggers_due ON campaign_triggers (app_id, campaign_id, due_at) WHERE status = 'pending';
CREATE INDEX campaign_triggers_user ON campaign_triggers (app_id, campaign_id, user_id);
