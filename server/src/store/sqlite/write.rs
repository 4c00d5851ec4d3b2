//! Writes of records and of a push's bookkeeping (ops, problems, conflicts, check-ins).

use super::Tx;
use super::rows::Cached;
use crate::store::{
    CheckIn, ConflictRow, DecisionRow, OpRow, ProblemRow, RecordRow, RecordWrite, StoreError,
    WriteTx,
};
use rusqlite::params;
use sync_protocol::ownership::Reassignment;
use sync_protocol::wire::Settlement;
use sync_protocol::{RecordId, UserId};

impl WriteTx for Tx<'_> {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.c.exec("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])?;
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        // Two statements, not `UPDATE … RETURNING`: SQLite runs a RETURNING
        // statement in a statement transaction, and closing one inside the
        // writer's savepoint truncates the in-memory sub-journal by walking
        // it from its start, 1 KiB chunk by chunk. In 4 MiB pushes of visits
        // spread over weeks, that walk was 40 % of the server's CPU.
        self.c
            .exec("UPDATE change_seq SET head = head + 1 WHERE id = 1", [])?;
        let h: i64 = self
            .c
            .row("SELECT head FROM change_seq WHERE id = 1", [], |r| r.get(0))?;
        Ok(h as u64)
    }
}

impl RecordWrite for Tx<'_> {
    fn put_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO records (id, collection, seq, state, customer_id, subject_user, subject_team, public) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, seq = excluded.seq, state = excluded.state, customer_id = excluded.customer_id, \
             subject_user = excluded.subject_user, subject_team = excluded.subject_team, public = excluded.public",
            params![
                r.id.to_string(),
                r.collection,
                r.seq as i64,
                r.state,
                r.scope.customer_id.map(|c| c.to_string()),
                r.scope.subject_user.map(|u| u.to_string()),
                r.scope.subject_team.map(|t| t.to_string()),
                r.scope.public
            ],
        )?;
        crate::store::facts::on_put(self, r)
    }

    fn set_record_seq(&mut self, id: RecordId, seq: u64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE records SET seq = ?2 WHERE id = ?1",
            params![id.to_string(), seq as i64],
        )?;
        Ok(())
    }

    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO customer_owners (customer_id, owner_id) VALUES (?1, ?2) ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id",
            [customer.to_string(), owner.to_string()],
        )?;
        Ok(())
    }

    fn add_eviction(
        &mut self,
        seq: u64,
        customer: RecordId,
        change: &Reassignment,
        at: &str,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO evictions (seq, customer_id, from_owner, to_owner, at, hlc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![seq as i64, customer.to_string(), change.from.to_string(), change.to.to_string(), at, change.hlc.to_string()],
        )?;
        Ok(())
    }

    fn add_op(&mut self, o: &OpRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO ops (device_id, device_seq, op_id, user_id, op, outcome, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![o.device_id.to_string(), o.device_seq as i64, o.op_id.to_string(), o.user_id.to_string(), o.op, o.outcome, o.at],
        )?;
        Ok(())
    }

    fn add_problem(&mut self, p: &ProblemRow) -> Result<i64, StoreError> {
        self.c.exec(
            "INSERT INTO problems (user_id, device_id, op, code, message, field, created_at, op_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![p.user_id.to_string(), p.device_id.to_string(), p.op, p.code, p.message, p.field, p.created_at, p.op_id.to_string()],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn decide_problem(&mut self, id: i64, d: &DecisionRow) -> Result<bool, StoreError> {
        let n = self.c.exec(
            "UPDATE problems SET decision = ?2, decided_by = ?3, decided_at = ?4, reason = ?5 WHERE id = ?1 AND decision IS NULL",
            params![id, d.verdict.as_str(), d.by.to_string(), d.at, d.reason],
        )?;
        Ok(n == 1)
    }

    fn settle_conflict(
        &mut self,
        loser: UserId,
        s: &Settlement,
        at: &str,
    ) -> Result<bool, StoreError> {
        let n = self.c.exec(
            "UPDATE conflicts SET resolved_at = coalesce(resolved_at, ?1), resolution = coalesce(resolution, ?2) \
             WHERE record_id = ?3 AND field = ?4 AND losing_hlc = ?5 AND loser_user_id = ?6",
            params![
                at,
                s.keep.as_str(),
                s.record_id.to_string(),
                s.field,
                s.losing_hlc.to_string(),
                loser.to_string()
            ],
        )?;
        Ok(n > 0)
    }

    fn add_conflict(&mut self, c: &ConflictRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO conflicts (record_id, collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at, \
             loser_user_id, loser_device_id, winner_user_id, winner_device_id, resolved_at, resolution) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                c.record_id.to_string(),
                c.collection,
                c.op_id.to_string(),
                c.user_id.to_string(),
                c.field,
                c.losing_value,
                c.winning_value,
                c.losing_hlc,
                c.winning_hlc,
                c.created_at,
                c.loser.user.map(|u| u.to_string()),
                c.loser.device.map(|d| d.to_string()),
                c.winner.user.map(|u| u.to_string()),
                c.winner.device.map(|d| d.to_string()),
                c.resolved_at,
                c.resolution
            ],
        )?;
        Ok(())
    }

    fn put_check_in(&mut self, ci: &CheckIn) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO check_ins (visit_id, user_id, started_at_ms, lat, lon) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (visit_id) DO UPDATE SET user_id = excluded.user_id, started_at_ms = excluded.started_at_ms, lat = excluded.lat, lon = excluded.lon",
            params![ci.visit_id.to_string(), ci.user_id.to_string(), ci.started_at_ms, ci.at.lat, ci.at.lon],
        )?;
        Ok(())
    }
}
