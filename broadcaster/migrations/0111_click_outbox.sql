-- Clicks through an outbox (SPEC 5C, issue 17): GET /c/{token} answers its 302 once the
-- click is committed here (one append, group-committed with the clicks arriving meanwhile),
-- and the API's drainer applies the outbox in batches (store/clicks.drain): the recipient's
-- first click on the ledger, the click log, the counters, deleting what it applied in the
-- same transaction, so every answered click is counted exactly once even when the API is
-- killed right after answering (the rows wait here for the next drainer). The redirect no
-- longer updates a ledger row (a new row version in a 1M-row table, and the counter rows
-- every concurrent click queued on until its commit was flushed).
CREATE TABLE click_outbox (
    id           bigserial PRIMARY KEY,
    app_id       bigint NOT NULL,
    campaign_id  text NOT NULL,
    target_id    text NOT NULL,
    link_no      integer NOT NULL,
    url          text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
