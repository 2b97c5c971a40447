-- Standard Webhooks signing secrets, one per receiver ('webhook_url' or 'hook:<id>'): a
-- receiver verifies webhook-signature with its own secret instead of holding the app's API
-- secret. Shown once (PATCH /app that adds the receiver, or POST /webhooks/secrets/rotate);
-- stored sealed by secretbox when BROADCASTER_SECRET_KEY is set. During a rotation's overlap
-- the previous secret signs too (both signatures are sent).
CREATE TABLE IF NOT EXISTS webhook_secrets (
    app_id               bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    receiver             text NOT NULL,
    secret               text NOT NULL,
    previous_secret      text,
    previous_expires_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, receiver)
);
