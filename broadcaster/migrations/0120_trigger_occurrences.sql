-- Triggered campaigns with once_per_user false (SPEC 5A): one send per (campaign, event).
--
-- The audience and the ledger keep one row per (campaign, target), so the send path, the
-- policy, reads, clicks and conversions keep keying on the user. A user's n-th send goes to
-- the campaign's occurrence n: the campaign itself for n = 1, and for n >= 2 a child
-- campaign (parent_id, run_no = n, id <parent>-occ-<n>) made on first need by the dispatch
-- that queues it, with its own audience, ledger and batches. campaign_triggers.occurrence
-- records which one a queued trigger went to; a dispatch numbers a user's due triggers on
-- from the ones queued before, under the campaign's row lock, so a number is never reused.
-- The parent's stats sum its occurrences (as a series sums its runs).
--
-- Existing queued triggers were all sent by the campaign itself (once per user): occurrence 1.

ALTER TABLE campaign_triggers ADD COLUMN occurrence integer;
UPDATE campaign_triggers SET occurrence = 1 WHERE status = 'queued';
