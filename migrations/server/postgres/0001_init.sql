-- Server store (PostgreSQL): the same tables as migrations/server/sqlite/0001_init.sql.
-- Times are fixed-width RFC 3339 UTC text (2026-01-02T03:04:05.123Z) or integer milliseconds.
-- Ids are UUID text, so rows compare byte for byte with the SQLite store.

-- Small key/value facts: the server's own device id and its persisted clock.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The one commit-order sequence: every committed change takes the next number.
-- Writers take it under a transaction-scoped advisory lock held to commit, so
-- numbers become visible in order (see ARCHITECTURE.md, sequence visibility).
CREATE TABLE change_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    head BIGINT NOT NULL
);
INSERT INTO change_seq (id, head) VALUES (1, 0);

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    region     TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('rep', 'supervisor', 'hq', 'admin')),
    team_id       TEXT REFERENCES teams (id),
    supervisor_id TEXT REFERENCES users (id),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TEXT NOT NULL
);
CREATE INDEX users_team ON users (team_id);
CREATE INDEX users_supervisor ON users (supervisor_id);

-- A device token is stored only as its SHA-256 hash.
CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    name           TEXT NOT NULL,
    token_hash     BYTEA NOT NULL UNIQUE,
    created_at     TEXT NOT NULL,
    last_seen_at   TEXT,
    revoked_at     TEXT,                 -- the device is revoked (lost laptop): refused everything
    logged_out_at  TEXT,                 -- its current token was revoked by a logout
    acked_through  BIGINT NOT NULL DEFAULT 0,
    clock_drift_ms BIGINT
);
CREATE INDEX devices_user ON devices (user_id);

-- Failed logins, counted for rate limiting (shared by every server instance).
CREATE TABLE login_failures (
    id       BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    address  TEXT NOT NULL,
    at_ms    BIGINT NOT NULL
);
CREATE INDEX login_failures_username ON login_failures (username, at_ms);
CREATE INDEX login_failures_address ON login_failures (address, at_ms);
CREATE INDEX login_failures_at ON login_failures (at_ms);

-- Current state of every synced record, with its latest change number and scope columns.
CREATE TABLE records (
    id           TEXT PRIMARY KEY,
    collection   TEXT NOT NULL,
    seq          BIGINT NOT NULL UNIQUE,
    state        TEXT NOT NULL,          -- sync_protocol::integrity::canonical_json
    customer_id  TEXT,                   -- the customer unit the record belongs to
    subject_user TEXT,                   -- the user it is about
    subject_team TEXT,                   -- the team it is about
    public       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX records_customer ON records (customer_id);
CREATE INDEX records_subject_user ON records (subject_user);
CREATE INDEX records_subject_team ON records (subject_team);

-- Who owns each customer (the unit of scope).
CREATE TABLE customer_owners (
    customer_id TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL
);
CREATE INDEX customer_owners_owner ON customer_owners (owner_id);

-- A customer left its previous owner's scope.
CREATE TABLE evictions (
    seq         BIGINT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    from_owner  TEXT NOT NULL,
    to_owner    TEXT NOT NULL,
    at          TEXT NOT NULL
);

-- Every op received, with its stored outcome: the op log and the replay table.
CREATE TABLE ops (
    device_id  TEXT NOT NULL,
    device_seq BIGINT NOT NULL,
    op_id      TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    op         TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (device_id, device_seq)
);

-- Rejected ops, kept for review.
CREATE TABLE problems (
    id         BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    op         TEXT NOT NULL,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    field      TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX problems_user ON problems (user_id);

-- Field conflicts lost by pushed ops.
CREATE TABLE conflicts (
    id            BIGSERIAL PRIMARY KEY,
    record_id     TEXT NOT NULL,
    collection    TEXT NOT NULL,
    op_id         TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    field         TEXT NOT NULL,
    losing_value  TEXT NOT NULL,
    winning_value TEXT NOT NULL,
    losing_hlc    TEXT NOT NULL,
    winning_hlc   TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX conflicts_record ON conflicts (record_id);

-- GPS check-ins per rep, for the impossible-travel check.
CREATE TABLE check_ins (
    visit_id      TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    lat           DOUBLE PRECISION NOT NULL,
    lon           DOUBLE PRECISION NOT NULL
);
CREATE INDEX check_ins_user ON check_ins (user_id, started_at_ms);
