-- Frequency caps count the ledger instead of a counter row per user (issue 16).
--
-- policy_sends was one upsert per recipient (a heap tuple, its primary-key entry and the
-- speculative-insertion work of ON CONFLICT), most of what the caps cost a 1M campaign. A
-- counted send is now its ledger row's capped_at (the policy clock's instant; NULL for a
-- send made while the app had no caps, and for channel audiences): the ledger row is written
-- anyway, and the partial index adds one entry per counted send, nothing per uncounted one.
--
-- Exactness: two batches can share a user only if their ranges (after_id, upto_id] of user
-- ids overlap (every user-audience batch covers such a range). A batch that counts claims
-- its range in policy_claims before it reads the counts, and the claim conflicts (exclusion
-- constraint) with any overlapping claim of an in-progress transaction, so it waits for that
-- batch to commit and then reads its ledger rows. policy_claim() inserts and deletes the
-- claim at once: a row inserted by an in-progress transaction blocks overlapping inserts
-- even once that transaction deleted it, and it is dead for everyone when the transaction
-- ends, committed or not, so a claim is held exactly until its batch's commit and can never
-- outlive it. ON CONFLICT DO NOTHING makes the insert speculative, which waits for the
-- holder instead of deadlocking two inserters that see each other's rows.
--
-- policy_kept: the counted sends of deleted campaigns (their ledger goes), and the instants
-- policy_sends held at this upgrade.

ALTER TABLE campaign_recipients ADD COLUMN capped_at timestamptz;
CREATE INDEX campaign_recipients_capped ON campaign_recipients (app_id, user_id, capped_at)
    WHERE capped_at IS NOT NULL;

CREATE TABLE policy_kept (
    app_id   bigint NOT NULL,
    user_id  text NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX policy_kept_user ON policy_kept (app_id, user_id, at);

INSERT INTO policy_kept (app_id, user_id, at)
SELECT p.app_id, p.user_id, s FROM policy_sends p, unnest(p.sends) AS s;
DROP TABLE policy_sends;

-- ordered as the ids' column (the database's collation), so a user id is inside a claim
-- exactly when it is inside the batch's range
CREATE TYPE policy_idrange AS RANGE (subtype = text);

CREATE TABLE policy_claims (
    app_id  bigint NOT NULL,
    ids     policy_idrange NOT NULL,
    EXCLUDE USING gist (int8range(app_id, app_id, '[]') WITH &&, ids WITH &&)
);

CREATE FUNCTION policy_claim(app bigint, lo text, hi text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r policy_idrange;
    t tid;
BEGIN
    IF lo IS NOT NULL AND hi IS NOT NULL AND lo >= hi THEN
        r := policy_idrange(NULL, NULL);  -- not a batch's range: claim every id
    ELSE
        r := policy_idrange(lo, hi, '(]');
    END IF;
    INSERT INTO policy_claims AS c (app_id, ids) VALUES (app, r) ON CONFLICT DO NOTHING RETURNING c.ctid INTO t;
    IF t IS NULL THEN  -- a live committed claim: none can exist (each is deleted in its transaction)
        RAISE EXCEPTION 'policy_claims holds a committed claim overlapping %', r;
    END IF;
    DELETE FROM policy_claims WHERE ctid = t;
END $$;
