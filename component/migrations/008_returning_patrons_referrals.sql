-- The moderation loop: referral limits per group.

-- Domains `!refer` may send to, comma-separated ASCII (subdomains included); '' for any.
ALTER TABLE groups ADD COLUMN referral_domains TEXT NOT NULL DEFAULT '';

-- Sticky pickup: the operator who ended a patron's chat as inappropriate is offered that
-- patron's next chats first, until `expires_at`. `key` is the address or network as the
-- queue's privacy mode allowed it to be kept (never written under 'none').
CREATE TABLE sticky_pickups (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    operator_jid TEXT NOT NULL,
    chat_id INTEGER NOT NULL,
    why TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    UNIQUE (key, operator_jid)
);
CREATE INDEX sticky_pickups_expiry ON sticky_pickups(expires_at);

-- Shared-computer contacts: whom to write to about an exempt network (a school's or a
-- library's public PCs) instead of banning it, and the messages drafted for an admin.
ALTER TABLE exempt_networks ADD COLUMN contact_email TEXT;
CREATE TABLE exempt_contact_drafts (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    network TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    -- Comma-separated ids of the incidents the draft describes.
    incidents TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'sent')),
    created_at TEXT NOT NULL,
    sent_at TEXT,
    sent_by TEXT,
    mail_id INTEGER REFERENCES mail_outbox(id) ON DELETE SET NULL
);
CREATE INDEX exempt_contact_drafts_group ON exempt_contact_drafts(group_id, status);
