//! Report facts: a narrow, derived copy of what the metrics read from
//! customers, visits, sales and feedback (tables `report_customers` and
//! `report_facts`, migrations `0003_report_facts` and `0004_report_fact_ids`).
//! Fact rows keep their record, customer and amended-visit ids as 16-byte
//! blobs: a quarter's scan reads a million of them.
//!
//! A row is derived from a record's state by
//! [`sync_protocol::metrics::RecordFact::from_plain`] — the derivation the
//! laptops' `FactIndex` uses — inside the write transaction that stores the
//! record ([`on_put`], called by every store's `put_record`), so it never
//! lags the record. Archived records and unreadable values have no row. A
//! visit or sale keeps the user it is credited to (`credited_to`, which
//! never changes); the owner that feedback and uncredited work count for is
//! its customer's, joined when the report is built, so reassigning a
//! customer rewrites only the customer's row. [`rebuild_if_stale`] derives every row again when the store opens
//! and the meta key [`VERSION_KEY`] is missing or older than [`VERSION`].

use super::decode::Cols;
use super::{RecordRow, ScopeFilter, Store, StoreError, WriteTx};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use sync_protocol::metrics::{FeedbackFact, PlainRecord, RecordFact, SaleFact, VisitFact};
use sync_protocol::{RecordId, UserId};

/// Meta key holding the version of the derivation the stored rows follow.
pub const VERSION_KEY: &str = "report_facts_version";
/// Bump when [`RecordFact::from_plain`] or the row layout changes: stores
/// rebuild their rows on the next start.
pub const VERSION: &str = "2";

/// One stored row, as the stores read and write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FactRow {
    /// `report_customers`.
    Customer {
        /// The customer's `owner_id` field.
        owner_id: Option<String>,
        /// `created_at` in microseconds since the epoch.
        created_us: Option<i64>,
    },
    /// `report_facts`.
    Fact(FactColumns),
}

/// The columns of a `report_facts` row (besides `record_id`); text owned
/// when written, borrowed from the row when read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactColumns<S = String> {
    /// `visit`, `sale` or `feedback`.
    pub kind: &'static str,
    /// `started_at`, `sold_at` or `opened_at`, µs.
    pub at_us: i64,
    /// The customer (stored as 16 bytes).
    pub customer_id: RecordId,
    /// Visits: the visit amended (stored as 16 bytes).
    pub amends: Option<RecordId>,
    /// Visits and sales: who they count for, when credited (16 bytes).
    pub credited_to: Option<UserId>,
    /// Sales: amount in minor units.
    pub minor: Option<i64>,
    /// Sales: minor digits of the currency.
    pub minor_digits: Option<i64>,
    /// Sales: 1 when voided.
    pub voided: Option<i64>,
    /// Feedback: its kind.
    pub feedback_kind: Option<S>,
    /// Feedback: CSAT.
    pub csat: Option<i64>,
    /// Feedback: NPS.
    pub nps: Option<i64>,
    /// Feedback: resolved instant (only while resolved), µs.
    pub resolved_us: Option<i64>,
}

impl<S> FactColumns<S> {
    /// A row of `kind` with only the columns every kind has.
    pub fn new(kind: &'static str, at_us: i64, customer_id: RecordId) -> Self {
        FactColumns {
            kind,
            at_us,
            customer_id,
            amends: None,
            credited_to: None,
            minor: None,
            minor_digits: None,
            voided: None,
            feedback_kind: None,
            csat: None,
            nps: None,
            resolved_us: None,
        }
    }
}

