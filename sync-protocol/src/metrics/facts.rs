//! Building [`Facts`] from plain record values.
//!
//! Both the CLI's local view and the server's stored record states can
//! produce, per record, its collection, id, archived flag and current field
//! values ([`crate::RecordState::values`]). [`FactIndex`] reads those once and
//! then answers "the facts of this rep" or "of this set of reps" (a team)
//! without further I/O.
//!
//! Attribution, written down once:
//! - a visit or sale belongs to the user it is credited to (its
//!   `credited_to`, written by the server where that is not the customer's
//!   owner, e.g. once the customer moves on: the rep who did it; see
//!   [`crate::ownership::credited_to`]);
//! - a customer, its feedback, and visits and sales without a credit
//!   belong to the customer's current owner (`owner_id`). A customer created offline has no owner
//!   yet; [`FactIndex::new`] attributes such customers to the `unowned_to`
//!   user (the signed-in user on a laptop, `None` on the server);
//! - a training assignment belongs to its `rep_id`; its hours and whether it
//!   is required (`required_for` contains `rep`) come from its course;
//! - archived records and waived assignments count for nothing;
//! - a complaint counts as resolved only while its status is `resolved` or
//!   `closed`;
//! - a sale is voided once it has `voided_at`.
//!
//! Values that cannot be read (a damaged timestamp, an unknown course) drop
//! the one fact rather than failing the whole computation.

use super::{Facts, FeedbackFact, SaleFact, TrainingFact, VisitFact};
use crate::id::{RecordId, TeamId, UserId};
use crate::money::Currency;
use crate::schema::CREDIT_FIELD;
use crate::time::{parse_date, parse_ts};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// One record as plain values: what metrics are computed from.
#[derive(Clone, Copy, Debug)]
pub struct PlainRecord<'a> {
    /// Collection name, e.g. `visits`.
    pub collection: &'a str,
    /// Record id.
    pub id: RecordId,
    /// Whether the record is archived.
    pub archived: bool,
    /// Current field values (absent or `null` when unset).
    pub fields: &'a Map<String, Value>,
}

impl PlainRecord<'_> {
    fn str(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }

    fn ts(&self, field: &str) -> Option<DateTime<Utc>> {
        self.str(field).and_then(parse_ts)
    }

    fn record_ref(&self, field: &str) -> Option<RecordId> {
        self.str(field).and_then(|s| s.parse().ok())
    }

    fn user_ref(&self, field: &str) -> Option<UserId> {
        self.str(field).and_then(|s| s.parse().ok())
    }
}

#[derive(Clone, Debug)]
struct Course {
    hours: f64,
    required: bool,
}

#[derive(Clone, Debug)]
struct Assignment {
    rep: UserId,
    course: RecordId,
    due: chrono::NaiveDate,
    completed_at: Option<DateTime<Utc>>,
}

/// What one visit, sale, feedback entry or customer contributes to the
/// metrics, derived from its plain values by [`RecordFact::from_plain`]. The
/// one derivation both [`FactIndex::new`] and the server's stored report
/// facts use, so they cannot disagree.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordFact {
    /// A customer: its owner (`None` when it has none yet) and creation instant.
    Customer {
        /// `owner_id`.
        owner: Option<UserId>,
        /// `created_at`, when readable.
        created_at: Option<DateTime<Utc>>,
    },
    /// A visit on a customer.
    Visit {
        /// The customer.
        customer_id: RecordId,
        /// Who it counts for, when the server has said.
        credited_to: Option<UserId>,
        /// The fact.
        fact: VisitFact,
    },
    /// A sale to a customer.
    Sale {
        /// The customer.
        customer_id: RecordId,
        /// Who it counts for, when the server has said.
        credited_to: Option<UserId>,
        /// The fact.
        fact: SaleFact,
    },
    /// A feedback entry about a customer.
    Feedback {
        /// The customer.
        customer_id: RecordId,
        /// The fact.
        fact: FeedbackFact,
    },
}

