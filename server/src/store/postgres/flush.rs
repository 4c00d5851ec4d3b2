//! Sending the writes a write transaction keeps behind, as one statement.

use super::Tx;
use super::batch::Batch;
use super::behind;
use super::behind::Behind;
use super::rows::{is_unique_violation, seq};
use crate::store::{OpRow, RecordRow, RecordScope, StoreError};
use postgres::types::ToSql;
use sync_protocol::RecordId;

/// Upsert kept record rows.
pub(super) fn add_records<'a>(batch: &mut Batch<'a>, records: &'a [RecordRow]) {
    if records.is_empty() {
        return;
    }
    let id: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    let collection: Vec<&str> = records.iter().map(|r| r.collection.as_str()).collect();
    let seqs: Vec<i64> = records.iter().map(|r| seq(r.seq)).collect();
    let state: Vec<&str> = records.iter().map(|r| r.state.as_str()).collect();
    let text = |f: fn(&RecordScope) -> Option<String>| -> Vec<Option<String>> {
        records.iter().map(|r| f(&r.scope)).collect()
    };
    let customer = text(|s| s.customer_id.map(|c| c.to_string()));
    let user = text(|s| s.subject_user.map(|u| u.to_string()));
    let team = text(|s| s.subject_team.map(|t| t.to_string()));
    let public: Vec<bool> = records.iter().map(|r| r.scope.public).collect();
    batch.add(
        "INSERT INTO records (id, collection, seq, state, customer_id, subject_user, subject_team, public) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[]) \
         ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, seq = excluded.seq, state = excluded.state, customer_id = excluded.customer_id, \
         subject_user = excluded.subject_user, subject_team = excluded.subject_team, public = excluded.public",
        vec![
            Box::new(id),
            Box::new(collection),
            Box::new(seqs),
            Box::new(state),
            Box::new(customer),
            Box::new(user),
            Box::new(team),
            Box::new(public),
        ],
    );
}

/// Replace report fact rows: records whose row is gone are removed, the
/// others upserted (disjoint keys, so both go in one batch).
pub(super) fn add_facts<'a>(batch: &mut Batch<'a>, facts: &'a [behind::FactWrite]) {
    use crate::store::facts::FactRow;
    let gone = |customer: bool| -> Vec<&'a RecordId> {
        facts
            .iter()
            .filter(|(_, c, row)| *c == customer && row.is_none())
            .map(|(id, _, _)| id)
            .collect()
    };
    let gone_customers: Vec<String> = gone(true).iter().map(ToString::to_string).collect();
    if !gone_customers.is_empty() {
        batch.add(
            "DELETE FROM report_customers WHERE customer_id = ANY($1::text[])",
            vec![Box::new(gone_customers)],
        );
    }
    let gone_facts: Vec<&[u8]> = gone(false)
        .iter()
        .map(|id| id.0.as_bytes().as_slice())
        .collect();
    if !gone_facts.is_empty() {
        batch.add(
            "DELETE FROM report_facts WHERE record_id = ANY($1::bytea[])",
            vec![Box::new(gone_facts)],
        );
    }
    let (mut c_id, mut c_owner, mut c_created) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for (id, _, row) in facts {
        match row {
            None => {}
            Some(FactRow::Customer {
                owner_id,
                created_us,
            }) => {
                c_id.push(id.to_string());
                c_owner.push(owner_id.as_deref());
                c_created.push(*created_us);
            }
            Some(FactRow::Fact(c)) => rows.push((id, c)),
        }
    }
    if !c_id.is_empty() {
        batch.add(
            "INSERT INTO report_customers (customer_id, owner_id, created_us) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id, created_us = excluded.created_us",
            vec![Box::new(c_id), Box::new(c_owner), Box::new(c_created)],
        );
    }
    if rows.is_empty() {
        return;
    }
    let record: Vec<&[u8]> = rows
        .iter()
        .map(|(id, _)| id.0.as_bytes().as_slice())
        .collect();
    let kind: Vec<&str> = rows.iter().map(|(_, c)| c.kind).collect();
    let at: Vec<i64> = rows.iter().map(|(_, c)| c.at_us).collect();
    let customer: Vec<&[u8]> = rows
        .iter()
        .map(|(_, c)| c.customer_id.0.as_bytes().as_slice())
        .collect();
    let amends: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|(_, c)| c.amends.as_ref().map(|a| a.0.as_bytes().as_slice()))
        .collect();
    let credited: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|(_, c)| c.credited_to.as_ref().map(|u| u.0.as_bytes().as_slice()))
        .collect();
    let num = |f: fn(&crate::store::facts::FactColumns) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(|(_, c)| f(c)).collect()
    };
    let feedback_kind: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, c)| c.feedback_kind.as_deref())
        .collect();
    batch.add(
        "INSERT INTO report_facts (record_id, kind, at_us, customer_id, amends, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us, credited_to) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bytea[]) \
         ON CONFLICT (record_id) DO UPDATE SET kind = excluded.kind, at_us = excluded.at_us, customer_id = excluded.customer_id, amends = excluded.amends, \
         minor = excluded.minor, minor_digits = excluded.minor_digits, voided = excluded.voided, feedback_kind = excluded.feedback_kind, \
         csat = excluded.csat, nps = excluded.nps, resolved_us = excluded.resolved_us, credited_to = excluded.credited_to",
        vec![
            Box::new(record),
            Box::new(kind),
            Box::new(at),
            Box::new(customer),
            Box::new(amends),
            Box::new(num(|c| c.minor)),
            Box::new(num(|c| c.minor_digits)),
            Box::new(num(|c| c.voided)),
            Box::new(feedback_kind),
            Box::new(num(|c| c.csat)),
            Box::new(num(|c| c.nps)),
            Box::new(num(|c| c.resolved_us)),
            Box::new(credited),
        ],
    );
}

