//! `POST /v1/sync/push`: one write transaction per request.
//!
//! A request that shows a second history of the device (another op under
//! an acknowledged number, or two ops under one number) applies nothing
//! new: that op, every op after it and every new op before it are
//! `device_diverged`. Otherwise, for each op, in order: a replay
//! (`device_seq <= acked_through`, the op stored under that number)
//! answers the stored outcome; the next op (`acked_through + 1`)
//! answers its stored outcome when its `op_id` was stored before (under a
//! device the client left behind), and is otherwise admitted and applied;
//! the first gap stops the request with `resend_from`. Admission
//! order: [`validate_op`] → device → clock → record lookup → scope and
//! relation → [`check_admission`] (the collection's reach, the record's
//! state, the write rules of every field) → references → merge → server
//! fields.
//! A rejected op is stored as a problem and never blocks the ops behind it.

use super::{CLOCK_LIMIT_MS, ServerClock, decode_state, gps, save_record, server_write};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::metrics::Counts;
use crate::scope::{covers_user, relation_to_team, relation_to_user, scope_filter};
use crate::store::{
    ConflictRow, OpRow, ProblemRow, RecordScope, ScopeFilter, Side, StoreError, UserRow, WriteTx,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use sync_protocol::merge::RecordState;
use sync_protocol::ownership::{Reassignment, credited_to, owner_at};
use sync_protocol::schema::rules::{self, Referent};
use sync_protocol::schema::{self, Anchor, Collection, Relation, Target};
use sync_protocol::time::{format_ts, parse_ts};
use sync_protocol::validate::{Author, check_admission, validate_op};
use sync_protocol::wire::{
    ClockWarning, Deactivation, OpOutcome, Outcome, PushRequest, PushResponse,
};
use sync_protocol::{
    DeviceId, ErrorCode as E, Fields, Hlc, Op, OpId, OpKind, RecordId, TeamId, UserId,
    ValidationError,
};

/// The answer and what happened.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The answer.
    pub response: PushResponse,
    /// Counts for metrics.
    pub counts: Counts,
}

