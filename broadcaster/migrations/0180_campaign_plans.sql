-- The outcome of a campaign's audience copy (services/planning.py). The copy runs in its own
-- REPEATABLE READ transaction whose snapshot predates the start call's status change, so it
-- cannot update the campaign row (a row changed after its snapshot); it records its counts
-- here instead, in the transaction that commits the audience and the batches. Marking the
-- campaign planned moves them onto the campaign row and deletes this row; a row left behind
-- by a process that died in between tells the tick's reaper that only the marking is missing.
CREATE TABLE campaign_plans (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    recipients   bigint NOT NULL,
    batches      integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, campaign_id)
);
