-- A push looks its ops up by op id: an op a device sends again under a new
-- device (a profile restored from a backup) is answered as a replay, and a
-- device_seq reused for another op is told from a replay. (On op_id alone:
-- the narrowest key, cheapest to keep up at every stored op.)
CREATE INDEX ops_op_id ON ops (op_id);