/// An op that is refused, or a store failure.
pub(crate) enum OpError {
    Reject(ValidationError),
    Store(StoreError),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

impl From<ValidationError> for OpError {
    fn from(e: ValidationError) -> Self {
        OpError::Reject(e)
    }
}

fn reject(code: E, msg: impl Into<String>) -> OpError {
    OpError::Reject(ValidationError::new(code, msg))
}

/// Process one push inside `tx`.
pub fn push(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    req: &PushRequest,
    now: DateTime<Utc>,
) -> Result<Pushed, ApiError> {
    // Announced before the first read: a store whose reads are round trips
    // sends them with it.
    prefetch(tx, &actor.user, &req.ops)?;
    let device = tx
        .device(actor.device.id)?
        .ok_or_else(|| ApiError::new(E::Unauthenticated, "unknown device"))?;
    let mut acked = device.acked_through;
    // A deactivated user's device hands over what it wrote before the
    // deactivation (`Some(None)`: the moment is unknown, nothing is taken).
    let deactivated = if actor.user.active {
        None
    } else {
        Some(tx.deactivated_at(actor.user.id)?)
    };
    let mut server = ServerClock::load(tx)?;
    let scope = scope_filter(tx, &actor.user)?;
    let mut warning: Option<ClockWarning> = None;
    let mut note_ahead = |ahead: i64| {
        if ahead > CLOCK_LIMIT_MS && warning.is_none_or(|w| w.ahead_ms < ahead) {
            warning = Some(ClockWarning {
                ahead_ms: ahead,
                limit_ms: CLOCK_LIMIT_MS,
            });
        }
    };
    let drift = req.clock.drift_ms(now);
    note_ahead(drift);
    let _ = server
        .clock
        .observe_bounded(&req.clock, now, CLOCK_LIMIT_MS);

    let mut outcomes = Vec::with_capacity(req.ops.len());
    let mut counts = Counts::default();
    let mut resend_from = None;
    let mut seen = Seen::default();
    let mut known = Known::load(tx, actor.user.id, device.id, acked, &req.ops)?;
    let diverged_from = known.first_divergence(device.id, acked, &req.ops);
    let at = format_ts(now);
    for (i, op) in req.ops.iter().enumerate() {
        // A request that shows a second history applies nothing new: the
        // ops from the divergence on, and new ops before it, are answered
        // `device_diverged`; replays before it as usual.
        if let Some(d) = diverged_from
            && (i >= d || op.device_seq > acked)
        {
            outcomes.push(OpOutcome {
                op_id: op.op_id,
                device_seq: op.device_seq,
                outcome: if i == d {
                    diverged_at(op.device_seq)
                } else {
                    diverged_after()
                },
            });
            counts.diverged += 1;
            continue;
        }
        if op.device_seq == 0 {
            let e = ValidationError::new(E::InvalidOp, "device_seq starts at 1");
            outcomes.push(OpOutcome {
                op_id: op.op_id,
                device_seq: 0,
                outcome: Outcome::rejected(e),
            });
            counts.reject(E::InvalidOp.as_str());
            continue;
        }
        if op.device_seq <= acked {
            // The op stored under its number (else it was a divergence).
            let stored = known
                .at(device.id, op.device_seq, op.op_id)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "no stored op {} under device_seq {}",
                        op.op_id, op.device_seq
                    ))
                })?;
            outcomes.push(OpOutcome {
                op_id: op.op_id,
                device_seq: op.device_seq,
                outcome: stored_outcome(stored)?,
            });
            counts.replayed += 1;
            continue;
        }
        if op.device_seq > acked + 1 {
            resend_from = Some(acked + 1);
            break;
        }
        let outcome = if let Some(stored) = known.any(op.op_id) {
            // Sent before under another number (of an earlier device of
            // this user, whose pending ops were renumbered): its outcome,
            // never a second application.
            counts.replayed += 1;
            stored_outcome(stored)?
        } else {
            let ahead = op.hlc.drift_ms(now);
            note_ahead(ahead);
            let who = Pusher {
                author: &actor.user,
                judge: &actor.user,
                device: device.id,
                scope: &scope,
                at: op.hlc,
            };
            let admitted = match deactivated {
                Some(at) if at.is_none_or(|at| op.hlc >= at) => {
                    Err(after_deactivation(&actor.user, at))
                }
                _ => admit_and_apply(tx, &who, &mut server, &mut seen, op, now),
            };
            let outcome = match admitted {
                Ok(o) => o,
                Err(OpError::Store(e)) => return Err(e.into()),
                Err(OpError::Reject(e)) => {
                    tx.add_problem(&ProblemRow {
                        id: 0,
                        user_id: actor.user.id,
                        device_id: device.id,
                        op: serde_json::to_string(op).map_err(ApiError::internal)?,
                        code: e.code.as_str().to_owned(),
                        message: e.message.clone(),
                        field: e.field.clone(),
                        created_at: at.clone(),
                        op_id: op.op_id,
                        decision: None,
                    })?;
                    Outcome::rejected(e)
                }
            };
            match &outcome {
                Outcome::Applied => counts.applied += 1,
                Outcome::Superseded { .. } => counts.superseded += 1,
                Outcome::Rejected { code, .. } => counts.reject(code.as_str()),
                Outcome::DeviceDiverged { .. } => counts.diverged += 1,
            }
            outcome
        };
        let row = OpRow {
            device_id: device.id,
            device_seq: op.device_seq,
            op_id: op.op_id,
            user_id: actor.user.id,
            op: serde_json::to_string(op).map_err(ApiError::internal)?,
            outcome: serde_json::to_string(&outcome).map_err(ApiError::internal)?,
            at: at.clone(),
        };
        tx.add_op(&row)?;
        // Kept for the rest of the request without its text (a request
        // may carry megabytes of ops): only its key and outcome are read.
        known.add(OpRow {
            op: String::new(),
            ..row
        });
        outcomes.push(OpOutcome {
            op_id: op.op_id,
            device_seq: op.device_seq,
            outcome,
        });
        acked += 1;
    }
    if acked != device.acked_through {
        tx.set_acked_through(device.id, acked)?;
    }
    tx.set_clock_drift(device.id, drift)?;
    tx.touch_device(device.id, &at)?;
    let server_clock = server.clock.now(now);
    server.save(tx)?;
    Ok(Pushed {
        response: PushResponse {
            outcomes,
            acked_through: acked,
            resend_from,
            server_clock,
            clock_warning: warning,
            deactivated: deactivated.map(|at| Deactivation {
                at: at.map(|h| format_ts(h.to_datetime())),
            }),
        },
        counts,
    })
}