/// Insert kept ops.
pub(super) fn add_ops<'a>(batch: &mut Batch<'a>, ops: &'a [OpRow]) {
    if ops.is_empty() {
        return;
    }
    let device: Vec<String> = ops.iter().map(|o| o.device_id.to_string()).collect();
    let device_seq: Vec<i64> = ops.iter().map(|o| seq(o.device_seq)).collect();
    let op_id: Vec<String> = ops.iter().map(|o| o.op_id.to_string()).collect();
    let user: Vec<String> = ops.iter().map(|o| o.user_id.to_string()).collect();
    let op: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    let outcome: Vec<&str> = ops.iter().map(|o| o.outcome.as_str()).collect();
    let at: Vec<&str> = ops.iter().map(|o| o.at.as_str()).collect();
    batch.add(
        "INSERT INTO ops (device_id, device_seq, op_id, user_id, op, outcome, at) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
        vec![
            Box::new(device),
            Box::new(device_seq),
            Box::new(op_id),
            Box::new(user),
            Box::new(op),
            Box::new(outcome),
            Box::new(at),
        ],
    );
}

impl Tx<'_> {
    /// An [`OPENING_META`](super::opening::OPENING_META) value: kept behind, else as first read.
    pub(super) fn opening_value(&self, key: &str) -> Option<String> {
        self.behind
            .as_ref()
            .and_then(|b| b.pending_meta(key))
            .or_else(|| self.opening_meta.get(key).map(String::as_str))
            .map(str::to_owned)
    }

    /// A user row is about to change: forget the ones read earlier.
    pub(super) fn forget_users(&mut self) {
        if let Some(b) = &mut self.behind {
            b.known.users.clear();
        }
    }

    pub(super) fn behind_mut(&mut self) -> Result<&mut Behind, StoreError> {
        self.behind
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("a write in a read-only transaction".into()))
    }

    /// Send the writes kept behind, when there are enough of them.
    pub(super) fn flush_if_full(&mut self) -> Result<(), StoreError> {
        if self.behind.as_ref().is_some_and(Behind::full) {
            self.flush()?;
        }
        Ok(())
    }

    /// Send the writes kept behind, as one statement ([`Batch`]).
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        let Some(b) = self.behind.as_mut() else {
            return Ok(());
        };
        let p = b.take();
        b.records_sent += p.records.rows().len() as u64;
        let mut batch = Batch::default();
        if let Some(h) = p.head {
            batch.add(
                "UPDATE change_seq SET head = $1 WHERE id = 1",
                vec![Box::new(seq(h))],
            );
        }
        add_records(&mut batch, p.records.rows());
        add_facts(&mut batch, p.facts.rows());
        let owners = p.owners.rows();
        if !owners.is_empty() {
            let customer: Vec<String> = owners.iter().map(|(c, _)| c.to_string()).collect();
            let owner: Vec<String> = owners.iter().map(|(_, o)| o.to_string()).collect();
            batch.add(
                "INSERT INTO customer_owners (customer_id, owner_id) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id",
                vec![Box::new(customer), Box::new(owner)],
            );
        }
        add_ops(&mut batch, &p.ops);
        let check_ins = p.check_ins.rows();
        if !check_ins.is_empty() {
            let visit: Vec<String> = check_ins.iter().map(|c| c.visit_id.to_string()).collect();
            let user: Vec<String> = check_ins.iter().map(|c| c.user_id.to_string()).collect();
            let started: Vec<i64> = check_ins.iter().map(|c| c.started_at_ms).collect();
            let lat: Vec<f64> = check_ins.iter().map(|c| c.at.lat).collect();
            let lon: Vec<f64> = check_ins.iter().map(|c| c.at.lon).collect();
            batch.add(
                "INSERT INTO check_ins (visit_id, user_id, started_at_ms, lat, lon) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::float8[]) \
                 ON CONFLICT (visit_id) DO UPDATE SET user_id = excluded.user_id, started_at_ms = excluded.started_at_ms, lat = excluded.lat, lon = excluded.lon",
                vec![Box::new(visit), Box::new(user), Box::new(started), Box::new(lat), Box::new(lon)],
            );
        }
        let meta = p.meta.rows();
        if !meta.is_empty() {
            let key: Vec<&str> = meta.iter().map(|(k, _)| k.as_str()).collect();
            let value: Vec<&str> = meta.iter().map(|(_, v)| v.as_str()).collect();
            batch.add(
                "INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vec![Box::new(key), Box::new(value)],
            );
        }
        let devices = p.devices.rows();
        if !devices.is_empty() {
            let id: Vec<Option<String>> = devices
                .iter()
                .map(|d| d.id.map(|i| i.to_string()))
                .collect();
            let seen: Vec<Option<&str>> =
                devices.iter().map(|d| d.last_seen_at.as_deref()).collect();
            let acked: Vec<Option<i64>> =
                devices.iter().map(|d| d.acked_through.map(seq)).collect();
            let drift: Vec<Option<i64>> = devices.iter().map(|d| d.clock_drift_ms).collect();
            // NULL leaves a column as it is: none of these is ever set to NULL.
            batch.add(
                "UPDATE devices d SET last_seen_at = coalesce(u.seen, d.last_seen_at), \
                 acked_through = coalesce(u.acked, d.acked_through), clock_drift_ms = coalesce(u.drift, d.clock_drift_ms) \
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u (id, seen, acked, drift) WHERE d.id = u.id",
                vec![Box::new(id), Box::new(seen), Box::new(acked), Box::new(drift)],
            );
        }
        if batch.is_empty() {
            return Ok(());
        }
        let sql = batch.sql();
        self.exec(&sql, &batch.args())?;
        Ok(())
    }

    /// Flush first when device bookkeeping is kept behind: the caller reads
    /// or writes `devices` directly.
    pub(super) fn flush_devices(&mut self) -> Result<(), StoreError> {
        if self
            .behind
            .as_ref()
            .is_some_and(|b| !b.pending.devices.rows().is_empty())
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Run `sql` inside a savepoint so a unique violation can be answered
    /// with [`StoreError::Taken`] and the transaction stays usable.
    pub(super) fn insert_unique(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
        taken: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.t.batch_execute("SAVEPOINT fs_unique")?;
        match self.exec(sql, args) {
            Ok(_) => {
                self.t.batch_execute("RELEASE SAVEPOINT fs_unique")?;
                Ok(())
            }
            Err(e) if is_unique_violation(&e) => {
                self.t.batch_execute("ROLLBACK TO SAVEPOINT fs_unique")?;
                Err(StoreError::Taken(taken()))
            }
            Err(e) => Err(e),
        }
    }
}
