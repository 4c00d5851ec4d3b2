-- A problem is decided by a supervisor (of the rep's team) or HQ or an
-- admin: applied (its op checked again under the current rules, as the
-- approver's decision) or discarded (with a reason). Either way the row
-- stays, with who decided and when: the audit trail. The op's id is a
-- column of its own, so that a device can ask what became of the ops it
-- holds as problems.
ALTER TABLE problems ADD COLUMN op_id TEXT;
UPDATE problems SET op_id = json_extract(op, '$.op_id');
ALTER TABLE problems ADD COLUMN decision TEXT;
ALTER TABLE problems ADD COLUMN decided_by TEXT;
ALTER TABLE problems ADD COLUMN decided_at TEXT;
ALTER TABLE problems ADD COLUMN reason TEXT;
CREATE INDEX problems_user_op ON problems (user_id, op_id);
