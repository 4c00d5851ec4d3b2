-- A visit or sale counts for the user it is credited to (its
-- `credited_to` field, written by the server where that is not the
-- customer's owner), even after its customer moves to another owner; the
-- report facts keep that user next to the fact (16 bytes). Rows of records
-- written before credits existed keep NULL, which is what their derivation
-- gives (such records count for the customer's owner), so they are not
-- derived again.
ALTER TABLE report_facts ADD COLUMN credited_to BLOB;
