-- A deactivation carries the server's clock at that moment: the user's
-- devices may still hand over the ops they wrote before it (push only),
-- never one stamped after. NULL while the user is active, and for users
-- deactivated before this column existed (nothing of theirs is taken).
ALTER TABLE users ADD COLUMN deactivated_hlc TEXT;