/// The rejection of an op a deactivated user's device wrote after the
/// deactivation (at `at`, if known).
fn after_deactivation(user: &UserRow, at: Option<Hlc>) -> OpError {
    let when = at.map_or_else(String::new, |h| {
        format!(" at {}", format_ts(h.to_datetime()))
    });
    reject(
        E::UserDeactivated,
        format!(
            "written after user {} was deactivated{when}: only what the account wrote before it is taken; an administrator can reactivate the account (POST /v1/admin/users/{}/activate) or decide on the op in the problems",
            user.username, user.username
        ),
    )
}

/// The outcome of the first op whose `device_seq` names another stored op.
fn diverged_at(seq: u64) -> Outcome {
    Outcome::DeviceDiverged {
        message: format!(
            "this device already sent another change numbered {seq}: its profile was restored from a backup or copied to another computer; register a new device (POST /v1/auth/devices) and send the pending changes again under it"
        ),
    }
}

/// The outcome of the other ops not applied because of a divergence.
fn diverged_after() -> Outcome {
    Outcome::DeviceDiverged {
        message: "not applied: a change of this request showed that this device's history diverged"
            .to_owned(),
    }
}

fn stored_outcome(stored: &OpRow) -> Result<Outcome, StoreError> {
    serde_json::from_str(&stored.outcome)
        .map_err(|e| StoreError::Corrupt(format!("stored outcome: {e}")))
}

/// The stored ops of the pusher that carry the op ids of a push, read in
/// one query, and those this push stores: what tells a replay (the op
/// stored under its number), an op sent again under a new number (its id
/// stored under another) and a divergence (another op under its number).
struct Known {
    by_id: HashMap<OpId, Vec<OpRow>>,
}

impl Known {
    /// Only ops that may have been stored before are looked up: those under
    /// an acknowledged number, and those written under another device (an
    /// op keeps the clock of the device that wrote it when it is
    /// renumbered). An op this device wrote under a new number is new,
    /// unless this push names it twice, which [`Known::add`] catches.
    fn load(
        tx: &mut dyn WriteTx,
        user: UserId,
        device: DeviceId,
        acked: u64,
        ops: &[Op],
    ) -> Result<Self, StoreError> {
        let ids: Vec<OpId> = ops
            .iter()
            .filter(|o| o.device_seq <= acked || o.hlc.node != device)
            .map(|o| o.op_id)
            .collect();
        let mut by_id: HashMap<OpId, Vec<OpRow>> = HashMap::new();
        for row in tx.ops_with_ids(user, &ids)? {
            by_id.entry(row.op_id).or_default().push(row);
        }
        Ok(Self { by_id })
    }

    /// The op `id` as stored under `device`'s `seq`.
    fn at(&self, device: DeviceId, seq: u64, id: OpId) -> Option<&OpRow> {
        self.by_id
            .get(&id)?
            .iter()
            .find(|r| r.device_id == device && r.device_seq == seq)
    }

