-- Delivery policy (SPEC 5B): local-time delivery, quiet hours, frequency caps.
--
-- campaign_held: recipients a batch held back (not due yet in their local time, or inside
-- their quiet hours with "defer"), with the range of the batch that held them. They have no
-- ledger row, so a release batch over that same range (created once the first is due and no
-- open batch overlaps the range) reads exactly the held ones as pending, and the send path
-- decides again for each. A campaign does not complete while it holds anyone.
--
-- policy_sends: per (app, user) the instants of the campaign messages received within the
-- longest cap period. Each batch upserts its users' rows (locking them in id order) before
-- deciding, and writes the new instants in the same transaction, so concurrent campaigns and
-- workers serialise per user and no user exceeds a cap.

ALTER TABLE campaigns
    ADD COLUMN send_in_local_time boolean NOT NULL DEFAULT false,
    ADD COLUMN quiet_hours text CHECK (quiet_hours IN ('defer', 'skip', 'ignore')),
    ADD COLUMN ignore_frequency_caps boolean NOT NULL DEFAULT false,
    ADD COLUMN local_send_at timestamp;   -- send_in_local_time: the wall-clock time to send at

CREATE TABLE campaign_held (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    target_id    text NOT NULL,
    after_id     text,                    -- the range (after_id, upto_id] of the batch that held it
    upto_id      text NOT NULL,
    due_at       timestamptz NOT NULL,
    reason       text NOT NULL,           -- local_time | quiet_hours
    PRIMARY KEY (app_id, campaign_id, target_id)
);
CREATE INDEX campaign_held_due ON campaign_held (due_at);

CREATE TABLE policy_sends (
    app_id   bigint NOT NULL,
    user_id  text NOT NULL,
    sends    timestamptz[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (app_id, user_id)
);
