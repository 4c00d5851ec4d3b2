//! What a report reads: the reps in view ([`Audience`]) and the records in
//! the caller's scope as plain values ([`Data`]).

use crate::error::ApiError;
use crate::scope::scope_filter;
use crate::store::facts::FactPart;
use crate::store::{PairFn, ReadTx, ScopeFilter, StoreError, TeamRow, UserRow};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, Sender, channel};
use sync_protocol::metrics::{FactIndex, FactIndexBuilder, Period, PlainRecord, RecordFact};
use sync_protocol::schema::{self, Role};
use sync_protocol::time::parse_ts;
use sync_protocol::{ErrorCode, RecordId, TeamId, UserId};

/// Collections reports read; the others are skipped while loading.
const READ: &[&str] = &[
    "customers",
    "visits",
    "sales",
    "feedback",
    "courses",
    "training_assignments",
    "users",
    "teams",
    "goals",
    "work_reports",
    "evaluations",
];

/// The reps a report covers, and the teams they belong to.
#[derive(Clone, Debug, Default)]
pub struct Audience {
    /// Reps in view, by username.
    pub reps: Vec<UserRow>,
    /// Every team, by id.
    pub teams: HashMap<TeamId, TeamRow>,
    /// Teams in view (whose team goals and team rows show).
    pub team_ids: HashSet<TeamId>,
}

impl Audience {
    /// Who `actor` may report on, narrowed to the team named `team`.
    pub fn resolve(
        tx: &mut dyn ReadTx,
        actor: &UserRow,
        team: Option<&str>,
    ) -> Result<Self, ApiError> {
        super::require_report_role(actor)?;
        let teams: HashMap<TeamId, TeamRow> = tx.teams()?.into_iter().map(|t| (t.id, t)).collect();
        let wanted = match team {
            None => None,
            Some(name) => Some(
                teams
                    .values()
                    .find(|t| t.name == name)
                    .map(|t| t.id)
                    .ok_or_else(|| ApiError::not_found(format!("no team named {name:?}")))?,
            ),
        };
        let users = tx.users()?;
        let reps: Vec<UserRow> = match actor.role {
            Role::Supervisor => {
                if wanted.is_some() && wanted != actor.team_id {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        "a supervisor sees reports of their own team only",
                    ));
                }
                users
                    .into_iter()
                    .filter(|u| {
                        u.role == Role::Rep
                            && ((actor.team_id.is_some() && u.team_id == actor.team_id)
                                || u.supervisor_id == Some(actor.id))
                    })
                    .collect()
            }
            _ => users
                .into_iter()
                .filter(|u| u.role == Role::Rep && (wanted.is_none() || u.team_id == wanted))
                .collect(),
        };
        let team_ids = match (actor.role, wanted) {
            (_, Some(t)) => HashSet::from([t]),
            (Role::Supervisor, None) => actor.team_id.into_iter().collect(),
            _ => teams.keys().copied().collect(),
        };
        Ok(Audience {
            reps,
            teams,
            team_ids,
        })
    }

    /// Ids of the reps in view.
    pub fn rep_ids(&self) -> HashSet<UserId> {
        self.reps.iter().map(|r| r.id).collect()
    }

    /// A rep's team name, if any.
    pub fn team_name(&self, team: Option<TeamId>) -> Option<&str> {
        team.and_then(|t| self.teams.get(&t))
            .map(|t| t.name.as_str())
    }
}

/// One record as plain values.
#[derive(Clone, Debug)]
pub struct Owned {
    /// Collection.
    pub collection: String,
    /// Id.
    pub id: RecordId,
    /// Current values.
    pub fields: Map<String, Value>,
}

impl Owned {
    /// A text field.
    pub fn str(&self, f: &str) -> Option<&str> {
        self.fields.get(f).and_then(Value::as_str)
    }

    /// A timestamp field.
    pub fn ts(&self, f: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.str(f).and_then(parse_ts)
    }

    /// A record reference.
    pub fn rec(&self, f: &str) -> Option<RecordId> {
        self.str(f).and_then(|s| s.parse().ok())
    }

    /// A user reference.
    pub fn user(&self, f: &str) -> Option<UserId> {
        self.str(f).and_then(|s| s.parse().ok())
    }

    fn plain(&self) -> PlainRecord<'_> {
        PlainRecord {
            collection: &self.collection,
            id: self.id,
            archived: false,
            fields: &self.fields,
        }
    }
}

/// The part of a stored `RecordState` reports read: values without their
/// clocks (decoded straight into the map, skipping the HLC registers).
#[derive(serde::Deserialize)]
struct ValuesOnly {
    id: RecordId,
    fields: BTreeMap<String, FieldValue>,
    #[serde(default)]
    archived: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct FieldValue {
    value: Value,
}

/// Collections [`Data::load_for_period`] reads as records (the rest come
/// from the report facts).
const SMALL: &[&str] = &[
    "courses",
    "training_assignments",
    "users",
    "teams",
    "goals",
    "work_reports",
    "evaluations",
];

/// A period as `[from, to)` in microseconds since the epoch (UTC days, as
/// [`Period::contains`] counts them).
fn window_us(period: &Period) -> (i64, i64) {
    let us = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_micros())
    };
    (us(period.start()), us(period.end()))
}

