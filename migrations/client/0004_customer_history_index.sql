-- A customer's history by time: `customer show --last N` reads the latest
-- N visits (feedback, sales) of a customer off this index instead of
-- sorting all of them; listing a customer's records oldest first uses it
-- the same way.
DROP INDEX records_customer;
CREATE INDEX records_customer ON records (customer_id, collection, at, id);
