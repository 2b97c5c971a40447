-- Apps, and the chat data campaigns deliver into. Every row belongs to one app.
-- Hot fan-out tables (channels, members, messages) carry no foreign keys: the campaign
-- runner inserts millions of rows set-based and the per-row FK probes would halve it;
-- the store layer keeps them consistent (deletes cascade explicitly).

CREATE TABLE apps (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    api_key     text NOT NULL UNIQUE,
    api_secret  text NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text,
    role        text NOT NULL DEFAULT 'user',
    teams       text[] NOT NULL DEFAULT '{}',
    language    text,
    custom      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (app_id, id)
);
CREATE INDEX users_app_created ON users (app_id, created_at, id);
CREATE INDEX users_app_name ON users (app_id, lower(name) text_pattern_ops);
CREATE INDEX users_custom ON users USING gin (custom jsonb_path_ops);

CREATE TABLE channels (
    app_id        bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    cid           text NOT NULL,
    type          text NOT NULL,
    id            text NOT NULL,
    team          text,
    created_by_id text,
    custom        jsonb NOT NULL DEFAULT '{}',
    member_count  integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    PRIMARY KEY (app_id, cid)
);
CREATE INDEX channels_app_created ON channels (app_id, created_at, cid);
CREATE INDEX channels_custom ON channels USING gin (custom jsonb_path_ops);

CREATE TABLE members (
    app_id        bigint NOT NULL,
    cid           text NOT NULL,
    user_id       text NOT NULL,
    channel_role  text NOT NULL DEFAULT 'channel_member',
    custom        jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, cid, user_id)
);
CREATE INDEX members_app_user ON members (app_id, user_id);

CREATE TABLE messages (
    app_id       bigint NOT NULL,
    id           text NOT NULL,
    cid          text NOT NULL,
    user_id      text NOT NULL,
    type         text NOT NULL DEFAULT 'regular',
    text         text NOT NULL DEFAULT '',
    attachments  jsonb NOT NULL DEFAULT '[]',
    custom       jsonb NOT NULL DEFAULT '{}',
    campaign_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id)
);
CREATE INDEX messages_channel ON messages (app_id, cid, created_at);

CREATE TABLE channel_reads (
    app_id     bigint NOT NULL,
    cid        text NOT NULL,
    user_id    text NOT NULL,
    last_read  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, cid, user_id)
);
