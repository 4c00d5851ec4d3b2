-- A conflict names both sides: whose value lost and whose value won (user
-- and device; empty where the server itself wrote the value), and, once
-- settled, when and how.
ALTER TABLE conflicts ADD COLUMN loser_user_id TEXT;
ALTER TABLE conflicts ADD COLUMN loser_device_id TEXT;
ALTER TABLE conflicts ADD COLUMN winner_user_id TEXT;
ALTER TABLE conflicts ADD COLUMN winner_device_id TEXT;
ALTER TABLE conflicts ADD COLUMN resolved_at TEXT;
ALTER TABLE conflicts ADD COLUMN resolution TEXT;
-- Before base clocks a conflict was recorded when the pushed op lost: its
-- author is the loser.
UPDATE conflicts SET loser_user_id = user_id;
CREATE INDEX conflicts_open_loser ON conflicts (loser_user_id) WHERE resolved_at IS NULL;