impl RecordFact {
    /// Collections whose records give a [`RecordFact`].
    pub const COLLECTIONS: [&'static str; 4] = ["customers", "visits", "sales", "feedback"];

    /// The fact of one record; `None` for archived records, other
    /// collections and records whose values cannot be read.
    pub fn from_plain(r: &PlainRecord<'_>) -> Option<RecordFact> {
        if r.archived {
            return None;
        }
        match r.collection {
            "customers" => Some(RecordFact::Customer {
                owner: r.user_ref("owner_id"),
                created_at: r.ts("created_at"),
            }),
            "visits" => Some(RecordFact::Visit {
                customer_id: r.record_ref("customer_id")?,
                credited_to: r.user_ref(CREDIT_FIELD),
                fact: VisitFact {
                    id: r.id,
                    customer_id: r.record_ref("customer_id")?,
                    started_at: r.ts("started_at")?,
                    amends: r.record_ref("amends"),
                },
            }),
            "sales" => {
                let amount = r.fields.get("amount");
                let minor = amount
                    .and_then(|a| a.get("minor"))
                    .and_then(Value::as_i64)?;
                let currency = amount
                    .and_then(|a| a.get("currency"))
                    .and_then(Value::as_str)
                    .and_then(|c| Currency::parse(c).ok())?;
                Some(RecordFact::Sale {
                    customer_id: r.record_ref("customer_id")?,
                    credited_to: r.user_ref(CREDIT_FIELD),
                    fact: SaleFact {
                        minor,
                        minor_digits: currency.minor_digits(),
                        sold_at: r.ts("sold_at")?,
                        voided: r.str("voided_at").is_some(),
                    },
                })
            }
            "feedback" => {
                let resolved = matches!(r.str("status"), Some("resolved" | "closed"));
                Some(RecordFact::Feedback {
                    customer_id: r.record_ref("customer_id")?,
                    fact: FeedbackFact {
                        kind: r.str("kind")?.to_owned(),
                        csat: r.fields.get("csat").and_then(Value::as_i64),
                        nps: r.fields.get("nps").and_then(Value::as_i64),
                        opened_at: r.ts("opened_at")?,
                        resolved_at: if resolved { r.ts("resolved_at") } else { None },
                    },
                })
            }
            _ => None,
        }
    }
}

/// A hash map keyed by random ids: foldhash is several times faster than
/// the default SipHash, and its per-map seed still varies the layout.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Facts of every user, indexed by owner, ready to be combined per rep or team.
#[derive(Clone, Debug, Default)]
pub struct FactIndex {
    /// Customer → the slot of its owner in `owned`: attributing a fact is
    /// one lookup.
    owner_of: FastMap<RecordId, usize>,
    /// Owner → slot.
    slot_of: FastMap<UserId, usize>,
    owned: Vec<Owned>,
    courses: FastMap<RecordId, Course>,
    assignments: Vec<Assignment>,
    teams: FastMap<TeamId, BTreeSet<UserId>>,
}

/// What one owner holds.
#[derive(Clone, Debug, Default)]
struct Owned {
    customers_created: Vec<DateTime<Utc>>,
    assigned: Vec<RecordId>,
    visits: Vec<VisitFact>,
    sales: Vec<SaleFact>,
    feedback: Vec<FeedbackFact>,
}

/// Builds a [`FactIndex`] from records and already derived [`RecordFact`]s,
/// in any order: facts on a customer are attributed when [`finish`] runs.
///
/// [`finish`]: FactIndexBuilder::finish
#[derive(Debug, Default)]
pub struct FactIndexBuilder {
    ix: FactIndex,
    unowned_to: Option<UserId>,
    pending: Vec<(RecordId, RecordFact)>,
}

impl FactIndexBuilder {
    /// An empty builder; customers without an owner go to `unowned_to`.
    pub fn new(unowned_to: Option<UserId>) -> Self {
        FactIndexBuilder {
            unowned_to,
            ..FactIndexBuilder::default()
        }
    }

