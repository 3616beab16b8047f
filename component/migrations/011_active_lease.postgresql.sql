-- The active lock's lease, as the database saw it: the holder's last confirmation that it
-- holds the lock (renewed_at, the database's clock) and whether it gave the lock up
-- cleanly. A process that takes the lock reads it to wait only as long as an old holder
-- may still be serving (see component/store/active.py). One row; a NULL renewed_at that
-- is not released means no holder has recorded a renewal yet: a new holder waits the
-- whole fence.
CREATE TABLE refdesk_active_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    renewed_at TIMESTAMPTZ,
    released BOOLEAN NOT NULL DEFAULT FALSE
);
-- Released when no process holds the active lock (7262002) now: every process that has
-- served on this database ran this migration before serving, so none is serving. When a
-- process holds it (the active one migrating at its start), the first holder after it
-- waits the whole fence.
INSERT INTO refdesk_active_lease (id, released) SELECT 1, NOT EXISTS (
    SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 7262002 AND granted
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
);
