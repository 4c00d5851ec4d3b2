//! A generated scorecard workload, written through the server's own push
//! rules ([`crate::sync::push::push`]) straight into a store: teams, reps
//! with a device each, their customers, and visits, sales and feedback over
//! one period. The records are exactly what devices pushing the same ops
//! would leave (validation, merge, server fields, report facts), without
//! the HTTP round trips, so a benchmark can seed a million visits.

use crate::accounts;
use crate::auth::{self, Actor};
use crate::config::HashCost;
use crate::error::ApiError;
use crate::store::{self, DeviceRow, Store};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sync_protocol::metrics::Period;
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::wire::{CreateTeamRequest, CreateUserRequest, PushRequest};
use sync_protocol::{DeviceId, ErrorCode, HlcClock, Op, OpId, OpKind, RecordId, StateChange};

/// Ops per push (one write transaction each).
const BATCH: usize = 500;

/// What to generate.
#[derive(Clone, Debug)]
pub struct ScorecardWorkload {
    /// Teams (regions cycle over four names).
    pub teams: usize,
    /// Reps, spread over the teams round-robin.
    pub reps: usize,
    /// Customers of each rep.
    pub customers_per_rep: usize,
    /// Visits in total (every [`AMEND_EVERY`]th of a rep's amends the rep's previous visit).
    pub visits: usize,
    /// Feedback entries in total: surveys, complaints (half resolved),
    /// suggestions and praise in turn.
    pub feedback: usize,
    /// Sales in total (every tenth voided).
    pub sales: usize,
    /// The period every visit, sale and feedback entry falls in (up to `now`).
    pub period: Period,
}

/// Every this many visits of a rep, one amends the rep's previous visit.
pub const AMEND_EVERY: usize = 500;

impl ScorecardWorkload {
    /// The visits of rep number `i` (0-based) of `self.reps`, when `total`
    /// are spread over the reps round-robin.
    fn share(&self, total: usize, i: usize) -> usize {
        total / self.reps + usize::from(i < total % self.reps)
    }

