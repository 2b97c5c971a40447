-- A deleted campaign whose ledger is too large to delete inside the request (the API's
-- statement timeout) leaves its rows here; the worker's purge job deletes them in short
-- transactions (store/purges.py). Until it is done, no campaign of that id can be created:
-- its leftover rows are keyed by the id alone and would join the new campaign.
CREATE TABLE campaign_purges (
    app_id       bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    campaign_id  text NOT NULL,
    queued_at    timestamptz NOT NULL DEFAULT now(),  -- or last worked on: apps take turns
    rows_deleted bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, campaign_id)
);

-- An AFTER trigger runs once the insert has waited out a concurrent delete of the same id, and
-- its query takes a fresh snapshot (READ COMMITTED), so it sees that delete's purge row.
CREATE FUNCTION campaigns_not_purging() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM campaign_purges WHERE app_id = NEW.app_id AND campaign_id = NEW.id) THEN
        RAISE EXCEPTION 'campaign % is still being deleted', NEW.id USING ERRCODE = 'BRP01';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER campaigns_not_purging AFTER INSERT ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_not_purging();
