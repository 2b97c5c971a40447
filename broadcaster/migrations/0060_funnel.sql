-- The campaign funnel (SPEC 5C): conversions, clicks and their counters.
--
-- Nothing here touches what the fan-out's batch write inserts: no index on messages or the
-- ledger. "The campaign message a user received last" is found through the indexes that
-- already exist (members_app_user, messages_channel (app_id, cid, created_at), the ledger's
-- primary key), so the hot write path pays nothing for attribution. The ledger's new
-- clicked_at is nullable without a default (a catalogue-only change; the fan-out never
-- writes it). campaign_minutes gets the funnel counters beside `read`: they are written by
-- the transaction that records the interaction, so stats are the interaction tables' counts.

CREATE TABLE conversions (
    app_id       bigint NOT NULL,
    id           text NOT NULL,
    user_id      text NOT NULL,
    event        text NOT NULL,
    value        numeric,
    currency     text,
    created_at   timestamptz NOT NULL,
    campaign_id  text,                 -- NULL: unattributed
    message_id   text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id)
);
-- interactions?type=converted pages a campaign's conversions in time order
CREATE INDEX conversions_campaign ON conversions (app_id, campaign_id, created_at, id)
    WHERE campaign_id IS NOT NULL;

-- First conversion of a user per campaign: the row's insertion is what counts the user once.
CREATE TABLE campaign_converters (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    user_id      text NOT NULL,
    first_at     timestamptz NOT NULL,
    PRIMARY KEY (app_id, campaign_id, user_id)
);

CREATE TABLE campaign_revenue (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    currency     text NOT NULL,
    amount       numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, campaign_id, currency)
);

-- Every click (the interaction log); the ledger's clicked_at marks the recipient's first.
CREATE TABLE campaign_clicks (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    id           bigserial,
    target_id    text NOT NULL,
    link_no      integer NOT NULL,
    url          text NOT NULL,
    first        boolean NOT NULL,     -- the recipient's first click (counted in users_clicked)
    PRIMARY KEY (app_id, campaign_id, at, id)
);
ALTER TABLE campaign_recipients ADD COLUMN clicked_at timestamptz;

ALTER TABLE campaign_minutes
    ADD COLUMN clicks bigint NOT NULL DEFAULT 0,
    ADD COLUMN users_clicked bigint NOT NULL DEFAULT 0,
    ADD COLUMN conversions bigint NOT NULL DEFAULT 0,
    ADD COLUMN users_converted bigint NOT NULL DEFAULT 0;