    /// The first op of `ops` that shows a second history of `device`: under
    /// an acknowledged number but not the op stored under it, or under a
    /// number an earlier op of the request has.
    fn first_divergence(&self, device: DeviceId, acked: u64, ops: &[Op]) -> Option<usize> {
        let mut numbered: HashMap<u64, OpId> = HashMap::with_capacity(ops.len());
        ops.iter().position(|op| {
            let earlier = numbered.insert(op.device_seq, op.op_id);
            op.device_seq != 0
                && (earlier.is_some_and(|id| id != op.op_id)
                    || (op.device_seq <= acked
                        && self.at(device, op.device_seq, op.op_id).is_none()))
        })
    }

    /// The op `id` as first stored, under whichever number.
    fn any(&self, id: OpId) -> Option<&OpRow> {
        self.by_id.get(&id)?.iter().min_by(|a, b| a.at.cmp(&b.at))
    }

    fn add(&mut self, row: OpRow) {
        self.by_id.entry(row.op_id).or_default().push(row);
    }
}

/// Tell the store what the ops of a push will look up: their records, the
/// customers they name and those customers' owners and, for new visits
/// with a position, the rep's earlier check-ins. A store with a round trip
/// per read then reads them at once; the answers are the same either way.
/// (Ops the device already sent are among them: which those are is only
/// known once the device is read, and they cost a few rows more.)
fn prefetch(tx: &mut dyn WriteTx, actor: &UserRow, ops: &[Op]) -> Result<(), StoreError> {
    let mut ids = Vec::with_capacity(ops.len() * 2);
    let mut customers = Vec::new();
    let mut check_ins = Vec::new();
    for op in ops {
        ids.push(op.record_id);
        let Some(coll) = schema::collection(&op.collection) else {
            continue;
        };
        // Records the op refers to (their references are judged).
        for (name, value) in &op.fields {
            if let Some(f) = coll.field(name)
                && let Some((target, _)) = schema::rules::reference(coll, f)
                && !matches!(target, "users" | "teams")
                && let Some(id) = uuid_in(Some(value))
            {
                ids.push(RecordId::from(id));
            }
        }
        // Without the stored state only a create's own fields are known.
        match coll.anchor {
            Anchor::CustomerRef(f) => {
                if let Some(c) = id_in::<RecordId>(op, None, f) {
                    ids.push(c);
                    customers.push(c);
                }
            }
            Anchor::Customer if op.kind != OpKind::Create => customers.push(op.record_id),
            _ => {}
        }
        if coll.name == "visits"
            && op.kind == OpKind::Create
            && value_of(op, None, "check_in").is_some()
            && let Some(ms) = value_of(op, None, "started_at")
                .and_then(Value::as_str)
                .and_then(parse_ts)
                .map(|t| t.timestamp_millis())
        {
            check_ins.push((ms, op.record_id));
        }
    }
    if !ids.is_empty() {
        tx.prefetch_records(&ids)?;
    }
    if !customers.is_empty() {
        tx.prefetch_customer_owners(&customers)?;
    }
    if !check_ins.is_empty() {
        tx.prefetch_previous_check_ins(actor.id, &check_ins)?;
    }
    Ok(())
}

/// The value of `name` in the op (create) or in the current state.
fn value_of<'a>(op: &'a Op, state: Option<&'a RecordState>, name: &str) -> Option<&'a Value> {
    match op.kind {
        OpKind::Create => op.fields.get(name).filter(|v| !v.is_null()),
        _ => state.and_then(|s| s.get(name)),
    }
}

fn id_in<T: From<uuid::Uuid>>(op: &Op, state: Option<&RecordState>, name: &str) -> Option<T> {
    value_of(op, state, name)
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
        .map(T::from)
}

/// The uuid in a field's value, if it holds one.
fn uuid_in(v: Option<&Value>) -> Option<uuid::Uuid> {
    v.and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
}

