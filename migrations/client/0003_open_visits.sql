-- Two more query columns in the local view, so that finding this user's
-- open visit reads a handful of rows instead of parsing every visit:
--   open   = 1 for a visit without `ended_at`;
--   amends = the visit a correction replaces (`visits.amends`).
-- `at` becomes the UTC form `format_ts` writes (fixed width, `…:SS.sssZ`)
-- wherever it parses as an instant, so that ranges over it (`visit list
-- --since`) compare correctly as text.
ALTER TABLE records ADD COLUMN open INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN amends TEXT;

UPDATE records
SET open = CASE WHEN coalesce(json_type(v.state, '$.fields.ended_at.value'), 'null') = 'null'
                THEN 1 ELSE 0 END,
    amends = json_extract(v.state, '$.fields.amends.value')
FROM (SELECT r.id, coalesce(r.state, s.state) AS state
      FROM records r LEFT JOIN server_records s ON s.id = r.id
      WHERE r.collection = 'visits') AS v
WHERE records.id = v.id AND json_valid(v.state);

UPDATE records
SET at = strftime('%Y-%m-%dT%H:%M:%fZ', at)
WHERE at IS NOT NULL
  AND NOT (length(at) = 24 AND substr(at, 20, 1) = '.' AND substr(at, 24, 1) = 'Z')
  AND length(at) > 10
  AND strftime('%Y-%m-%dT%H:%M:%fZ', at) IS NOT NULL;

CREATE INDEX records_open ON records (collection) WHERE open = 1;
CREATE INDEX records_amends ON records (amends) WHERE amends IS NOT NULL;
