-- Groups, queues, operators, chats and the numbered transcript of each chat.
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    group_id INTEGER NOT NULL REFERENCES groups(id),
    title TEXT NOT NULL,
    routing TEXT NOT NULL DEFAULT 'ring-all' CHECK (routing IN ('ring-all', 'round-robin')),
    followup_email TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE operators (
    id INTEGER PRIMARY KEY,
    jid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    max_chats INTEGER NOT NULL DEFAULT 3 CHECK (max_chats > 0),
    created_at TEXT NOT NULL
);

-- subscription: 'none' (not asked yet), 'asked', 'granted' (we receive their presence).
CREATE TABLE queue_operators (
    queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
    operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    subscription TEXT NOT NULL DEFAULT 'none',
    PRIMARY KEY (queue_id, operator_id)
);

CREATE TABLE chats (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL REFERENCES queues(id),
    guest TEXT NOT NULL UNIQUE,
    resume_hash TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    operator_id INTEGER REFERENCES operators(id),
    origin_ip TEXT,
    referrer TEXT,
    created_at TEXT NOT NULL,
    accepted_at TEXT,
    ended_at TEXT,
    ended_by TEXT
);
CREATE INDEX chats_open ON chats(state) WHERE state IN ('waiting', 'offered', 'active');

CREATE TABLE chat_events (
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    operator_id INTEGER REFERENCES operators(id),
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    client_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (chat_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX chat_events_client_id ON chat_events(chat_id, client_id)
    WHERE client_id IS NOT NULL;
