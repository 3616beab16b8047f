-- The moderation loop: coordinators of a group, incident outcomes, and the trail of
-- notices refdesk sent about bans, incidents and staffing (who was told what, when).
ALTER TABLE groups ADD COLUMN coordinator_emails TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN outcome TEXT;
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY,
    -- 'ban', 'lift', 'ban-notice', 'incident', 'outcome', 'unstaffed', 'staffed'
    purpose TEXT NOT NULL,
    incident_id INTEGER REFERENCES incidents(id) ON DELETE CASCADE,
    ban_id INTEGER REFERENCES bans(id) ON DELETE CASCADE,
    chat_id INTEGER REFERENCES chats(id) ON DELETE SET NULL,
    queue_id INTEGER REFERENCES queues(id) ON DELETE SET NULL,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'xmpp')),
    recipient TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE INDEX notifications_incident ON notifications(incident_id);
CREATE INDEX notifications_ban ON notifications(ban_id);