    /// Add one record of any collection (others, and archived records, are ignored).
    pub fn add_record(&mut self, r: &PlainRecord<'_>) {
        if r.archived {
            return;
        }
        match r.collection {
            "courses" => {
                let hours = r.fields.get("hours").and_then(Value::as_f64);
                let required = r
                    .fields
                    .get("required_for")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("rep")));
                if let Some(hours) = hours {
                    self.ix.courses.insert(r.id, Course { hours, required });
                }
            }
            "users" => {
                if let Some(team) = r.str("team_id").and_then(|s| s.parse::<TeamId>().ok()) {
                    self.ix
                        .teams
                        .entry(team)
                        .or_default()
                        .insert(UserId(r.id.0));
                }
            }
            "training_assignments" => self.ix.add_assignment(r),
            _ => {
                if let Some(f) = RecordFact::from_plain(r) {
                    self.add_fact(r.id, f);
                }
            }
        }
    }

    /// Add the fact of record `id`.
    pub fn add_fact(&mut self, id: RecordId, fact: RecordFact) {
        match fact {
            RecordFact::Customer { owner, created_at } => {
                let Some(owner) = owner.or(self.unowned_to) else {
                    return;
                };
                let slot = self.ix.slot(owner);
                self.ix.owner_of.insert(id, slot);
                let owned = &mut self.ix.owned[slot];
                owned.assigned.push(id);
                if let Some(t) = created_at {
                    owned.customers_created.push(t);
                }
            }
            RecordFact::Visit {
                credited_to: Some(user),
                ..
            }
            | RecordFact::Sale {
                credited_to: Some(user),
                ..
            } => {
                let slot = self.ix.slot(user);
                self.ix.attribute(slot, fact);
            }
            RecordFact::Visit { customer_id, .. }
            | RecordFact::Sale { customer_id, .. }
            | RecordFact::Feedback { customer_id, .. } => {
                match self.ix.owner_of.get(&customer_id).copied() {
                    Some(slot) => self.ix.attribute(slot, fact),
                    None => self.pending.push((customer_id, fact)),
                }
            }
        }
    }

    /// An empty builder that attributes facts exactly as this one does
    /// (the same customers and owners), for adding facts on another thread
    /// and [`join`](Self::join)ing them back. Customers added to the fork
    /// are not carried back: add every customer before forking.
    pub fn fork(&self) -> FactIndexBuilder {
        FactIndexBuilder {
            ix: FactIndex {
                owner_of: self.ix.owner_of.clone(),
                slot_of: self.ix.slot_of.clone(),
                owned: vec![Owned::default(); self.ix.owned.len()],
                ..FactIndex::default()
            },
            unowned_to: self.unowned_to,
            pending: Vec::new(),
        }
    }

    /// Take what a [`fork`](Self::fork) of this builder was given: its
    /// visits, sales and feedback come after this builder's own (per owner,
    /// in the order each builder received them). Slots are matched by user:
    /// work credited to a user may have made a slot on either side.
    pub fn join(&mut self, fork: FactIndexBuilder) {
        let mut theirs_by_slot: Vec<(usize, UserId)> =
            fork.ix.slot_of.iter().map(|(u, s)| (*s, *u)).collect();
        theirs_by_slot.sort_unstable_by_key(|(s, _)| *s);
        let mut owned = fork.ix.owned;
        for (slot, user) in theirs_by_slot {
            let theirs = std::mem::take(&mut owned[slot]);
            let mine_slot = self.ix.slot(user);
            let mine = &mut self.ix.owned[mine_slot];
            mine.visits.extend(theirs.visits);
            mine.sales.extend(theirs.sales);
            mine.feedback.extend(theirs.feedback);
        }
        self.pending.extend(fork.pending);
        self.ix.courses.extend(fork.ix.courses);
        self.ix.assignments.extend(fork.ix.assignments);
        for (team, members) in fork.ix.teams {
            self.ix.teams.entry(team).or_default().extend(members);
        }
    }

    /// Attribute every fact to its customer's owner (facts on customers
    /// not added are dropped).
    pub fn finish(mut self) -> FactIndex {
        let mut ix = self.ix;
        for (customer, fact) in self.pending.drain(..) {
            if let Some(slot) = ix.owner_of.get(&customer).copied() {
                ix.attribute(slot, fact);
            }
        }
        ix
    }
}

