-- The pull's scope indexes hold only the records that have the key. A
-- record belongs to a customer, or is about a user or a team, rarely more
-- than one of them: a visit, say, has no subject user or team. Indexed
-- whole, every visit left two entries keyed by NULL that no pull reads,
-- and writing them was a quarter of a visit's index writes. Every query on
-- these columns compares them with a value (`=`, `IN`, a join), which a
-- NULL never matches, so the partial indexes serve the same queries.
DROP INDEX records_customer_seq;
DROP INDEX records_subject_user_seq;
DROP INDEX records_subject_team_seq;
CREATE INDEX records_customer_seq ON records (customer_id, seq) WHERE customer_id IS NOT NULL;
CREATE INDEX records_subject_user_seq ON records (subject_user, seq) WHERE subject_user IS NOT NULL;
CREATE INDEX records_subject_team_seq ON records (subject_team, seq) WHERE subject_team IS NOT NULL;