/// The relation to `actor` of record `id` of `coll` whose anchor fields
/// `id_of` reads (from a create op or the stored state), refusing records
/// out of scope.
fn relation(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    who: &Pusher<'_>,
    coll: &'static Collection,
    id: RecordId,
    created: bool,
    id_of: &dyn Fn(&str) -> Option<uuid::Uuid>,
) -> Result<Relation, OpError> {
    let (actor, scope) = (who.judge, who.scope);
    let user_relation =
        |tx: &mut dyn WriteTx, id: UserId, field: &str| -> Result<Relation, OpError> {
            let subject = tx.user(id)?.ok_or_else(|| {
                OpError::Reject(ValidationError::field(
                    E::NotFound,
                    field,
                    format!("there is no user {id}"),
                ))
            })?;
            Ok(relation_to_user(actor, &subject))
        };
    // The relation, and whether it holds now (not only at the op's clock).
    let customer_relation = |tx: &mut dyn WriteTx,
                             seen: &mut Seen,
                             customer: RecordId|
     -> Result<(Relation, bool), OpError> {
        let Some((owner, now)) = owner_in_scope(tx, seen, scope, customer, who.at)? else {
            return Err(reject(
                E::OutOfScope,
                format!(
                    "customer {customer} is not assigned to you (or your team), and was not when this change was made; the op was kept as a problem for review"
                ),
            ));
        };
        let subject = tx
            .user(owner)?
            .ok_or_else(|| StoreError::Corrupt(format!("customer owner {owner} missing")))?;
        Ok((relation_to_user(actor, &subject), now))
    };
    let missing = |f: &str| {
        OpError::Reject(ValidationError::field(
            E::MissingField,
            f,
            format!("{f} is required"),
        ))
    };
    match coll.anchor {
        Anchor::Customer if created => Ok(Relation::Own),
        Anchor::Customer => Ok(customer_relation(tx, seen, id)?.0),
        Anchor::CustomerRef(f) => {
            let customer = RecordId::from(id_of(f).ok_or_else(|| missing(f))?);
            if let Some(rel) = seen.relations.get(&customer) {
                return Ok(*rel);
            }
            let exists = tx
                .record(customer)?
                .is_some_and(|r| r.collection == "customers");
            if !exists {
                return Err(OpError::Reject(ValidationError::field(
                    E::NotFound,
                    f,
                    format!("customer {customer} does not exist"),
                )));
            }
            let (rel, now) = customer_relation(tx, seen, customer)?;
            if now {
                seen.relations.insert(customer, rel);
            }
            Ok(rel)
        }
        Anchor::User(f) => {
            let user = UserId::from(id_of(f).ok_or_else(|| missing(f))?);
            user_relation(tx, user, f)
        }
        Anchor::UserOrTeam(u, t) => {
            if let Some(user) = id_of(u).map(UserId::from) {
                user_relation(tx, user, u)
            } else if let Some(team) = id_of(t).map(TeamId::from) {
                if tx.team(team)?.is_none() {
                    return Err(OpError::Reject(ValidationError::field(
                        E::NotFound,
                        t,
                        format!("there is no team {team}"),
                    )));
                }
                Ok(relation_to_team(actor, team))
            } else {
                Err(reject(
                    E::MissingField,
                    format!("exactly one of {u} and {t} must be set"),
                ))
            }
        }
        Anchor::Public => Ok(Relation::Other),
    }
}

/// The owner of `customer` whom `scope` covers, and whether they own it
/// now: its owner now if covered, else its owner at clock `at` if covered
/// (an op made before a reassignment is judged as of its moment; see
/// [`sync_protocol::ownership`]); `None` when neither is covered, or the
/// customer does not exist.
fn owner_in_scope(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    scope: &ScopeFilter,
    customer: RecordId,
    at: Hlc,
) -> Result<Option<(UserId, bool)>, OpError> {
    let owner = tx
        .customer_owner(customer)?
        .ok_or_else(|| reject(E::NotFound, format!("customer {customer} does not exist")))?;
    if covers_user(scope, owner) {
        return Ok(Some((owner, true)));
    }
    let changes = seen.reassignments_of(tx, customer)?;
    let then = owner_at(owner, changes, at);
    Ok((then != owner && covers_user(scope, then)).then_some((then, false)))
}

