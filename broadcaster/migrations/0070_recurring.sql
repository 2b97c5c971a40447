-- Recurring campaigns (SPEC 5A). The parent row holds the schedule and the next occurrence
-- (next_run_at, read by the 1 s tick against PostgreSQL's now(), so the clock is the
-- database's and a test or an operator can make an occurrence due by moving next_run_at).
-- Each run is an ordinary campaign row (parent_id, run_no) started through the one start
-- path; the unique index makes "two workers start the same run" impossible, not unlikely.
-- All columns are nullable or have constant defaults: catalogue-only changes.

ALTER TABLE campaigns
    ADD COLUMN type text NOT NULL DEFAULT 'one_time'
        CHECK (type IN ('one_time', 'recurring', 'triggered')),
    ADD COLUMN schedule jsonb,
    ADD COLUMN parent_id text,
    ADD COLUMN run_no integer,
    ADD COLUMN next_run_at timestamptz,
    ADD COLUMN runs_started integer NOT NULL DEFAULT 0;

CREATE UNIQUE INDEX campaigns_parent_run ON campaigns (app_id, parent_id, run_no)
    WHERE parent_id IS NOT NULL;
-- the tick's query: live series with an occurrence due
CREATE INDEX campaigns_next_run ON campaigns (next_run_at)
    WHERE type = 'recurring' AND status IN ('scheduled', 'paused');

-- Every occurrence of a series that came due: started (with its run) or skipped (paused,
-- missed by more than catch_up), so a skipped occurrence is recorded, never just absent.
CREATE TABLE campaign_occurrences (
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    due_at       timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('started', 'skipped')),
    reason       text,                  -- skipped: 'paused' | 'missed'
    run_no       integer,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, campaign_id, due_at)
);
