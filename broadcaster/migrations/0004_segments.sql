-- Segments: reusable audiences of users or channels, and their explicit target lists.
--
-- Targets are keyed by an internal bigint `key` (not app_id + text id) so the target
-- indexes stay small at millions of rows; a deleted segment's key is never reused, so its
-- leftover targets are invisible and purged in the background.

CREATE TABLE segments (
    app_id               bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id                   text NOT NULL,
    key                  bigserial NOT NULL UNIQUE,
    type                 text NOT NULL CHECK (type IN ('user', 'channel')),
    name                 text NOT NULL DEFAULT '',
    description          text NOT NULL DEFAULT '',
    filter               jsonb,
    all_users            boolean NOT NULL DEFAULT false,
    all_sender_channels  boolean NOT NULL DEFAULT false,
    -- exact for explicit lists; computed by a job for filter/all_users; null = not known
    size                 bigint,
    -- bumped on every filter change: a size job only writes the size of its own version
    size_version         bigint NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id)
);
CREATE INDEX segments_app_created ON segments (app_id, created_at, id);
CREATE INDEX segments_app_updated ON segments (app_id, updated_at, id);

-- created_at rides along in the primary key index so a target_id page is an index-only scan.
CREATE TABLE segment_targets (
    seg         bigint NOT NULL,
    target_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seg, target_id) INCLUDE (created_at)
);
CREATE INDEX segment_targets_created ON segment_targets (seg, created_at, target_id);