/// The credit of new work (a record of `schema::CREDITED_TO_AUTHOR`) made
/// by `author` at clock `at`: the field that names who it counts for (the
/// rule of [`credited_to`]); empty when nobody can be named, or when it is
/// the customer's owner now (see `credits`).
fn credit(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    author: &UserRow,
    coll: &'static Collection,
    state: &RecordState,
    at: Hlc,
) -> Result<Fields, OpError> {
    let customer = coll
        .customer_field()
        .and_then(|f| state.get_str(f))
        .and_then(|s| s.parse::<RecordId>().ok());
    let owner = customer
        .map(|c| tx.customer_owner(c))
        .transpose()?
        .flatten();
    let to = credited_to(author.id, author.role, || -> Result<_, OpError> {
        let (Some(c), Some(owner)) = (customer, owner) else {
            return Ok(None);
        };
        Ok(Some(owner_at(owner, seen.reassignments_of(tx, c)?, at)))
    })?;
    Ok(super::credits::credit_fields(
        to.filter(|to| Some(*to) != owner),
    ))
}

/// Whether a record with these scope columns is in the pusher's scope (the
/// rule of [`ScopeFilter`], for one record, as of the op's clock).
fn sees(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    who: &Pusher<'_>,
    s: &RecordScope,
) -> Result<bool, OpError> {
    let scope = who.scope;
    if scope.all
        || s.public
        || s.subject_user.is_some_and(|u| scope.users.contains(&u))
        || s.subject_team.is_some_and(|t| scope.teams.contains(&t))
    {
        return Ok(true);
    }
    Ok(match s.customer_id {
        Some(c) => owner_in_scope(tx, seen, scope, c, who.at)?.is_some(),
        None => false,
    })
}

/// Judge every reference the op writes (see [`rules::reference`]); the
/// customer an op is anchored to was judged with its relation.
fn check_references(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    who: &Pusher<'_>,
    coll: &'static Collection,
    op: &Op,
) -> Result<(), OpError> {
    for (name, value) in &op.fields {
        let Some(f) = coll.field(name) else { continue };
        let Some((target_coll, target)) = rules::reference(coll, f) else {
            continue;
        };
        if coll.customer_field() == Some(f.name) {
            continue;
        }
        let Some(id) = uuid_in(Some(value)) else {
            continue;
        };
        let found = referent(tx, seen, who, target_coll, target, id)?;
        rules::judge_reference(name, target_coll, target, &id.to_string(), found)?;
    }
    Ok(())
}

/// What the store says about the record `id` of `target_coll`.
fn referent(
    tx: &mut dyn WriteTx,
    seen: &mut Seen,
    who: &Pusher<'_>,
    target_coll: &'static str,
    target: Target,
    id: uuid::Uuid,
) -> Result<Referent, OpError> {
    Ok(match target_coll {
        "users" => match tx.user(UserId::from(id))? {
            Some(u) => Referent {
                exists: true,
                visible: true,
                changeable: false,
                role: Some(u.role),
                is_author: u.id == who.author.id,
            },
            None => Referent::default(),
        },
        "teams" => Referent {
            exists: tx.team(TeamId::from(id))?.is_some(),
            visible: true,
            ..Referent::default()
        },
        _ => {
            let Some(row) = tx
                .record(RecordId::from(id))?
                .filter(|r| r.collection == target_coll)
            else {
                return Ok(Referent::default());
            };
            let state = decode_state(&row.state)?;
            if !state.exists() {
                return Ok(Referent::default());
            }
            let visible = match sees(tx, seen, who, &row.scope) {
                Ok(v) => v,
                Err(OpError::Reject(_)) => false,
                Err(OpError::Store(e)) => return Err(e.into()),
            };
            let changeable = target == Target::Changeable && visible && {
                let coll = schema::collection(target_coll)
                    .ok_or_else(|| StoreError::Corrupt(format!("no collection {target_coll}")))?;
                let id_of = |f: &str| uuid_in(state.get(f));
                match relation(tx, seen, who, coll, state.id, false, &id_of) {
                    Ok(rel) => {
                        state.archived.is_none()
                            && coll.access_for(who.judge.role).change.covers(rel)
                    }
                    Err(OpError::Reject(_)) => false,
                    Err(OpError::Store(e)) => return Err(e.into()),
                }
            };
            Referent {
                exists: true,
                visible,
                changeable,
                ..Referent::default()
            }
        }
    })
}

