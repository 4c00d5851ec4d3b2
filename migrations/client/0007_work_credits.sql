-- A visit or sale counts for the user the server credited it to (its
-- `credited_to` field), even after its customer moved to another owner: a
-- query column of the view, so that computing figures reads it without
-- parsing every visit.
ALTER TABLE records ADD COLUMN credited_to TEXT;

UPDATE records
SET credited_to = json_extract(v.state, '$.fields.credited_to.value')
FROM (SELECT r.id, coalesce(r.state, s.state) AS state
      FROM records r LEFT JOIN server_records s ON s.id = r.id
      WHERE r.collection IN ('visits', 'sales')) AS v
WHERE records.id = v.id AND json_valid(v.state);
