//! Writes of records and of a push's bookkeeping (ops, problems, conflicts, check-ins).

use super::Tx;
use super::opening::{Ask, OPENING_META};
use super::rows::{col, seq};
use super::tx::unanswered;
use crate::store::{
    CheckIn, ConflictRow, DecisionRow, OpRow, ProblemRow, RecordRow, RecordWrite, StoreError,
    WriteTx,
};
use sync_protocol::ownership::Reassignment;
use sync_protocol::wire::Settlement;
use sync_protocol::{RecordId, UserId};

impl WriteTx for Tx<'_> {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.behind_mut()?.put_meta(key, value);
        if OPENING_META.contains(&key) {
            // Read back from here once a flush has sent it.
            self.opening_meta.insert(key.to_owned(), value.to_owned());
        }
        self.flush_if_full()
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        // The write transaction holds WRITE_LOCK until it ends, so this
        // number becomes visible only after every smaller one. The head is
        // read once and counted here; the flush before commit stores it.
        self.ensure_open()?;
        let next = self.head + 1;
        self.behind_mut()?.pending.head = Some(next);
        self.head = next;
        Ok(next)
    }
}

impl RecordWrite for Tx<'_> {
    fn put_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        self.behind_mut()?.put_record(r.clone());
        crate::store::facts::on_put(self, r)?;
        self.flush_if_full()
    }

    fn set_record_seq(&mut self, id: RecordId, s: u64) -> Result<(), StoreError> {
        // Records read or kept behind would carry the old number.
        self.flush()?;
        self.behind_mut()?.known.records.remove(&id);
        self.exec(
            "UPDATE records SET seq = $2 WHERE id = $1",
            &[&id.to_string(), &seq(s)],
        )?;
        Ok(())
    }

    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError> {
        self.behind_mut()?.put_owner(customer, owner);
        self.flush_if_full()
    }

    fn add_eviction(
        &mut self,
        s: u64,
        customer: RecordId,
        change: &Reassignment,
        at: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO evictions (seq, customer_id, from_owner, to_owner, at, hlc) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&seq(s), &customer.to_string(), &change.from.to_string(), &change.to.to_string(), &at, &change.hlc.to_string()],
        )?;
        Ok(())
    }

    fn add_op(&mut self, o: &OpRow) -> Result<(), StoreError> {
        self.behind_mut()?.add_op(o.clone());
        self.flush_if_full()
    }

    fn add_problem(&mut self, p: &ProblemRow) -> Result<i64, StoreError> {
        let r = self.one(
            "INSERT INTO problems (user_id, device_id, op, code, message, field, created_at, op_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &p.user_id.to_string(),
                &p.device_id.to_string(),
                &p.op,
                &p.code,
                &p.message,
                &p.field,
                &p.created_at,
                &p.op_id.to_string(),
            ],
        )?;
        col(&r, 0)
    }

    fn decide_problem(&mut self, id: i64, d: &DecisionRow) -> Result<bool, StoreError> {
        let n = self.exec(
            "UPDATE problems SET decision = $2, decided_by = $3, decided_at = $4, reason = $5 WHERE id = $1 AND decision IS NULL",
            &[&id, &d.verdict.as_str(), &d.by.to_string(), &d.at, &d.reason],
        )?;
        Ok(n == 1)
    }

    fn settle_conflict(
        &mut self,
        loser: UserId,
        s: &Settlement,
        at: &str,
    ) -> Result<bool, StoreError> {
        let n = self.exec(
            "UPDATE conflicts SET resolved_at = coalesce(resolved_at, $1), resolution = coalesce(resolution, $2) \
             WHERE record_id = $3 AND field = $4 AND losing_hlc = $5 AND loser_user_id = $6",
            &[
                &at,
                &s.keep.as_str(),
                &s.record_id.to_string(),
                &s.field,
                &s.losing_hlc.to_string(),
                &loser.to_string(),
            ],
        )?;
        Ok(n > 0)
    }

    fn add_conflict(&mut self, c: &ConflictRow) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO conflicts (record_id, collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at, \
             loser_user_id, loser_device_id, winner_user_id, winner_device_id, resolved_at, resolution) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &c.record_id.to_string(),
                &c.collection,
                &c.op_id.to_string(),
                &c.user_id.to_string(),
                &c.field,
                &c.losing_value,
                &c.winning_value,
                &c.losing_hlc,
                &c.winning_hlc,
                &c.created_at,
                &c.loser.user.map(|u| u.to_string()),
                &c.loser.device.map(|d| d.to_string()),
                &c.winner.user.map(|u| u.to_string()),
                &c.winner.device.map(|d| d.to_string()),
                &c.resolved_at,
                &c.resolution,
            ],
        )?;
        Ok(())
    }

    fn put_check_in(&mut self, ci: &CheckIn) -> Result<(), StoreError> {
        self.behind_mut()?.put_check_in(*ci);
        self.flush_if_full()
    }

    fn prefetch_records(&mut self, ids: &[RecordId]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let ask = unanswered(ids, |id| {
            b.pending.records.get(id).is_some() || b.known.records.contains_key(id)
        });
        if ask.is_empty() {
            return Ok(());
        }
        self.hint(Ask::Records(ask))
    }

    fn prefetch_customer_owners(&mut self, customers: &[RecordId]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let ask = unanswered(customers, |id| {
            b.pending.owners.get(id).is_some() || b.known.owners.contains_key(id)
        });
        if ask.is_empty() {
            return Ok(());
        }
        self.hint(Ask::Owners(ask))
    }

    fn prefetch_previous_check_ins(
        &mut self,
        user: UserId,
        asks: &[(i64, RecordId)],
    ) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let asks: Vec<(i64, RecordId)> = asks
            .iter()
            .filter(|(ms, ex)| !b.known.previous.contains_key(&(user, *ms, *ex)))
            .copied()
            .collect();
        if asks.is_empty() {
            return Ok(());
        }
        self.hint(Ask::CheckIns(user, asks))
    }
}
