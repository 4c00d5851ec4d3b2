//! Write-behind for PostgreSQL write transactions.
//!
//! A push of 20 visits used to send about 200 statements, one round trip
//! each, while holding the write lock that serialises every writer of every
//! instance. Here the row writes a push makes (records, their report facts,
//! customer owners, ops, check-ins, the change head, meta values and the
//! device's bookkeeping) are kept in memory and sent as one statement
//! ([`Behind::take`], sent by the store as a chain of data-modifying `WITH`
//! parts) before the transaction reads those tables through a query the
//! overlay cannot answer, and before commit.
//!
//! Reads the push makes are answered from the overlay first: a record
//! written in this transaction, a customer's new owner, a check-in. What
//! the database said is remembered ([`Known`]) until the next flush: the
//! transaction holds the write lock, so nothing else changes those tables
//! meanwhile, and until a flush the database still holds exactly what it
//! held when it was asked.

use super::latest::Latest;
use crate::store::facts::FactRow;
use crate::store::{CheckIn, OpRow, RecordRow, UserRow};
use std::collections::HashMap;
use sync_protocol::{DeviceId, RecordId, UserId};

/// Rows pending after this many are sent at once (a migration or a fact
/// rebuild writes millions in one transaction). A full push (5,000 ops of
/// about four rows each) stays below it and is sent once, before commit:
/// a flush forgets what the database answered, so later reads of the same
/// push would go back to one round trip each.
pub const FLUSH_AT: usize = 32_768;

/// A report fact row to replace: `(record, is a customer, row or removal)`.
pub type FactWrite = (RecordId, bool, Option<FactRow>);

/// Writes not yet sent.
#[derive(Debug, Default)]
pub struct Pending {
    /// Records by id.
    pub records: Latest<RecordId, RecordRow>,
    /// Report fact rows by record.
    pub facts: Latest<RecordId, FactWrite>,
    /// Customer owners.
    pub owners: Latest<RecordId, (RecordId, UserId)>,
    /// Check-ins by visit.
    pub check_ins: Latest<RecordId, CheckIn>,
    /// Ops, in order.
    pub ops: Vec<OpRow>,
    /// The change head to store, when numbers were taken.
    pub head: Option<u64>,
    /// Meta values by key.
    pub meta: Latest<String, (String, String)>,
    /// Device columns a sync keeps up to date, by device.
    pub devices: Latest<DeviceId, DeviceUpdate>,
}

/// The bookkeeping columns of one device to set (`None`: leave as is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceUpdate {
    /// The device.
    pub id: Option<DeviceId>,
    /// `last_seen_at`.
    pub last_seen_at: Option<String>,
    /// `acked_through`.
    pub acked_through: Option<u64>,
    /// `clock_drift_ms`.
    pub clock_drift_ms: Option<i64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.records.len()
            + self.facts.len()
            + self.owners.len()
            + self.check_ins.len()
            + self.ops.len()
            + self.meta.len()
            + self.devices.len()
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.head.is_none()
    }

    /// Where to come back to if the writes that follow are undone.
    fn mark(&mut self) -> PendingMark {
        PendingMark {
            records: self.records.mark(),
            facts: self.facts.mark(),
            owners: self.owners.mark(),
            check_ins: self.check_ins.mark(),
            ops: self.ops.len(),
            head: self.head,
            meta: self.meta.mark(),
            devices: self.devices.mark(),
            flushes: 0,
        }
    }

    fn undo(&mut self, m: &PendingMark) {
        self.records.undo(m.records);
        self.facts.undo(m.facts);
        self.owners.undo(m.owners);
        self.check_ins.undo(m.check_ins);
        self.ops.truncate(m.ops);
        self.head = m.head;
        self.meta.undo(m.meta);
        self.devices.undo(m.devices);
    }
}

/// The pending writes at one moment ([`Behind::mark`]).
#[derive(Debug)]
pub struct PendingMark {
    records: usize,
    facts: usize,
    owners: usize,
    check_ins: usize,
    ops: usize,
    head: Option<u64>,
    meta: usize,
    devices: usize,
    flushes: u64,
}

