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