/// What one push has read about customers: the relation of each customer
/// an op referred to (it exists and is in scope; owners change only by
/// reassignment, never inside a push), customer locations for GPS
/// verdicts and the reassignments of customers out of scope now. Entries of
/// a record are forgotten when the push writes it (a push never reassigns).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    relations: HashMap<RecordId, Relation>,
    locations: gps::Locations,
    /// The reassignments of customers judged out of scope now.
    reassignments: HashMap<RecordId, Vec<Reassignment>>,
}

impl Seen {
    fn forget(&mut self, id: RecordId) {
        self.relations.remove(&id);
        self.locations.forget(id);
    }

    /// The reassignments of `customer`, read once per push: a push does
    /// not reassign.
    fn reassignments_of(
        &mut self,
        tx: &mut dyn WriteTx,
        customer: RecordId,
    ) -> Result<&[Reassignment], StoreError> {
        Ok(match self.reassignments.entry(customer) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(tx.reassignments(customer)?),
        })
    }
}

/// Who pushes: the user who wrote the op and their device; whose role and
/// scope admit it (the author, except when a reviewer applies a problem:
/// then the reviewer's); and when the op being judged was made (its
/// clock): a customer is in scope when it is the scope's now or was when
/// the op was made (see [`owner_in_scope`]).
#[derive(Clone, Copy)]
pub(crate) struct Pusher<'a> {
    pub author: &'a UserRow,
    pub judge: &'a UserRow,
    pub device: DeviceId,
    pub scope: &'a ScopeFilter,
    pub at: Hlc,
}

/// Who wrote the value stamped `hlc`: the device its clock names, and that
/// device's user (both unknown for a value the server stamped).
fn writer(tx: &mut dyn WriteTx, hlc: Hlc) -> Result<Side, StoreError> {
    Ok(tx.device(hlc.node)?.map_or_else(Side::default, |d| Side {
        user: Some(d.user_id),
        device: Some(d.id),
    }))
}

