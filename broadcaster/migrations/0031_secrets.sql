-- Secret rotation: the previous secret keeps verifying until its grace period ends.
ALTER TABLE apps ADD COLUMN IF NOT EXISTS previous_secret text;
ALTER TABLE apps ADD COLUMN IF NOT EXISTS previous_secret_expires_at timestamptz;
ALTER TABLE apps ADD COLUMN IF NOT EXISTS secret_rotated_at timestamptz;

-- Keys generated once per installation (the cursor HMAC key when none is configured).
CREATE TABLE IF NOT EXISTS installation_secrets (
    name text PRIMARY KEY,
    value text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