fn us(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_us(v: i64, what: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::from_timestamp_micros(v)
        .ok_or_else(|| StoreError::Corrupt(format!("report fact {what}: {v}")))
}

impl FactRow {
    /// The row of a derived fact.
    pub fn from_fact(fact: &RecordFact) -> FactRow {
        match fact {
            RecordFact::Customer { owner, created_at } => FactRow::Customer {
                owner_id: owner.map(|o| o.to_string()),
                created_us: created_at.map(us),
            },
            RecordFact::Visit {
                customer_id,
                credited_to,
                fact,
            } => FactRow::Fact(FactColumns {
                amends: fact.amends,
                credited_to: *credited_to,
                ..FactColumns::new("visit", us(fact.started_at), *customer_id)
            }),
            RecordFact::Sale {
                customer_id,
                credited_to,
                fact,
            } => FactRow::Fact(FactColumns {
                credited_to: *credited_to,
                minor: Some(fact.minor),
                minor_digits: Some(i64::from(fact.minor_digits)),
                voided: Some(i64::from(fact.voided)),
                ..FactColumns::new("sale", us(fact.sold_at), *customer_id)
            }),
            RecordFact::Feedback { customer_id, fact } => FactRow::Fact(FactColumns {
                feedback_kind: Some(fact.kind.clone()),
                csat: fact.csat,
                nps: fact.nps,
                resolved_us: fact.resolved_at.map(us),
                ..FactColumns::new("feedback", us(fact.opened_at), *customer_id)
            }),
        }
    }
}

impl<S: AsRef<str>> FactColumns<S> {
    /// The fact of record `id` stored in this row.
    pub fn to_fact(&self, id: RecordId) -> Result<RecordFact, StoreError> {
        let customer_id = self.customer_id;
        let credited_to = self.credited_to;
        let at = from_us(self.at_us, "time")?;
        Ok(match self.kind {
            "visit" => RecordFact::Visit {
                customer_id,
                credited_to,
                fact: VisitFact {
                    id,
                    customer_id,
                    started_at: at,
                    amends: self.amends,
                },
            },
            "sale" => RecordFact::Sale {
                customer_id,
                credited_to,
                fact: SaleFact {
                    minor: self.minor.unwrap_or_default(),
                    minor_digits: u32::try_from(self.minor_digits.unwrap_or_default())
                        .map_err(|_| StoreError::Corrupt("report fact minor digits".into()))?,
                    sold_at: at,
                    voided: self.voided.unwrap_or_default() != 0,
                },
            },
            "feedback" => RecordFact::Feedback {
                customer_id,
                fact: FeedbackFact {
                    kind: self
                        .feedback_kind
                        .as_ref()
                        .map_or_else(String::new, |k| k.as_ref().to_owned()),
                    csat: self.csat,
                    nps: self.nps,
                    opened_at: at,
                    resolved_at: self
                        .resolved_us
                        .map(|r| from_us(r, "resolved"))
                        .transpose()?,
                },
            },
            other => return Err(StoreError::Corrupt(format!("report fact kind {other}"))),
        })
    }
}

/// The part of a stored `RecordState` facts read: values without clocks.
#[derive(serde::Deserialize)]
struct ValuesOnly {
    id: RecordId,
    #[serde(default)]
    fields: BTreeMap<String, FieldValue>,
    #[serde(default)]
    archived: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FieldValue {
    value: Value,
}

/// Whether records of `collection` have report facts.
pub fn has_facts(collection: &str) -> bool {
    RecordFact::COLLECTIONS.contains(&collection)
}

/// The row of one stored record state, with the record's id: `None` when
/// it has none (archived, or values that cannot be read: like
/// `FactIndex`, an unreadable record drops its one fact).
pub fn derive(collection: &str, state: &str) -> Option<(RecordId, FactRow)> {
    let s: ValuesOnly = serde_json::from_str(state).ok()?;
    let fields: Map<String, Value> = s
        .fields
        .into_iter()
        .filter(|(_, f)| !f.value.is_null())
        .map(|(k, f)| (k, f.value))
        .collect();
    let plain = PlainRecord {
        collection,
        id: s.id,
        archived: s.archived.is_some(),
        fields: &fields,
    };
    RecordFact::from_plain(&plain).map(|f| (s.id, FactRow::from_fact(&f)))
}

/// Keep the facts of `r` in step with it: called by `put_record` of every
/// store, in the same transaction.
pub fn on_put(tx: &mut dyn WriteTx, r: &RecordRow) -> Result<(), StoreError> {
    if !has_facts(&r.collection) {
        return Ok(());
    }
    let row = derive(&r.collection, &r.state).map(|(_, row)| row);
    tx.put_report_fact(r.id, r.collection == "customers", row.as_ref())
}

/// Derive every row again when [`VERSION_KEY`] is missing or stale (a
/// database created before the tables existed, or an older derivation).
pub fn rebuild_if_stale(store: &dyn Store) -> Result<(), StoreError> {
    let current = super::read(store, |tx| tx.meta(VERSION_KEY))?;
    if current.as_deref() == Some(VERSION) {
        return Ok(());
    }
    super::write(store, |tx| {
        if tx.meta(VERSION_KEY)?.as_deref() == Some(VERSION) {
            return Ok(());
        }
        let mut rows: Vec<(RecordId, bool, FactRow)> = Vec::new();
        tx.scope_records_of(
            &ScopeFilter {
                all: true,
                ..ScopeFilter::default()
            },
            &RecordFact::COLLECTIONS,
            &mut |collection, state| {
                if let Some((id, row)) = derive(collection, state) {
                    rows.push((id, collection == "customers", row));
                }
            },
        )?;
        tx.clear_report_facts()?;
        for (id, customer, row) in &rows {
            tx.put_report_fact(*id, *customer, Some(row))?;
        }
        tx.set_meta(VERSION_KEY, VERSION)
    })
}

/// Parse a stored customer row.
pub fn customer_fact(
    owner_id: Option<&str>,
    created_us: Option<i64>,
) -> Result<RecordFact, StoreError> {
    Ok(RecordFact::Customer {
        owner: owner_id
            .map(|o| {
                o.parse::<UserId>()
                    .map_err(|_| StoreError::Corrupt(format!("report customer owner {o}")))
            })
            .transpose()?,
        created_at: created_us.map(|c| from_us(c, "created")).transpose()?,
    })
}

/// A stored fact kind.
pub fn kind(s: &str) -> Result<&'static str, StoreError> {
    ["visit", "sale", "feedback"]
        .into_iter()
        .find(|k| *k == s)
        .ok_or_else(|| StoreError::Corrupt(format!("report fact kind {s}")))
}

/// A customer's fact from `report_customers`' `customer_id, owner_id,
/// created_us`.
pub fn customer_row(r: &impl Cols) -> Result<(RecordId, RecordFact), StoreError> {
    let id = record_id(required(r.text(0)?, 0)?)?;
    Ok((id, customer_fact(r.text(1)?, r.int(2)?)?))
}

/// A fact row of the queries of [`FactPart::queries`]: for `visits`,
/// `record_id, at_us, customer_id, amends, credited_to`; otherwise
/// `record_id, kind, at_us, customer_id`, then the sale and feedback
/// columns, then `credited_to`.
pub fn fact_row(r: &impl Cols, visits: bool) -> Result<(RecordId, FactColumns<&str>), StoreError> {
    let id = |i| r.bytes(i)?.map(record_id_bytes).transpose();
    let user = |i| Ok::<_, StoreError>(id(i)?.map(|r: RecordId| UserId(r.0)));
    let record = required(id(0)?, 0)?;
    let cols = if visits {
        FactColumns {
            amends: id(3)?,
            credited_to: user(4)?,
            ..FactColumns::new("visit", r.i64(1)?, required(id(2)?, 2)?)
        }
    } else {
        FactColumns {
            minor: r.int(4)?,
            minor_digits: r.int(5)?,
            voided: r.int(6)?,
            feedback_kind: r.text(7)?,
            csat: r.int(8)?,
            nps: r.int(9)?,
            resolved_us: r.int(10)?,
            credited_to: user(11)?,
            ..FactColumns::new(
                kind(required(r.text(1)?, 1)?)?,
                r.i64(2)?,
                required(id(3)?, 3)?,
            )
        }
    };
    Ok((record, cols))
}

fn required<T>(v: Option<T>, i: usize) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Corrupt(format!("report fact column {i} is NULL")))
}

