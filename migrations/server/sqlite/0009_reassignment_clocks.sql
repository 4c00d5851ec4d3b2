-- A reassignment carries the server's clock at the moment it happened: an
-- op stamped before it was made while the customer was still the old
-- owner's, and is judged against the owner of that moment. (Rows written
-- before this column existed are judged by their `at` time.)
ALTER TABLE evictions ADD COLUMN hlc TEXT;
CREATE INDEX evictions_customer ON evictions (customer_id);