/// One stored state as plain values (`None` when archived).
fn decode(collection: &str, state: &str) -> Result<Option<Owned>, String> {
    match serde_json::from_str::<ValuesOnly>(state) {
        Ok(s) if s.archived.is_none() => Ok(Some(Owned {
            collection: collection.to_owned(),
            id: s.id,
            fields: s
                .fields
                .into_iter()
                .filter(|(_, f)| !f.value.is_null())
                .map(|(k, f)| (k, f.value))
                .collect(),
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(format!("record state: {e}")),
    }
}

/// The records in the caller's scope that reports read (archived ones left
/// out), grouped by collection, with the metric fact index built once.
pub struct Data {
    /// Records by collection.
    pub by_collection: BTreeMap<String, Vec<Owned>>,
    /// Current owner of each customer.
    pub owner_of: HashMap<RecordId, UserId>,
    /// The metric facts, per rep.
    pub facts: FactIndex,
}

impl Data {
    /// Read every record in `actor`'s scope in one pass.
    pub fn load(tx: &mut dyn ReadTx, actor: &UserRow) -> Result<Self, ApiError> {
        let scope = scope_filter(tx, actor)?;
        let by_collection = records_of(tx, &scope, READ)?;
        let facts = FactIndex::new(by_collection.values().flatten().map(Owned::plain), None);
        let owner_of = by_collection
            .get("customers")
            .into_iter()
            .flatten()
            .filter_map(|c| c.user("owner_id").map(|o| (c.id, o)))
            .collect();
        Ok(Data {
            by_collection,
            owner_of,
            facts,
        })
    }

    /// What the scorecard over `period` reads, without decoding visits,
    /// sales, feedback or customers: the small collections from their
    /// records, and the metric facts from the store's report facts (every
    /// customer in scope, and the visits, sales and feedback that matter to
    /// `period`, see [`ReportRead::report_facts`](crate::store::ReportRead::report_facts)). Its fact index gives the same
    /// metrics over `period` as [`Data::load`]'s.
    ///
    /// With a [`FactHelper`] (a second transaction on the same snapshot,
    /// on another thread), the facts are read in two parts at once: the
    /// earlier visits here, the rest there.
    pub fn load_for_period(
        tx: &mut dyn ReadTx,
        actor: &UserRow,
        period: &Period,
        now: chrono::DateTime<chrono::Utc>,
        helper: Option<FactHelper>,
    ) -> Result<Self, ApiError> {
        let scope = scope_filter(tx, actor)?;
        let by_collection = records_of(tx, &scope, SMALL)?;
        let mut builder = FactIndexBuilder::new(None);
        for r in by_collection.values().flatten() {
            builder.add_record(&r.plain());
        }
        let mut owner_of = HashMap::new();
        tx.report_customers(&scope, &mut |id, fact| {
            if let RecordFact::Customer {
                owner: Some(owner), ..
            } = &fact
            {
                owner_of.insert(id, *owner);
            }
            builder.add_fact(id, fact);
        })?;
        let (from, to) = window_us(period);
        let builder = match helper {
            Some(helper) => {
                // Visits spread over the elapsed part of the window; the
                // helper also reads sales and feedback, about a tenth of
                // the rows, so this side takes a little more than half.
                let until = to.min(now.timestamp_micros()).max(from);
                let mid = from + (until - from) / 20 * 11;
                let mut builder = builder;
                let joined = helper.read(builder.fork(), from, to, mid);
                tx.report_facts(from, to, FactPart::VisitsBefore(mid), &mut |id, f| {
                    builder.add_fact(id, f);
                })?;
                builder.join(joined.wait()?);
                builder
            }
            None => {
                index_facts_alongside(builder, |add| tx.report_facts(from, to, FactPart::All, add))?
            }
        };
        Ok(Data {
            by_collection,
            owner_of,
            facts: builder.finish(),
        })
    }

    /// The records of one collection.
    pub fn of(&self, collection: &str) -> &[Owned] {
        self.by_collection
            .get(collection)
            .map_or(&[], Vec::as_slice)
    }

    /// The rep a customer-anchored record belongs to (its customer's owner).
    pub fn owner(&self, r: &Owned) -> Option<UserId> {
        r.rec("customer_id")
            .and_then(|c| self.owner_of.get(&c).copied())
    }

    /// The rep a visit or sale counts for: the user it is credited to,
    /// else its customer's owner (the attribution rule of
    /// `sync_protocol::metrics`' facts).
    pub fn credited(&self, r: &Owned) -> Option<UserId> {
        r.user(schema::CREDIT_FIELD).or_else(|| self.owner(r))
    }

    /// Plain records, for `sync_protocol::metrics` functions.
    pub fn plain<'a>(&'a self, collection: &str) -> impl Iterator<Item = PlainRecord<'a>> {
        self.of(collection).iter().map(Owned::plain)
    }

    /// Names of records by id (customers, courses), for display.
    pub fn names(&self, collection: &str, field: &str) -> HashMap<RecordId, String> {
        self.of(collection)
            .iter()
            .filter_map(|r| r.str(field).map(|n| (r.id, n.to_owned())))
            .collect()
    }
}

/// The unarchived records of `collections` in `scope`, decoded, by collection.
fn records_of(
    tx: &mut dyn ReadTx,
    scope: &ScopeFilter,
    collections: &[&str],
) -> Result<BTreeMap<String, Vec<Owned>>, ApiError> {
    let mut by_collection: BTreeMap<String, Vec<Owned>> = BTreeMap::new();
    let mut bad: Option<String> = None;
    tx.scope_records_of(scope, collections, &mut |collection, state| {
        if bad.is_some() {
            return;
        }
        match decode(collection, state) {
            Ok(Some(o)) => by_collection
                .entry(collection.to_owned())
                .or_default()
                .push(o),
            Ok(None) => {}
            Err(e) => bad = Some(e),
        }
    })?;
    match bad {
        Some(e) => Err(ApiError::internal(anyhow::anyhow!(e))),
        None => Ok(by_collection),
    }
}

/// Facts handed from the reading thread to the indexing thread at a time.
const FACT_CHUNK: usize = 4096;

/// Run `read` (which streams facts into the function it is given) on this
/// thread while another thread adds them to `builder`: reading rows and
/// attributing facts to owners each take about half of a large
/// scorecard's time, so on two cores they overlap. Facts reach the
/// builder in the order `read` produced them.
fn index_facts_alongside(
    mut builder: FactIndexBuilder,
    read: impl FnOnce(&mut dyn FnMut(RecordId, RecordFact)) -> Result<(), StoreError>,
) -> Result<FactIndexBuilder, ApiError> {
    std::thread::scope(|s| {
        let (send, receive) = std::sync::mpsc::sync_channel::<Vec<(RecordId, RecordFact)>>(4);
        let indexer = s.spawn(move || {
            for chunk in receive {
                for (id, fact) in chunk {
                    builder.add_fact(id, fact);
                }
            }
            builder
        });
        let mut chunk = Vec::with_capacity(FACT_CHUNK);
        let read = read(&mut |id, fact| {
            chunk.push((id, fact));
            if chunk.len() == FACT_CHUNK {
                // The indexer only stops early by panicking, which is
                // reported below.
                let _ = send.send(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(FACT_CHUNK),
                ));
            }
        });
        if !chunk.is_empty() {
            let _ = send.send(chunk);
        }
        drop(send);
        let builder = indexer
            .join()
            .map_err(|_| ApiError::internal(anyhow::anyhow!("indexing report facts failed")))?;
        read?;
        Ok(builder)
    })
}