/// Parse a stored record id (text, in `report_customers`).
pub fn record_id(s: &str) -> Result<RecordId, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("report fact record {s}")))
}

/// A record id stored as 16 bytes (in `report_facts`).
pub fn record_id_bytes(b: &[u8]) -> Result<RecordId, StoreError> {
    uuid::Uuid::from_slice(b)
        .map(RecordId)
        .map_err(|_| StoreError::Corrupt(format!("report fact id of {} bytes", b.len())))
}

/// Visits that started in `[$1, $2)`. Only a visit's columns are read:
/// visits are most of the rows. Written with `$n` placeholders; SQLite
/// runs them with `?n`.
pub const VISITS_SQL: &str = "SELECT record_id, at_us, customer_id, amends, credited_to \
     FROM report_facts WHERE kind = 'visit' AND at_us >= $1 AND at_us < $2";

/// Amending visits outside the window `[$1, $2)`: an amendment outside the
/// window still replaces a visit inside it. Same columns as [`VISITS_SQL`].
pub const AMENDMENTS_SQL: &str = "SELECT record_id, at_us, customer_id, amends, credited_to \
     FROM report_facts WHERE amends IS NOT NULL AND NOT (at_us >= $1 AND at_us < $2)";

/// Sales and feedback for the window `[$1, $2)`: those opened or sold in
/// it, and complaints resolved in it.
pub const SALES_FEEDBACK_SQL: &str = "SELECT record_id, kind, at_us, customer_id, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us, credited_to \
     FROM report_facts WHERE kind IN ('sale', 'feedback') AND at_us >= $1 AND at_us < $2 \
     UNION ALL SELECT record_id, kind, at_us, customer_id, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us, credited_to \
     FROM report_facts WHERE resolved_us >= $1 AND resolved_us < $2 AND NOT (at_us >= $1 AND at_us < $2)";

/// Which of a window's fact rows to read: all of them, or one of two
/// parts that together are all of them (for reading on two threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactPart {
    /// Every row the window needs.
    All,
    /// Visits that started before the instant (µs), inside the window.
    VisitsBefore(i64),
    /// Everything else: visits from the instant on, amendments outside the
    /// window, sales and feedback.
    AllFrom(i64),
}

/// One query of a part: SQL, its two bounds, and whether its rows have
/// the visit columns ([`VISITS_SQL`]) or the sale and feedback ones.
pub type FactQuery = (&'static str, i64, i64, bool);

impl FactPart {
    /// The queries that read this part of the window `[from, to)`.
    pub fn queries(self, from: i64, to: i64) -> Vec<FactQuery> {
        let rest = |mid: i64| {
            vec![
                (VISITS_SQL, mid, to, true),
                (AMENDMENTS_SQL, from, to, true),
                (SALES_FEEDBACK_SQL, from, to, false),
            ]
        };
        match self {
            FactPart::All => rest(from),
            FactPart::VisitsBefore(mid) => vec![(VISITS_SQL, from, mid.clamp(from, to), true)],
            FactPart::AllFrom(mid) => rest(mid.clamp(from, to)),
        }
    }
}
