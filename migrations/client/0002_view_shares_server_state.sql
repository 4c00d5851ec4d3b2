-- The local view keeps its own copy of a record's state only while the
-- record has pending ops. Otherwise the view is exactly the server state,
-- and `records.state` is NULL: readers take `server_records.state`
-- instead. A bulk pull then writes each record's JSON once, not twice.
CREATE TABLE records_new (
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
    -- the merged state while ops are pending; NULL: the server state
    state       TEXT,
    CHECK (pending = 0 OR state IS NOT NULL)
) STRICT;
INSERT INTO records_new (id, collection, customer_id, name, status, at, archived, pending, state)
SELECT id, collection, customer_id, name, status, at, archived, pending,
       CASE WHEN pending = 0 AND id IN (SELECT id FROM server_records) THEN NULL ELSE state END
FROM records;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX records_collection_at ON records (collection, at);
CREATE INDEX records_customer ON records (customer_id, collection);
-- Nothing looks records up by name in SQL (names are matched in the
-- program over a collection's records), nor server records by collection.
DROP INDEX server_records_collection;
