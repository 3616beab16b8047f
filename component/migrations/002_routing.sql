-- Routing, service hours, rollover, on-call escalation, canned messages, links, tags.
ALTER TABLE queues ADD COLUMN offer_timeout REAL NOT NULL DEFAULT 30 CHECK (offer_timeout > 0);
ALTER TABLE queues ADD COLUMN rollover_after REAL CHECK (rollover_after IS NULL OR rollover_after > 0);
ALTER TABLE queues ADD COLUMN backup_queue_id INTEGER REFERENCES queues(id) ON DELETE SET NULL;
ALTER TABLE queues ADD COLUMN hours TEXT NOT NULL DEFAULT 'always';
ALTER TABLE queues ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
-- Comma-separated ISO dates on which the queue is closed (holidays).
ALTER TABLE queues ADD COLUMN closed_days TEXT NOT NULL DEFAULT '';
ALTER TABLE queues ADD COLUMN escalation TEXT;

ALTER TABLE queue_operators ADD COLUMN on_call INTEGER NOT NULL DEFAULT 0;

-- scope: 'global' (both ids NULL), 'group' (group_id set) or 'queue' (queue_id set).
-- The most specific text of a name wins for a chat.
CREATE TABLE canned_messages (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('global', 'group', 'queue')),
    group_id INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    queue_id INTEGER REFERENCES queues(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    CHECK ((scope = 'global' AND group_id IS NULL AND queue_id IS NULL)
        OR (scope = 'group' AND group_id IS NOT NULL AND queue_id IS NULL)
        OR (scope = 'queue' AND queue_id IS NOT NULL AND group_id IS NULL))
);
CREATE UNIQUE INDEX canned_unique ON canned_messages(
    scope, COALESCE(group_id, 0), COALESCE(queue_id, 0), name);

INSERT INTO canned_messages (scope, name, text) VALUES
 ('global', 'greeting', 'Hello! Thanks for contacting us. How can I help you today?'),
 ('global', 'goodbye', 'Thanks for chatting with us. You can ask for a copy of this chat by email before you close the window. Goodbye!'),
 ('global', 'anything-else', 'Is there anything else I can help you with?'),
 ('global', 'helping-two-users', 'I''m helping another person at the moment; please bear with me, I''ll be right with you.'),
 ('global', 'transfer', 'I''m transferring you to a colleague who can help with this. Please stay in the chat.'),
 ('global', 'end-of-shift', 'My shift is ending, so I''m handing you over to a colleague who will continue from here. Please stay in the chat.'),
 ('global', 'member', 'Are you a member of our community (a student, staff member or resident we serve)?'),
 ('global', 'out-of-scope', 'That question is outside what we can help with here; your local library will be glad to help.'),
 ('global', 'refer', 'I''d like to refer this to a specialist by email. What email address should they write to?'),
 ('global', 'more-time', 'This needs more time than a chat allows. We''ll look into it and email you an answer.'),
 ('global', 'goodbye-inappropriate', 'This chat service is for questions to the library. As this chat is not one, I''m ending it now. Goodbye.');

CREATE TABLE group_links (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE chat_tags (
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    operator_id INTEGER REFERENCES operators(id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (chat_id, tag)
) WITHOUT ROWID;
CREATE INDEX chat_tags_tag ON chat_tags(tag);

-- Chats remember the time of the patron's first question (wait times, statistics).
ALTER TABLE chats ADD COLUMN asked_at TEXT;
