-- Client store: one per profile, created by the `fieldsync` CLI
-- (see client-cli/src/store). Times are fixed-width RFC 3339 UTC text.

-- Small key/value facts about this store: the persisted hybrid logical
-- clock (`hlc`), the last allocated `device_seq` (`last_device_seq`), the
-- pull cursor (`cursor`), the last successful sync (`last_sync`) and the
-- server's last clock warning (`clock_warning`, JSON).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Records as the server last sent them: the canonical JSON of
-- `sync_protocol::RecordState` (exactly what `integrity::canonical_json`
-- produces, so scope checksums can be recomputed from this table).
CREATE TABLE server_records (
    id          TEXT PRIMARY KEY,
    collection  TEXT NOT NULL,
    customer_id TEXT,
    state       TEXT NOT NULL
) STRICT;
CREATE INDEX server_records_collection ON server_records (collection);
CREATE INDEX server_records_customer ON server_records (customer_id);

-- Ops written on this device and not yet answered by the server. A row
-- leaves only in the transaction that records its outcome.
CREATE TABLE outbox (
    device_seq INTEGER PRIMARY KEY,
    op_id      TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    op         TEXT NOT NULL,
    written_at TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_record ON outbox (record_id);

-- The local view: server state with pending ops re-applied on top
-- (`RecordState::apply`), materialised for queries. Rebuilt per record
-- whenever its server state or its pending ops change.
CREATE TABLE records (
    id          TEXT PRIMARY KEY,
    collection  TEXT NOT NULL,
    customer_id TEXT,
    -- customers.name, users.username, teams.name: for name look-ups
    name        TEXT,
    -- the workflow state (feedback.status, ...)
    status      TEXT,
    -- the record's main instant: started_at, sold_at, opened_at, created_at
    at          TEXT,
    archived    INTEGER NOT NULL DEFAULT 0,
    pending     INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL
) STRICT;
CREATE INDEX records_collection_at ON records (collection, at);
CREATE INDEX records_customer ON records (customer_id, collection);
CREATE INDEX records_name ON records (collection, name COLLATE NOCASE);

-- Fields on which one of this device's ops lost (a `superseded` outcome).
CREATE TABLE conflicts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id         TEXT NOT NULL,
    collection    TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    field         TEXT NOT NULL,
    losing_value  TEXT NOT NULL,
    winning_value TEXT NOT NULL,
    losing_hlc    TEXT NOT NULL,
    winning_hlc   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    resolved_at   TEXT,
    resolution    TEXT
) STRICT;

-- Ops the server rejected, kept whole so they can be retried or discarded.
CREATE TABLE problems (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id       TEXT NOT NULL,
    collection  TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    op          TEXT NOT NULL,
    code        TEXT NOT NULL,
    message     TEXT NOT NULL,
    field       TEXT,
    created_at  TEXT NOT NULL,
    resolved_at TEXT,
    resolution  TEXT
) STRICT;
