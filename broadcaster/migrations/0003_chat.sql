-- Chat-data query paths on a large app (0001 has the base indexes). Channels, members and
-- messages are written by the campaign fan-out, so they get only what queries need most.
-- teams: $contains / $in filters (teams @> / &&) on users.
CREATE INDEX users_teams ON users USING gin (teams);
-- Sorting users by updated_at with the id tie-break.
CREATE INDEX users_app_updated ON users (app_id, updated_at, id);
-- Channel filters on team; partial, so channels without a team (1:1 campaign channels) cost nothing.
CREATE INDEX channels_app_team ON channels (app_id, team) WHERE team IS NOT NULL;
-- $autocomplete on user names is a word-prefix regex on lower(name): trigrams serve it
-- for prefixes of 3+ characters (pg_trgm is a trusted extension since PostgreSQL 13).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_name_trgm ON users USING gin (lower(name) gin_trgm_ops);
