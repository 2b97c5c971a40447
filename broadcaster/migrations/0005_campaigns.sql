-- Campaigns, their fan-out batches, the per-recipient ledger and the per-minute timeline.
--
-- Planning records only batch boundaries (after, upto] over the audience's id order, never
-- per-recipient rows; a batch writes its ledger rows and its counters in the same
-- transaction that marks it done, so stats are sums over done batches and always agree
-- with the ledger.

CREATE TABLE campaigns (
    app_id            bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id                text NOT NULL,
    name              text NOT NULL DEFAULT '',
    description       text NOT NULL DEFAULT '',
    status            text NOT NULL DEFAULT 'draft' CHECK (status IN
                        ('draft', 'scheduled', 'in_progress', 'paused', 'completed', 'stopped')),
    segment_ids       text[] NOT NULL DEFAULT '{}',
    user_ids          text[] NOT NULL DEFAULT '{}',
    sender_id         text NOT NULL,
    sender_mode       text,
    message_template  jsonb NOT NULL,
    create_channels   boolean NOT NULL DEFAULT false,
    channel_template  jsonb,
    skip_push         boolean NOT NULL DEFAULT false,
    skip_webhook      boolean NOT NULL DEFAULT false,
    scheduled_for     timestamptz,
    stop_at           timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- run state
    kind              text,                 -- 'user' | 'channel', fixed at start
    started_at        timestamptz,
    completed_at      timestamptz,
    plan_after        text,                 -- planner position (last upto)
    plan_batches      integer NOT NULL DEFAULT 0,
    planned           boolean NOT NULL DEFAULT false,
    recipients_total  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX campaigns_app_created ON campaigns (app_id, created_at, id);
CREATE INDEX campaigns_app_updated ON campaigns (app_id, updated_at, id);
-- the 1 s tick looks only at live campaigns
CREATE INDEX campaigns_live ON campaigns (status)
    WHERE status IN ('scheduled', 'in_progress', 'paused');

CREATE TABLE campaign_batches (
    app_id            bigint NOT NULL,
    campaign_id       text NOT NULL,
    batch_no          integer NOT NULL,
    after_id          text,                 -- exclusive lower bound (NULL = start)
    upto_id           text NOT NULL,        -- inclusive upper bound
    n                 integer NOT NULL,     -- recipients planned in the range
    done              boolean NOT NULL DEFAULT false,
    tries             integer NOT NULL DEFAULT 0,
    lease_until       timestamptz,          -- a job owns it until then; later = lost, re-enqueue
    sent              integer NOT NULL DEFAULT 0,
    errored           integer NOT NULL DEFAULT 0,
    skipped           integer NOT NULL DEFAULT 0,
    channels_created  integer NOT NULL DEFAULT 0,
    done_at           timestamptz,
    PRIMARY KEY (app_id, campaign_id, batch_no)
);
CREATE INDEX campaign_batches_open ON campaign_batches (app_id, campaign_id) WHERE NOT done;

CREATE TABLE campaign_recipients (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    target_id    text NOT NULL,             -- user id or channel cid
    user_id      text,
    channel_cid  text,
    message_id   text,
    status       text NOT NULL,             -- sent | skipped | errored | read
    error        text,
    sent_at      timestamptz,
    read_at      timestamptz,
    PRIMARY KEY (app_id, campaign_id, target_id)
);

CREATE TABLE campaign_minutes (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    minute       timestamptz NOT NULL,
    sent         bigint NOT NULL DEFAULT 0,
    read         bigint NOT NULL DEFAULT 0,
    errored      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, campaign_id, minute)
);
