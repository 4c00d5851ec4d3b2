-- Conflicts also come from the server: values of this user displaced by
-- writes that had not seen them. Who won, and when the server was told how
-- this laptop settled each one.
ALTER TABLE conflicts ADD COLUMN winner TEXT;
ALTER TABLE conflicts ADD COLUMN settle_sent_at TEXT;
-- A conflict is the same on every replica: record, field, losing clock.
CREATE INDEX conflicts_value ON conflicts (record_id, field, losing_hlc);
