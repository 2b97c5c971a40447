-- Per-member channel state of the hosted API: hidden (POST /channels/{type}/{id}/hide, until
-- someone else writes in the channel), archived and pinned (the member partial update).
-- Constant defaults: adding them rewrites no rows.
ALTER TABLE members
    ADD COLUMN hidden boolean NOT NULL DEFAULT false,
    ADD COLUMN archived_at timestamptz,
    ADD COLUMN pinned_at timestamptz,
    ADD COLUMN updated_at timestamptz;
