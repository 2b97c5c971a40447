-- The outbox takes two rows per campaign recipient when webhooks are on (channel.created and
-- message.new), written in the batch's transaction. Nothing reads it by (app, campaign): the
-- router takes rows in id order and deletes them. Its second index cost an insert per event.
DROP INDEX IF EXISTS outbox_app_campaign;
