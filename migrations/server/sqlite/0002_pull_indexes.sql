-- A pull seeks each scope branch by (key, seq) instead of walking every change
-- after the cursor: customers a user owns, records about a user or a team, and
-- public records, each bounded by the pull's seq range.
DROP INDEX records_customer;
DROP INDEX records_subject_user;
DROP INDEX records_subject_team;
CREATE INDEX records_customer_seq ON records (customer_id, seq);
CREATE INDEX records_subject_user_seq ON records (subject_user, seq);
CREATE INDEX records_subject_team_seq ON records (subject_team, seq);
CREATE INDEX records_public_seq ON records (seq) WHERE public = 1;
DROP INDEX customer_owners_owner;
CREATE INDEX customer_owners_owner ON customer_owners (owner_id, customer_id);
CREATE INDEX evictions_from_owner_seq ON evictions (from_owner, seq);
