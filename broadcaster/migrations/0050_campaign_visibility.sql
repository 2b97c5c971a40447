-- The hosted API's CampaignResponse fields sender_visibility and show_channels (SPEC 5):
-- stored as given at create/update, applied to the channels a campaign sends into.
ALTER TABLE campaigns
    ADD COLUMN sender_visibility text CHECK (sender_visibility IN ('hidden', 'archived')),
    ADD COLUMN show_channels boolean NOT NULL DEFAULT false;
