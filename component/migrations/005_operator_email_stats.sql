-- On-call operators can be reached by email too; statistics read chats by time.
ALTER TABLE operators ADD COLUMN email TEXT;
CREATE INDEX chats_asked ON chats(asked_at) WHERE asked_at IS NOT NULL;
CREATE INDEX chats_queue_asked ON chats(queue_id, asked_at);
CREATE INDEX chat_events_text_chat ON chat_events(chat_id, kind);
