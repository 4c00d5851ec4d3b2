-- Report facts: a narrow copy of what HQ reports compute metrics from, one
-- row per customer and one per visit, sale and feedback entry, derived from
-- the record state in the same write transaction (archived records have no
-- row). The scorecard scans a quarter of facts by (kind, at_us) instead of
-- decoding every record. The server rebuilds both tables from `records` when
-- the meta key `report_facts_version` is missing or stale.
CREATE TABLE report_customers (
    customer_id TEXT PRIMARY KEY,
    owner_id    TEXT,              -- the customer's owner_id field
    created_us  INTEGER            -- created_at, microseconds since the epoch
);
CREATE TABLE report_facts (
    kind          TEXT NOT NULL,   -- visit, sale, feedback
    at_us         INTEGER NOT NULL, -- started_at, sold_at or opened_at (µs)
    record_id     TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    amends        TEXT,            -- visits: the visit it amends
    minor         INTEGER,         -- sales
    minor_digits  INTEGER,
    voided        INTEGER,
    feedback_kind TEXT,            -- feedback
    csat          INTEGER,
    nps           INTEGER,
    resolved_us   INTEGER,         -- feedback resolved (status resolved/closed)
    PRIMARY KEY (kind, at_us, record_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX report_facts_record ON report_facts (record_id);
CREATE INDEX report_facts_resolved ON report_facts (resolved_us) WHERE resolved_us IS NOT NULL;
CREATE INDEX report_facts_amends ON report_facts (amends) WHERE amends IS NOT NULL;
-- Reports read the small collections (goals, courses, ...) without walking visits.
CREATE INDEX records_collection ON records (collection);
