-- Lines the service writes to patrons keep their code and parameters, so the widget can
-- show them in the patron's language (the text column keeps the English rendering).
ALTER TABLE chat_events ADD COLUMN code TEXT;
ALTER TABLE chat_events ADD COLUMN params TEXT;

-- End-of-chat feedback: a queue may ask for it; a chat is rated at most once.
ALTER TABLE queues ADD COLUMN feedback INTEGER NOT NULL DEFAULT 0;
CREATE TABLE chat_ratings (
    chat_id INTEGER PRIMARY KEY REFERENCES chats(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment TEXT,
    created_at TEXT NOT NULL
);