/// The far end of a [`Store::read_pair`](crate::store::Store::read_pair):
/// reads the facts of [`FactPart::AllFrom`] into a fork of the caller's
/// builder on its own transaction and thread, and hands the fork back.
pub struct FactHelper {
    ask: Sender<(FactIndexBuilder, i64, i64, i64)>,
    answer: Receiver<Result<FactIndexBuilder, StoreError>>,
}

/// What a [`FactHelper`] is reading.
pub struct Joined(Receiver<Result<FactIndexBuilder, StoreError>>);

impl FactHelper {
    /// A helper, and the closure to run as `b` of `read_pair`. The closure
    /// waits for [`FactHelper::read`] and ends without reading when the
    /// helper is dropped unasked.
    pub fn new() -> (FactHelper, Box<PairFn<'static>>) {
        let (ask, asked) = channel::<(FactIndexBuilder, i64, i64, i64)>();
        let (answer_to, answer) = channel();
        let run = move |tx: &mut dyn ReadTx| -> Result<(), StoreError> {
            if let Ok((mut fork, from, to, mid)) = asked.recv() {
                let read = tx.report_facts(from, to, FactPart::AllFrom(mid), &mut |id, f| {
                    fork.add_fact(id, f);
                });
                let _ = answer_to.send(read.map(|()| fork));
            }
            Ok(())
        };
        (FactHelper { ask, answer }, Box::new(run))
    }

    /// Start reading the facts of `[mid, to)` (and the rest of the window's
    /// `AllFrom` part) into `fork`.
    fn read(self, fork: FactIndexBuilder, from: i64, to: i64, mid: i64) -> Joined {
        let _ = self.ask.send((fork, from, to, mid));
        Joined(self.answer)
    }
}

impl Joined {
    /// The fork with the helper's facts, or why it could not read them.
    fn wait(self) -> Result<FactIndexBuilder, ApiError> {
        match self.0.recv() {
            Ok(read) => Ok(read?),
            Err(_) => Err(ApiError::internal(anyhow::anyhow!(
                "the second report reader stopped"
            ))),
        }
    }
}