impl FactIndex {
    /// Index records of any collections (others are ignored). Customers
    /// without an owner are attributed to `unowned_to`, if given.
    pub fn new<'a>(
        records: impl IntoIterator<Item = PlainRecord<'a>>,
        unowned_to: Option<UserId>,
    ) -> Self {
        let mut b = FactIndexBuilder::new(unowned_to);
        for r in records {
            b.add_record(&r);
        }
        b.finish()
    }

    /// The slot of `owner` in `owned`, made on first use.
    fn slot(&mut self, owner: UserId) -> usize {
        let next = self.owned.len();
        let slot = *self.slot_of.entry(owner).or_insert(next);
        if slot == next {
            self.owned.push(Owned::default());
        }
        slot
    }

    fn attribute(&mut self, slot: usize, fact: RecordFact) {
        let owned = &mut self.owned[slot];
        match fact {
            RecordFact::Visit { fact, .. } => owned.visits.push(fact),
            RecordFact::Sale { fact, .. } => owned.sales.push(fact),
            RecordFact::Feedback { fact, .. } => owned.feedback.push(fact),
            RecordFact::Customer { .. } => {}
        }
    }

    fn add_assignment(&mut self, r: &PlainRecord<'_>) {
        if r.str("status") == Some("waived") {
            return;
        }
        let (Some(rep), Some(course), Some(due)) = (
            r.user_ref("rep_id"),
            r.record_ref("course_id"),
            r.str("due").and_then(parse_date),
        ) else {
            return;
        };
        let completed_at = if r.str("status") == Some("completed") {
            r.ts("completed_at")
        } else {
            None
        };
        self.assignments.push(Assignment {
            rep,
            course,
            due,
            completed_at,
        });
    }

    /// The members of a team, from the user directory.
    pub fn team_members(&self, team: TeamId) -> Vec<UserId> {
        self.teams
            .get(&team)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The facts of one rep.
    pub fn facts_for_rep(&self, rep: UserId) -> Facts {
        self.facts_for(&[rep])
    }

    /// The facts of a set of reps together (a team rolls up its members).
    pub fn facts_for(&self, reps: &[UserId]) -> Facts {
        let reps: BTreeSet<UserId> = reps.iter().copied().collect();
        let mut f = Facts::default();
        for o in reps
            .iter()
            .filter_map(|rep| self.slot_of.get(rep).map(|s| &self.owned[*s]))
        {
            f.visits.extend_from_slice(&o.visits);
            f.sales.extend_from_slice(&o.sales);
            f.feedback.extend_from_slice(&o.feedback);
            f.customers_created.extend_from_slice(&o.customers_created);
            f.customers_assigned.extend_from_slice(&o.assigned);
        }
        for a in self.assignments.iter().filter(|a| reps.contains(&a.rep)) {
            let Some(course) = self.courses.get(&a.course) else {
                continue;
            };
            f.training.push(TrainingFact {
                hours: course.hours,
                required: course.required,
                due: a.due,
                completed_at: a.completed_at,
            });
        }
        f
    }
}

