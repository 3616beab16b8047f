-- The highest patron message of each chat handed to the XMPP stream, so that messages
-- acknowledged to a patron but not yet relayed when the process stopped go out on start.
ALTER TABLE chats ADD COLUMN relayed_seq INTEGER NOT NULL DEFAULT 0;
