-- A problem can be decided on the server by a reviewer (applied or
-- discarded): `resolution` then says which, `decided_by` names the
-- reviewer and `reason` says why it was discarded.
ALTER TABLE problems ADD COLUMN decided_by TEXT;
ALTER TABLE problems ADD COLUMN reason TEXT;
CREATE INDEX problems_open_op ON problems (op_id) WHERE resolved_at IS NULL;
