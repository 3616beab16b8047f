-- The language of the transcript copy a patron asked for ("en" or "es"), kept with the
-- address it goes to: a copy asked for from a Spanish page comes in Spanish even when
-- refdesk restarts after the patron's page has gone (it used to be kept in memory only).
ALTER TABLE chats ADD COLUMN transcript_lang TEXT;
