-- When a job last began running the batch (store/fanout.lease). A batch queued but never
-- started is only taken for lost when its campaign stopped making progress: a long campaign's
-- queue takes longer to drain than the queued lease (5M recipients: 2,500 batches, ~6 min),
-- and re-enqueueing every still-queued batch each 30 s filled the queue with copies that
-- waited on each other's row locks (36 % of busy backend samples at 5M, issue 15).
-- Nullable without a default: a catalogue-only change.
ALTER TABLE campaign_batches ADD COLUMN started_at timestamptz;