/// Admit `op` for `who` and apply it (see the module's admission order).
pub(crate) fn admit_and_apply(
    tx: &mut dyn WriteTx,
    who: &Pusher<'_>,
    server: &mut ServerClock,
    seen: &mut Seen,
    op: &Op,
    now: DateTime<Utc>,
) -> Result<Outcome, OpError> {
    let actor = who.author;
    let coll = validate_op(op, Author::Device)?;
    if op.device_id != who.device {
        return Err(reject(
            E::WrongDevice,
            format!(
                "the op names device {} but was pushed with the token of device {}",
                op.device_id, who.device
            ),
        ));
    }
    // A clock names the device that wrote the value, and conflicts name
    // their sides by it: it may name another device of the same user (ops
    // written before a re-login keep their clocks), never someone else's.
    if op.hlc.node != who.device
        && tx
            .device(op.hlc.node)?
            .is_some_and(|d| d.user_id != actor.id)
    {
        return Err(reject(
            E::WrongDevice,
            format!(
                "the op's clock names device {}, which is another user's",
                op.hlc.node
            ),
        ));
    }
    // Clock: a far-future op is kept but re-stamped with the server's clock.
    let restamped;
    let op = if server
        .clock
        .observe_bounded(&op.hlc, now, CLOCK_LIMIT_MS)
        .is_err()
    {
        restamped = Op {
            hlc: server.clock.now(now),
            ..op.clone()
        };
        &restamped
    } else {
        op
    };
    let who = &Pusher { at: op.hlc, ..*who };
    let existing = match tx.record(op.record_id)? {
        Some(row) if row.collection != coll.name => {
            return Err(reject(
                E::InvalidOp,
                format!(
                    "record {} belongs to {}, not {}",
                    op.record_id, row.collection, coll.name
                ),
            ));
        }
        Some(row) => Some(decode_state(&row.state)?),
        None => None,
    };
    if op.kind == OpKind::Create && existing.as_ref().is_some_and(RecordState::exists) {
        return Err(reject(
            E::AlreadyExists,
            format!("{} {} already exists", coll.name, op.record_id),
        ));
    }
    let id_of = |f: &str| uuid_in(value_of(op, existing.as_ref(), f));
    let created = op.kind == OpKind::Create;
    let rel = relation(tx, seen, who, coll, op.record_id, created, &id_of)?;
    check_admission(op, coll, existing.as_ref(), who.judge.role, rel)?;
    check_references(tx, seen, who, coll, op)?;

    let mut state = existing.unwrap_or_else(|| RecordState::new(op.record_id, coll.name));
    let applied = state.apply(op);
    if created && state.created_by.is_none() {
        state.created_by = Some(actor.id);
    }
    let me = Side {
        user: Some(actor.id),
        device: Some(who.device),
    };
    let at = format_ts(now);
    // The op lost (`conflicts`) or displaced an unseen value (`displaced`).
    let sides = applied.conflicts.iter().map(|c| (c, true));
    for (c, op_lost) in sides.chain(applied.displaced.iter().map(|c| (c, false))) {
        let other = writer(tx, if op_lost { c.winning_hlc } else { c.losing_hlc })?;
        let (loser, winner) = if op_lost { (me, other) } else { (other, me) };
        tx.add_conflict(&ConflictRow {
            id: 0,
            record_id: state.id,
            collection: coll.name.to_owned(),
            op_id: op.op_id,
            user_id: actor.id,
            field: c.field.clone(),
            losing_value: c.losing_value.to_string(),
            winning_value: c.winning_value.to_string(),
            losing_hlc: c.losing_hlc.to_string(),
            winning_hlc: c.winning_hlc.to_string(),
            created_at: at.clone(),
            loser,
            winner,
            resolved_at: None,
            resolution: None,
        })?;
    }
    // Server-computed fields.
    match coll.name {
        "customers" if created => {
            let mut f = Fields::new();
            f.insert("owner_id".into(), json!(actor.id.to_string()));
            server_write(server, &mut state, OpKind::Patch, f, now)?;
            tx.set_customer_owner(state.id, actor.id)?;
        }
        "visits" if created => {
            let mut fields = gps::judge_visit(tx, &state, actor.id, &mut seen.locations)?;
            fields.extend(credit(tx, seen, actor, coll, &state, op.hlc)?);
            server_write(server, &mut state, OpKind::Patch, fields, now)?;
        }
        _ if created && coll.credited_to_author() => {
            let fields = credit(tx, seen, actor, coll, &state, op.hlc)?;
            if !fields.is_empty() {
                server_write(server, &mut state, OpKind::Patch, fields, now)?;
            }
        }
        _ => {}
    }
    if applied.changed || created {
        seen.forget(state.id);
        save_record(tx, coll, &state)?;
    }
    Ok(if applied.conflicts.is_empty() {
        Outcome::Applied
    } else {
        Outcome::Superseded {
            conflicts: applied.conflicts,
        }
    })
}
