-- A push looks its ops up by op id: an op a device sends again under a new
-- device (a profile restored from a backup) is answered as a replay, and a
-- device_seq reused for another op is told from a replay.
CREATE INDEX ops_user_op_id ON ops (user_id, op_id);