/// What the database answered since the last flush.
#[derive(Debug, Default)]
pub struct Known {
    /// Records (`None`: there is none).
    pub records: HashMap<RecordId, Option<RecordRow>>,
    /// `previous_check_in(user, before_ms, exclude)` on the database alone.
    pub previous: HashMap<(UserId, i64, RecordId), Option<CheckIn>>,
    /// Customer owners (`None`: the customer has none).
    pub owners: HashMap<RecordId, Option<UserId>>,
    /// Users (`None`: there is none). Forgotten as well when a user row is
    /// written, which is not kept behind.
    pub users: HashMap<UserId, Option<UserRow>>,
}

/// The write-behind state of one write transaction.
#[derive(Debug, Default)]
pub struct Behind {
    /// Not yet sent.
    pub pending: Pending,
    /// Read from the database, valid until the next flush.
    pub known: Known,
    /// Record rows sent so far.
    pub records_sent: u64,
    /// Times pending writes were taken to be sent.
    flushes: u64,
}

impl Behind {
    /// Keep a record write.
    pub fn put_record(&mut self, r: RecordRow) {
        self.pending.records.put(r.id, r);
    }

    /// Keep a fact write.
    pub fn put_fact(&mut self, id: RecordId, customer: bool, row: Option<FactRow>) {
        self.pending.facts.put(id, (id, customer, row));
    }

    /// Keep an owner change.
    pub fn put_owner(&mut self, customer: RecordId, owner: UserId) {
        self.pending.owners.put(customer, (customer, owner));
    }

    /// Keep a check-in.
    pub fn put_check_in(&mut self, ci: CheckIn) {
        self.pending.check_ins.put(ci.visit_id, ci);
    }

    /// Keep an op.
    pub fn add_op(&mut self, op: OpRow) {
        self.pending.ops.push(op);
    }

    /// Keep a meta value.
    pub fn put_meta(&mut self, key: &str, value: &str) {
        self.pending
            .meta
            .put(key.to_owned(), (key.to_owned(), value.to_owned()));
    }

    /// The pending value of a meta key.
    pub fn pending_meta(&self, key: &str) -> Option<&str> {
        self.pending
            .meta
            .get(&key.to_owned())
            .map(|(_, v)| v.as_str())
    }

    /// Keep a change to a device's bookkeeping columns.
    pub fn update_device(&mut self, id: DeviceId, change: impl FnOnce(&mut DeviceUpdate)) {
        let mut u = self.pending.devices.get(&id).cloned().unwrap_or_default();
        u.id = Some(id);
        change(&mut u);
        self.pending.devices.put(id, u);
    }

    /// Whether enough is pending to send it now.
    pub fn full(&self) -> bool {
        self.pending.len() >= FLUSH_AT
    }

    /// The writes to send; what was known is forgotten, because once they
    /// are sent the database no longer holds what it answered.
    pub fn take(&mut self) -> Pending {
        if self.pending.is_empty() {
            return Pending::default();
        }
        self.known = Known::default();
        self.flushes += 1;
        std::mem::take(&mut self.pending)
    }

    /// Where [`Behind::undo`] comes back to: the writes kept so far.
    pub fn mark(&mut self) -> PendingMark {
        let mut m = self.pending.mark();
        m.flushes = self.flushes;
        m
    }

    /// Forget the writes kept since `m`; `false` (and nothing undone) when
    /// some were sent since. What the database answered is forgotten too.
    pub fn undo(&mut self, m: &PendingMark) -> bool {
        if self.flushes != m.flushes {
            return false;
        }
        self.pending.undo(m);
        self.known = Known::default();
        true
    }

