-- Signed-in dashboard sessions. A session cookie is signed, and is good
-- only while its row is here: signing out deletes the row, a password
-- reset or a deactivation deletes all of the user's rows, on every
-- instance at once.
CREATE TABLE dashboard_sessions (
    id_hash       BLOB PRIMARY KEY,              -- SHA-256 of the cookie's session id
    user_id       TEXT NOT NULL REFERENCES users (id),
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at_ms);
