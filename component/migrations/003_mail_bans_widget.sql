-- Offline email fallback, bans and incidents, privacy, widget appearance.

-- Queue settings for the offline form, referrals, privacy and the widget.
ALTER TABLE queues ADD COLUMN referral_email TEXT;
ALTER TABLE queues ADD COLUMN max_wait REAL CHECK (max_wait IS NULL OR max_wait > 0);
-- 'full' keeps patrons' addresses, 'network' only the /24 (IPv4) or /48 (IPv6), 'none' none.
ALTER TABLE queues ADD COLUMN privacy TEXT NOT NULL DEFAULT 'full'
    CHECK (privacy IN ('full', 'network', 'none'));
ALTER TABLE queues ADD COLUMN retention_days INTEGER CHECK (retention_days IS NULL OR retention_days > 0);
ALTER TABLE queues ADD COLUMN purge_transcripts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN widget_color TEXT NOT NULL DEFAULT '#0b57d0';
ALTER TABLE queues ADD COLUMN widget_logo TEXT;
ALTER TABLE queues ADD COLUMN greeting TEXT;
ALTER TABLE queues ADD COLUMN text_available TEXT;
ALTER TABLE queues ADD COLUMN text_away TEXT;
ALTER TABLE queues ADD COLUMN text_offline TEXT;
-- Space-separated origins allowed to frame the widget ('*' for any).
ALTER TABLE queues ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '*';

-- Whether operators may ban from their client or only report for admin review.
ALTER TABLE groups ADD COLUMN operators_may_ban INTEGER NOT NULL DEFAULT 1;
ALTER TABLE groups ADD COLUMN appeal_email TEXT;

-- Networks (schools, public library computers) that operators cannot ban.
CREATE TABLE exempt_networks (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    network TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    UNIQUE (group_id, network)
);

-- Tickets: offline questions, max-wait follow-ups and referrals, kept for follow-up.
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('offline', 'referral')),
    queue_id INTEGER NOT NULL REFERENCES queues(id),
    chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    name TEXT,
    email TEXT,
    question TEXT NOT NULL,
    origin_ip TEXT,
    operator_id INTEGER REFERENCES operators(id),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at TEXT NOT NULL
);

-- The mail outbox: written first, sent after; `attempts` and `next_attempt_at` drive retries.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER REFERENCES tickets(id) ON DELETE SET NULL,
    chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    purpose TEXT NOT NULL,
    recipients TEXT NOT NULL,
    message BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at) WHERE status = 'pending';

-- Transcript copies asked for by patrons, sent when the chat ends.
ALTER TABLE chats ADD COLUMN transcript_email TEXT;

-- Bans on an address or network; `lifted_at` set when lifted early.
CREATE TABLE bans (
    id INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    offence INTEGER NOT NULL CHECK (offence >= 1),
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT,
    lifted_at TEXT,
    lifted_by TEXT,
    chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX bans_network ON bans(network);

CREATE TABLE ban_audit (
    id INTEGER PRIMARY KEY,
    ban_id INTEGER NOT NULL REFERENCES bans(id) ON DELETE CASCADE,
    action TEXT NOT NULL CHECK (action IN ('create', 'change', 'lift', 'expire')),
    actor TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

-- Incidents: from tagged chats, bans, rate limits, or an operator's report.
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    address TEXT,
    queue_id INTEGER REFERENCES queues(id) ON DELETE SET NULL,
    reporter TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    explicit INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution TEXT,
    created_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE INDEX incidents_address ON incidents(address);