/// The facts of `reps` from plain records, in one call (see [`FactIndex`]).
pub fn facts_for<'a>(
    records: impl IntoIterator<Item = PlainRecord<'a>>,
    reps: &[UserId],
    unowned_to: Option<UserId>,
) -> Facts {
    FactIndex::new(records, unowned_to).facts_for(reps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Metric, MetricValue, Period, compute};
    use serde_json::json;
    use uuid::Uuid;

    fn rid(n: u128) -> RecordId {
        RecordId(Uuid::from_u128(n))
    }

    fn uid(n: u128) -> UserId {
        UserId(Uuid::from_u128(n))
    }

    struct Owned {
        collection: &'static str,
        id: RecordId,
        archived: bool,
        fields: Map<String, Value>,
    }

    fn rec(collection: &'static str, id: u128, fields: Value) -> Owned {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object")
        };
        Owned {
            collection,
            id: rid(id),
            archived: false,
            fields,
        }
    }

    fn plain(all: &[Owned]) -> impl Iterator<Item = PlainRecord<'_>> {
        all.iter().map(|o| PlainRecord {
            collection: o.collection,
            id: o.id,
            archived: o.archived,
            fields: &o.fields,
        })
    }

    #[test]
    fn a_forked_builder_joined_back_indexes_like_one_builder() {
        let all = sample();
        let whole = FactIndex::new(plain(&all), Some(uid(100)));
        let (customers, others): (Vec<_>, Vec<_>) =
            plain(&all).partition(|r| r.collection == "customers");
        let mut main = FactIndexBuilder::new(Some(uid(100)));
        for r in &customers {
            main.add_record(r);
        }
        let mut fork = main.fork();
        let half = others.len() / 2;
        for r in &others[..half] {
            main.add_record(r);
        }
        for r in &others[half..] {
            fork.add_record(r);
        }
        main.join(fork);
        let joined = main.finish();
        for rep in [uid(100), uid(200), uid(300)] {
            assert_eq!(
                format!("{:?}", joined.facts_for_rep(rep)),
                format!("{:?}", whole.facts_for_rep(rep)),
            );
        }
        assert!(!whole.facts_for_rep(uid(100)).visits.is_empty());
    }

    fn sample() -> Vec<Owned> {
        let (a, b) = (uid(100).to_string(), uid(200).to_string());
        let mut archived = rec(
            "customers",
            3,
            json!({"name": "Gone", "owner_id": a, "created_at": "2026-11-01T00:00:00Z"}),
        );
        archived.archived = true;
        vec![
            rec(
                "users",
                100,
                json!({"username": "ann", "role": "rep", "team_id": uid(900).to_string()}),
            ),
            rec(
                "users",
                200,
                json!({"username": "bob", "role": "rep", "team_id": uid(900).to_string()}),
            ),
            rec(
                "customers",
                1,
                json!({"name": "A", "owner_id": a, "created_at": "2026-11-02T00:00:00Z"}),
            ),
            rec(
                "customers",
                2,
                json!({"name": "B", "owner_id": b, "created_at": "2026-10-02T00:00:00Z"}),
            ),
            archived,
            rec(
                "customers",
                4,
                json!({"name": "Offline", "created_at": "2026-11-03T00:00:00Z"}),
            ),
            rec(
                "visits",
                10,
                json!({"customer_id": rid(1).to_string(), "started_at": "2026-11-04T08:00:00Z"}),
            ),
            rec(
                "visits",
                11,
                json!({"customer_id": rid(2).to_string(), "started_at": "2026-11-04T08:00:00Z"}),
            ),
            rec(
                "visits",
                12,
                json!({"customer_id": rid(4).to_string(), "started_at": "2026-11-05T08:00:00Z"}),
            ),
            rec(
                "sales",
                20,
                json!({"customer_id": rid(1).to_string(), "amount": {"minor": 12_345, "currency": "CNY"},
                       "product": "x", "sold_at": "2026-11-04T09:00:00Z"}),
            ),
            rec(
                "sales",
                21,
                json!({"customer_id": rid(1).to_string(), "amount": {"minor": 500, "currency": "JPY"},
                       "product": "x", "sold_at": "2026-11-04T09:00:00Z"}),
            ),
            rec(
                "sales",
                22,
                json!({"customer_id": rid(1).to_string(), "amount": {"minor": 999, "currency": "CNY"},
                       "product": "x", "sold_at": "2026-11-04T09:00:00Z", "voided_at": "2026-11-05T00:00:00Z"}),
            ),
            rec(
                "feedback",
                30,
                json!({"customer_id": rid(1).to_string(), "kind": "complaint", "text": "t",
                       "opened_at": "2026-11-04T00:00:00Z", "status": "resolved",
                       "resolved_at": "2026-11-04T06:00:00Z"}),
            ),
            rec(
                "feedback",
                31,
                json!({"customer_id": rid(1).to_string(), "kind": "complaint", "text": "t",
                       "opened_at": "2026-11-04T00:00:00Z", "status": "open",
                       "resolved_at": "2026-11-04T06:00:00Z"}),
            ),
            rec(
                "feedback",
                32,
                json!({"customer_id": rid(2).to_string(), "kind": "survey", "text": "t", "csat": 4, "nps": 9,
                       "opened_at": "2026-11-04T00:00:00Z", "status": "open"}),
            ),
            rec(
                "courses",
                40,
                json!({"title": "Onboarding", "kind": "onboarding", "hours": 3.5, "required_for": ["rep"]}),
            ),
            rec(
                "courses",
                41,
                json!({"title": "Seminar", "kind": "seminar", "hours": 2.0}),
            ),
            rec(
                "training_assignments",
                50,
                json!({"rep_id": a, "course_id": rid(40).to_string(), "due": "2026-11-10",
                       "status": "completed", "completed_at": "2026-11-09T10:00:00Z"}),
            ),
            rec(
                "training_assignments",
                51,
                json!({"rep_id": a, "course_id": rid(41).to_string(), "due": "2026-11-10",
                       "status": "waived"}),
            ),
            rec(
                "training_assignments",
                52,
                json!({"rep_id": b, "course_id": rid(40).to_string(), "due": "2026-11-10",
                       "status": "assigned"}),
            ),
        ]
    }

    #[test]
    fn attributes_records_to_the_customer_owner_and_the_assignee() {
        let all = sample();
        let ix = FactIndex::new(plain(&all), None);
        let a = ix.facts_for_rep(uid(100));
        assert_eq!(a.visits.len(), 1);
        assert_eq!(
            a.customers_assigned,
            vec![rid(1)],
            "archived and unowned customers do not count"
        );
        assert_eq!(a.sales.len(), 3);
        assert_eq!(a.sales[1].minor_digits, 0);
        assert_eq!(a.sales.iter().filter(|s| s.voided).count(), 1);
        assert_eq!(a.feedback.len(), 2);
        assert!(
            a.feedback[1].resolved_at.is_none(),
            "a reopened complaint is not resolved"
        );
        assert_eq!(a.training.len(), 1, "waived assignments count for nothing");
        assert!(a.training[0].required);
        let b = ix.facts_for_rep(uid(200));
        assert_eq!(b.visits.len(), 1);
        assert_eq!(b.training[0].completed_at, None);
    }

    #[test]
    fn credited_work_stays_with_its_rep_after_the_customer_moves() {
        let (ann, bob) = (uid(100).to_string(), uid(200).to_string());
        let mut all = sample();
        // Customer 1 is bob's now; ann's visit and sale on it were credited
        // to her when she made them, a later visit of bob's to him, and
        // ann's uncredited (not yet synced) visit follows the owner.
        all.retain(|r| r.collection != "customers" || r.id != rid(1));
        all.extend([
            rec(
                "customers",
                1,
                json!({"name": "A", "owner_id": bob, "created_at": "2026-11-02T00:00:00Z"}),
            ),
            rec(
                "visits",
                13,
                json!({"customer_id": rid(1).to_string(), "started_at": "2026-11-06T08:00:00Z", "credited_to": ann}),
            ),
            rec(
                "visits",
                14,
                json!({"customer_id": rid(1).to_string(), "started_at": "2026-11-07T08:00:00Z", "credited_to": bob}),
            ),
            rec(
                "sales",
                23,
                json!({"customer_id": rid(1).to_string(), "amount": {"minor": 700, "currency": "JPY"},
                       "product": "x", "sold_at": "2026-11-06T09:00:00Z", "credited_to": ann}),
            ),
            // A visit credited to someone with no customer here at all (a
            // laptop keeps its rep's work on customers that moved away).
            rec(
                "visits",
                15,
                json!({"customer_id": rid(99).to_string(), "started_at": "2026-11-08T08:00:00Z", "credited_to": ann}),
            ),
        ]);
        let ix = FactIndex::new(plain(&all), None);
        let a = ix.facts_for_rep(uid(100));
        let ids: Vec<RecordId> = a.visits.iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![rid(13), rid(15)]);
        assert_eq!(a.sales.len(), 1);
        assert!(a.customers_assigned.is_empty());
        let b = ix.facts_for_rep(uid(200));
        let mut ids: Vec<RecordId> = b.visits.iter().map(|v| v.id).collect();
        ids.sort();
        assert_eq!(ids, vec![rid(10), rid(11), rid(14)]);
        assert_eq!(b.sales.len(), 3, "uncredited sales follow the owner");
        assert_eq!(b.customers_assigned.len(), 2);
        // A fork that meets a credited user first still joins by user.
        let mut main = FactIndexBuilder::new(None);
        let mut fork = main.fork();
        for r in plain(&all).filter(|r| r.collection == "visits") {
            fork.add_record(&r);
        }
        for r in plain(&all).filter(|r| r.collection != "visits") {
            main.add_record(&r);
        }
        main.join(fork);
        let joined = main.finish();
        for rep in [uid(100), uid(200)] {
            let mut j = joined.facts_for_rep(rep).visits;
            let mut w = ix.facts_for_rep(rep).visits;
            j.sort_by_key(|v| v.id);
            w.sort_by_key(|v| v.id);
            assert_eq!(j, w);
        }
    }

    #[test]
    fn unowned_customers_go_to_the_local_user() {
        let all = sample();
        let ix = FactIndex::new(plain(&all), Some(uid(100)));
        let a = ix.facts_for_rep(uid(100));
        assert_eq!(a.customers_assigned.len(), 2);
        assert_eq!(a.visits.len(), 2);
    }

    #[test]
    fn record_states_give_plain_values() {
        use crate::{DeviceId, Hlc, Op, OpId, OpKind, RecordState};
        let at = parse_ts("2026-11-04T08:00:00Z").unwrap();
        let device = DeviceId(Uuid::from_u128(7));
        let mut customer = RecordState::new(rid(1), "customers");
        let mut visit = RecordState::new(rid(10), "visits");
        for (state, fields) in [
            (
                &mut customer,
                json!({"name": "A", "owner_id": uid(100).to_string(), "created_at": "2026-11-02T00:00:00Z", "phone": null}),
            ),
            (
                &mut visit,
                json!({"customer_id": rid(1).to_string(), "started_at": "2026-11-04T08:00:00Z"}),
            ),
        ] {
            let Value::Object(fields) = fields else {
                unreachable!()
            };
            state.apply(&Op {
                op_id: OpId::new_v7(at),
                device_id: device,
                device_seq: 1,
                hlc: Hlc::from_wall(at, device),
                schema_version: crate::version::SCHEMA_VERSION,
                collection: state.collection.clone(),
                record_id: state.id,
                kind: OpKind::Create,
                fields: fields.into_iter().collect(),
                transition: None,
                base: None,
            });
        }
        let values = customer.values();
        assert!(!values.contains_key("phone"), "null fields are left out");
        let states = [customer, visit];
        let plain: Vec<(RecordState, Map<String, Value>)> =
            states.iter().map(|s| (s.clone(), s.values())).collect();
        let ix = FactIndex::new(
            plain.iter().map(|(s, v)| PlainRecord {
                collection: &s.collection,
                id: s.id,
                archived: s.archived.is_some(),
                fields: v,
            }),
            None,
        );
        let f = ix.facts_for_rep(uid(100));
        assert_eq!(f.visits.len(), 1);
        assert_eq!(f.visits[0].started_at, at);
        assert_eq!(f.customers_assigned, vec![rid(1)]);
    }

    #[test]
    fn a_team_rolls_up_its_members() {
        let all = sample();
        let ix = FactIndex::new(plain(&all), None);
        let members = ix.team_members(TeamId(Uuid::from_u128(900)));
        assert_eq!(members, vec![uid(100), uid(200)]);
        let team = ix.facts_for(&members);
        let p = Period::parse("2026-11").unwrap();
        assert_eq!(compute(Metric::Visits, &p, &team), MetricValue::Value(2.0));
        assert_eq!(
            compute(Metric::Coverage, &p, &team),
            MetricValue::Value(1.0)
        );
        assert_eq!(
            compute(Metric::Sales, &p, &team),
            MetricValue::Value(123.45 + 500.0)
        );
        assert_eq!(compute(Metric::Csat, &p, &team), MetricValue::Value(4.0));
        assert_eq!(
            compute(Metric::ResolutionHours, &p, &team),
            MetricValue::Value(6.0)
        );
        assert_eq!(
            compute(Metric::TrainingCompletion, &p, &team),
            MetricValue::Value(0.5)
        );
        assert_eq!(
            compute(Metric::TrainingHours, &p, &team),
            MetricValue::Value(3.5)
        );
        assert_eq!(team, facts_for(plain(&all), &members, None));
    }
}