    /// Visits that amend another, which the scorecard counts once with the
    /// visit they replace.
    pub fn amendments(&self) -> usize {
        (0..self.reps)
            .map(|i| self.share(self.visits, i) / AMEND_EVERY)
            .sum()
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seeded {
    /// Reps created.
    pub reps: usize,
    /// Customers created.
    pub customers: usize,
    /// Ops applied (creates and transitions).
    pub ops: usize,
}

/// Deterministic pseudo-random numbers (the same workload every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// One rep's laptop: its device and clock.
struct Laptop {
    actor: Actor,
    clock: HlcClock,
    seq: u64,
    ops: Vec<Op>,
}

impl Laptop {
    fn op(
        &mut self,
        collection: &str,
        record: RecordId,
        kind: OpKind,
        fields: Value,
        now: DateTime<Utc>,
    ) {
        self.seq += 1;
        let Value::Object(fields) = fields else {
            return;
        };
        self.ops.push(Op {
            op_id: OpId::new_v7(now),
            device_id: self.actor.device.id,
            device_seq: self.seq,
            hlc: self.clock.now(now),
            schema_version: SCHEMA_VERSION,
            collection: collection.into(),
            record_id: record,
            kind,
            fields: fields.into_iter().collect(),
            transition: None,
            base: None,
        });
    }

    /// Push the queued ops, `BATCH` at a time; every op must be applied.
    fn flush(&mut self, store: &dyn Store, now: DateTime<Utc>) -> Result<usize, ApiError> {
        let mut applied = 0;
        for chunk in std::mem::take(&mut self.ops).chunks(BATCH) {
            let req = PushRequest {
                ops: chunk.to_vec(),
                clock: self.clock.now(now),
            };
            let pushed = store::write(store, |tx| {
                crate::sync::push::push(tx, &self.actor, &req, now)
            })?;
            for o in &pushed.response.outcomes {
                if let sync_protocol::wire::Outcome::Rejected { .. } = o.outcome {
                    return Err(ApiError::new(
                        ErrorCode::InvalidOp,
                        format!("a generated op was rejected: {:?}", o.outcome),
                    ));
                }
            }
            applied += chunk.len();
        }
        Ok(applied)
    }
}

/// Write `w` into `store` as the `admin` account (which must exist:
/// [`accounts::bootstrap`]) and the reps it creates, at wall time `now`.
pub fn seed_scorecard_workload(
    store: &dyn Store,
    w: &ScorecardWorkload,
    now: DateTime<Utc>,
) -> Result<Seeded, ApiError> {
    let start = w
        .period
        .start()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc());
    let end = w
        .period
        .end()
        .and_hms_opt(0, 0, 0)
        .map_or(now, |t| t.and_utc())
        .min(now);
    let span = (end - start).num_seconds().max(1);
    let mut rng = Lcg(0x5eed);
    let at = |rng: &mut Lcg| start + Duration::seconds(rng.below(span as u64) as i64);

    let admin = store::read(store, |tx| tx.user_by_name("admin"))?
        .ok_or_else(|| ApiError::not_found("no admin account: bootstrap the store first"))?;
    let admin = Actor {
        device: register(store, admin.id, "seed admin", now)?,
        user: admin,
    };
    // Every rep gets the same random password nobody is told.
    let password = auth::random_password();
    let password_hash = auth::hash_password(&password, HashCost::Standard)?;
    let regions = ["North", "South", "East", "West"];
    let mut teams = Vec::with_capacity(w.teams);
    for t in 0..w.teams {
        let team = store::write(store, |tx| {
            accounts::create_team(
                tx,
                &admin,
                &CreateTeamRequest {
                    name: format!("team-{t:04}"),
                    region: Some(regions[t % regions.len()].to_owned()),
                },
                now,
            )
        })?;
        teams.push(team.name);
    }

    let mut seeded = Seeded::default();
    for i in 0..w.reps {
        let req = CreateUserRequest {
            username: format!("rep-{i:05}"),
            password: password.clone(),
            role: Role::Rep,
            team: teams.get(i % teams.len().max(1)).cloned(),
            supervisor: None,
        };
        let user = store::write(store, |tx| {
            let info = accounts::create_user(tx, &admin, &req, password_hash.clone(), now);
            match info {
                Ok(_) => Ok(tx.user_by_name(&req.username)?),
                Err(e) => Err(e),
            }
        })?
        .ok_or_else(|| ApiError::not_found("the rep just created"))?;
        let device = register(store, user.id, "seed laptop", now)?;
        let mut laptop = Laptop {
            clock: HlcClock::new(device.id),
            actor: Actor { user, device },
            seq: 0,
            ops: Vec::new(),
        };
        let mut customers = Vec::with_capacity(w.customers_per_rep);
        for k in 0..w.customers_per_rep {
            let id = RecordId::new_v7(now);
            // Some customers are new in the period, the rest older.
            let created = if k % 5 == 0 {
                at(&mut rng)
            } else {
                start - Duration::days(30 + k as i64)
            };
            laptop.op(
                "customers",
                id,
                OpKind::Create,
                json!({"name": format!("Customer {i}-{k}"), "created_at": format_ts(created)}),
                now,
            );
            customers.push(id);
        }
        let customer = |rng: &mut Lcg| customers[rng.below(customers.len() as u64) as usize];
        let mut last_visit: Option<(RecordId, RecordId)> = None;
        for j in 0..w.share(w.visits, i) {
            let id = RecordId::new_v7(now);
            let mut f = json!({"started_at": format_ts(at(&mut rng))});
            let c = match last_visit {
                Some((prev, c)) if j % AMEND_EVERY == AMEND_EVERY - 1 => {
                    f["amends"] = json!(prev.to_string());
                    c
                }
                _ => customer(&mut rng),
            };
            f["customer_id"] = json!(c.to_string());
            laptop.op("visits", id, OpKind::Create, f, now);
            last_visit = Some((id, c));
        }
        for j in 0..w.share(w.sales, i) {
            let sold = at(&mut rng);
            let mut f = json!({"customer_id": customer(&mut rng).to_string(), "product": "widgets",
                               "amount": {"minor": 1_000 + rng.below(500_000), "currency": "CNY"},
                               "sold_at": format_ts(sold)});
            if j % 10 == 9 {
                f["voided_at"] = json!(format_ts(sold));
                f["void_reason"] = json!("entered twice");
            }
            laptop.op("sales", RecordId::new_v7(now), OpKind::Create, f, now);
        }
        for j in 0..w.share(w.feedback, i) {
            let id = RecordId::new_v7(now);
            let opened = at(&mut rng);
            let kind = ["survey", "complaint", "suggestion", "praise"][j % 4];
            let mut f = json!({"customer_id": customer(&mut rng).to_string(), "kind": kind,
                               "text": "generated", "opened_at": format_ts(opened)});
            if kind == "survey" || kind == "praise" {
                f["csat"] = json!(1 + rng.below(5));
                f["nps"] = json!(rng.below(11));
            }
            laptop.op("feedback", id, OpKind::Create, f, now);
            if kind == "complaint" && j % 8 == 1 {
                let resolved = (opened + Duration::minutes(30 + rng.below(4_000) as i64)).min(now);
                laptop.op(
                    "feedback",
                    id,
                    OpKind::Transition,
                    json!({"resolution": "fixed", "resolved_at": format_ts(resolved)}),
                    now,
                );
                if let Some(op) = laptop.ops.last_mut() {
                    op.transition = Some(StateChange {
                        field: "status".into(),
                        from: "open".into(),
                        to: "resolved".into(),
                    });
                }
            }
        }
        seeded.ops += laptop.flush(store, now)?;
        seeded.reps += 1;
        seeded.customers += customers.len();
    }
    Ok(seeded)
}

/// A device for `user` with a random token nobody holds.
fn register(
    store: &dyn Store,
    user: sync_protocol::UserId,
    name: &str,
    now: DateTime<Utc>,
) -> Result<DeviceRow, ApiError> {
    let device = DeviceRow {
        id: DeviceId::new_v7(now),
        user_id: user,
        name: name.to_owned(),
        created_at: format_ts(now),
        last_seen_at: None,
        revoked_at: None,
        logged_out_at: None,
        acked_through: 0,
        clock_drift_ms: None,
    };
    let (_, token_hash) = auth::new_token();
    store::write(store, |tx| tx.upsert_device(&device, &token_hash))?;
    Ok(device)
}
