-- Shift hand-over notes: one current note per queue, written with `!handover <text>` on
-- the queue JID and given to the next operator (not its author) who comes online in the
-- queue. Delivery does not delete it: `!handover` still shows it, with who got it.
CREATE TABLE handover_notes (
    queue_id INTEGER PRIMARY KEY REFERENCES queues(id) ON DELETE CASCADE,
    author_jid TEXT NOT NULL,
    author_name TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    delivered_to TEXT,
    delivered_at TEXT
);

-- Operator lines corrected from the operator's client (XEP-0308): the transcript keeps
-- the final text and says when it was corrected.
ALTER TABLE chat_events ADD COLUMN corrected_at TEXT;

-- Default canned messages the staff practice asks for.
INSERT OR IGNORE INTO canned_messages (scope, name, text) VALUES
 ('global', 'closing-time', 'We are closing for today and your question needs more time than we have left. Leave us your email address and we will follow up by email on the next business day.');
UPDATE canned_messages SET text = 'May I ask whether you are a member of the community this service is for (for example a student, staff member or resident we serve)?'
 WHERE scope = 'global' AND name = 'member';
