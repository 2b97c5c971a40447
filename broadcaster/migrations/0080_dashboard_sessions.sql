-- Dashboard sign-ins (broadcaster/dashboard/session.py). The id is the SHA-256 of the cookie
-- value, so a read of this table yields no usable cookie. expires_at moves forward on use
-- (idle expiry) but never past created_at + the absolute lifetime.
CREATE TABLE dashboard_sessions (
    id          text PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
CREATE INDEX dashboard_sessions_app ON dashboard_sessions (app_id);