    /// The latest pending check-in of `user` strictly before `before_ms`,
    /// other than `exclude`.
    pub fn pending_previous(
        &self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Option<&CheckIn> {
        self.pending
            .check_ins
            .rows()
            .iter()
            .filter(|c| c.user_id == user && c.started_at_ms < before_ms && c.visit_id != exclude)
            .max_by_key(|c| c.started_at_ms)
    }
}

/// The later of two check-ins (the database's answer and the overlay's).
pub fn later(a: Option<CheckIn>, b: Option<&CheckIn>) -> Option<CheckIn> {
    match (a, b) {
        (Some(a), Some(b)) if b.started_at_ms > a.started_at_ms => Some(*b),
        (Some(a), _) => Some(a),
        (None, b) => b.copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_protocol::geo::LatLon;

    fn id(n: u128) -> RecordId {
        RecordId(uuid::Uuid::from_u128(n))
    }

    fn check_in(visit: u128, user: u128, ms: i64) -> CheckIn {
        CheckIn {
            visit_id: id(visit),
            user_id: UserId(uuid::Uuid::from_u128(user)),
            started_at_ms: ms,
            at: LatLon { lat: 1.0, lon: 2.0 },
        }
    }

    #[test]
    fn undo_forgets_the_writes_since_the_mark_and_restores_replaced_values() {
        let mut b = Behind::default();
        b.put_meta("a", "1");
        b.put_check_in(check_in(1, 7, 100));
        b.pending.head = Some(4);
        let m = b.mark();
        b.put_meta("a", "2");
        b.put_meta("b", "3");
        b.put_meta("a", "4");
        b.put_check_in(check_in(2, 7, 300));
        b.pending.head = Some(6);
        assert!(b.undo(&m));
        assert_eq!(b.pending_meta("a"), Some("1"));
        assert_eq!(b.pending_meta("b"), None);
        assert_eq!(b.pending.meta.rows().len(), 1);
        assert_eq!(b.pending.check_ins.rows().len(), 1);
        assert_eq!(b.pending.head, Some(4));
        // Once pending writes were sent, they cannot be undone here.
        let m = b.mark();
        b.put_meta("c", "5");
        let _ = b.take();
        assert!(!b.undo(&m));
    }

    #[test]
    fn pending_previous_is_the_latest_earlier_other_check_in_of_the_user() {
        let mut b = Behind::default();
        let user = UserId(uuid::Uuid::from_u128(7));
        b.put_check_in(check_in(1, 7, 100));
        b.put_check_in(check_in(2, 7, 300));
        b.put_check_in(check_in(3, 8, 250));
        b.put_check_in(check_in(4, 7, 200));
        let at = |ms, ex| b.pending_previous(user, ms, id(ex)).map(|c| c.visit_id);
        assert_eq!(at(250, 0), Some(id(4)));
        assert_eq!(at(250, 4), Some(id(1)));
        assert_eq!(at(100, 0), None, "strictly before");
        assert_eq!(at(1000, 0), Some(id(2)));
        let db = Some(check_in(9, 7, 150));
        assert_eq!(later(db, b.pending_previous(user, 120, id(0))), db);
        assert_eq!(
            later(db, b.pending_previous(user, 250, id(0))).map(|c| c.visit_id),
            Some(id(4))
        );
    }

    #[test]
    fn take_forgets_what_was_known_only_when_something_is_sent() {
        let mut b = Behind::default();
        b.known.records.insert(id(1), None);
        assert!(b.take().is_empty());
        assert!(b.known.records.contains_key(&id(1)));
        b.put_owner(id(1), UserId(uuid::Uuid::from_u128(2)));
        let sent = b.take();
        assert_eq!(sent.owners.rows().len(), 1);
        assert!(b.known.records.is_empty());
        assert!(b.pending.is_empty());
    }

    #[test]
    fn meta_and_device_updates_keep_the_latest_per_key() {
        let mut b = Behind::default();
        b.put_meta("hlc", "1");
        b.put_meta("hlc", "2");
        assert_eq!(b.pending_meta("hlc"), Some("2"));
        assert_eq!(b.pending_meta("other"), None);
        let d = DeviceId(uuid::Uuid::from_u128(5));
        b.update_device(d, |u| u.acked_through = Some(3));
        b.update_device(d, |u| u.last_seen_at = Some("now".into()));
        let sent = b.take();
        assert_eq!(sent.meta.rows(), &[("hlc".to_owned(), "2".to_owned())]);
        assert_eq!(
            sent.devices.rows(),
            &[DeviceUpdate {
                id: Some(d),
                last_seen_at: Some("now".into()),
                acked_through: Some(3),
                clock_drift_ms: None,
            }]
        );
    }
}
