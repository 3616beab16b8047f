-- Admin accounts, their sessions, and the record of login attempts (throttling).
CREATE TABLE admins (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'coordinator')),
    group_id INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    CHECK ((role = 'admin' AND group_id IS NULL) OR (role = 'coordinator' AND group_id IS NOT NULL))
);

CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE login_attempts (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    address TEXT,
    ok INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX login_attempts_recent ON login_attempts(username, created_at);
CREATE INDEX login_attempts_address ON login_attempts(address, created_at);
