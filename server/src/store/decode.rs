//! Row decoding both stores share: each row shape is read by one function
//! over [`Cols`], which SQLite's rows and PostgreSQL's (binary and text)
//! rows implement, from the columns its documentation names (a `…_COLS`
//! list where the stores build their SQL from one). Only the SQL differs
//! between the stores.

use super::{
    CheckIn, ConflictRow, DecisionRow, DeviceRow, OpRow, ProblemRow, RecordRow, RecordScope, Side,
    StoreError, TeamRow, UserRow,
};
use chrono::{DateTime, Utc};
use sync_protocol::geo::LatLon;
use sync_protocol::ownership::Reassignment;
use sync_protocol::schema::Role;
use sync_protocol::wire::Verdict;
use sync_protocol::{DeviceId, Hlc, UserId};

/// The columns of one row, by position.
pub trait Cols {
    /// A text column (`None`: NULL).
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError>;
    /// An integer column.
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A floating-point column.
    fn float(&self, i: usize) -> Result<Option<f64>, StoreError>;
    /// A boolean column.
    fn flag(&self, i: usize) -> Result<Option<bool>, StoreError>;
    /// A binary column (an id stored as 16 bytes).
    fn bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError>;

    /// A text column that may not be NULL.
    fn string(&self, i: usize) -> Result<String, StoreError> {
        self.text(i).and_then(|v| present(v, i)).map(str::to_owned)
    }
    /// A text column that may be NULL.
    fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.text(i)?.map(str::to_owned))
    }
    /// An integer column that may not be NULL.
    fn i64(&self, i: usize) -> Result<i64, StoreError> {
        self.int(i).and_then(|v| present(v, i))
    }
    /// A floating-point column that may not be NULL.
    fn f64(&self, i: usize) -> Result<f64, StoreError> {
        self.float(i).and_then(|v| present(v, i))
    }
    /// A boolean column that may not be NULL.
    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.flag(i).and_then(|v| present(v, i))
    }
    /// A text column holding a `T` (an id), which may not be NULL.
    fn parsed<T: std::str::FromStr>(&self, i: usize, what: &str) -> Result<T, StoreError> {
        parse(&self.string(i)?, what)
    }
    /// A text column holding a `T`, or NULL.
    fn opt_parsed<T: std::str::FromStr>(
        &self,
        i: usize,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        self.text(i)?.map(|s| parse(s, what)).transpose()
    }
}

fn present<T>(v: Option<T>, i: usize) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
}

/// Column `i` could not be read: `e` says why.
pub fn bad_column(i: usize, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {i}: {e}"))
}

/// Parse a stored value, or say which one was corrupt.
pub fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad {what}: {s:?}")))
}

/// Parse a stored value that may be missing.
pub fn parse_opt<T: std::str::FromStr>(
    s: Option<String>,
    what: &str,
) -> Result<Option<T>, StoreError> {
    s.map(|s| parse(&s, what)).transpose()
}

/// The columns [`user_row`] reads.
pub const USER_COLS: &str =
    "id, username, password_hash, role, team_id, supervisor_id, active, created_at";

/// A user from the [`USER_COLS`] starting at column `o`.
pub fn user_row(r: &impl Cols, o: usize) -> Result<UserRow, StoreError> {
    let role = r.string(o + 3)?;
    Ok(UserRow {
        id: r.parsed(o, "user id")?,
        username: r.string(o + 1)?,
        password_hash: r.string(o + 2)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        team_id: r.opt_parsed(o + 4, "team id")?,
        supervisor_id: r.opt_parsed(o + 5, "user id")?,
        active: r.bool(o + 6)?,
        created_at: r.string(o + 7)?,
    })
}

/// A user from the [`USER_COLS`] starting at column `o`, if its id is not
/// NULL (an outer join found none).
pub fn user_row_if_any(r: &impl Cols, o: usize) -> Result<Option<UserRow>, StoreError> {
    match r.text(o)? {
        Some(_) => Some(user_row(r, o)).transpose(),
        None => Ok(None),
    }
}

/// The columns [`team_row`] reads.
pub const TEAM_COLS: &str = "id, name, region, created_at";

/// A team from the [`TEAM_COLS`].
pub fn team_row(r: &impl Cols) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: r.parsed(0, "team id")?,
        name: r.string(1)?,
        region: r.opt_string(2)?,
        created_at: r.string(3)?,
    })
}

/// The columns [`device_row`] reads.
pub const DEVICE_COLS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked_through, clock_drift_ms";

/// A device from the [`DEVICE_COLS`].
pub fn device_row(r: &impl Cols) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: r.parsed(0, "device id")?,
        user_id: r.parsed(1, "user id")?,
        name: r.string(2)?,
        created_at: r.string(3)?,
        last_seen_at: r.opt_string(4)?,
        revoked_at: r.opt_string(5)?,
        logged_out_at: r.opt_string(6)?,
        acked_through: r.i64(7)? as u64,
        clock_drift_ms: r.int(8)?,
    })
}

/// A device and its user from the [`DEVICE_COLS`] followed by the
/// [`USER_COLS`] of an outer join (NULL when the user is gone).
pub fn device_with_user_row(r: &impl Cols) -> Result<(DeviceRow, Option<UserRow>), StoreError> {
    Ok((device_row(r)?, user_row_if_any(r, 9)?))
}

/// A record from `id, collection, seq, state, customer_id, subject_user,
/// subject_team, public` (the stores' look-ups by id spell them out: their
/// statement caches key on the SQL text).
pub fn record_row(r: &impl Cols) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        id: r.parsed(0, "record id")?,
        collection: r.string(1)?,
        seq: r.i64(2)? as u64,
        state: r.string(3)?,
        scope: RecordScope {
            customer_id: r.opt_parsed(4, "customer id")?,
            subject_user: r.opt_parsed(5, "user id")?,
            subject_team: r.opt_parsed(6, "team id")?,
            public: r.bool(7)?,
        },
    })
}

/// The columns [`keyed_op_row`] reads.
pub const OP_COLS: &str = "device_id, device_seq, op_id, user_id, op, outcome, at";

/// A stored op with its key, from the [`OP_COLS`].
pub fn keyed_op_row(r: &impl Cols) -> Result<OpRow, StoreError> {
    Ok(OpRow {
        device_id: r.parsed(0, "device id")?,
        device_seq: u64::try_from(r.i64(1)?)
            .map_err(|_| StoreError::Corrupt("a negative device_seq".into()))?,
        op_id: r.parsed(2, "op id")?,
        user_id: r.parsed(3, "user id")?,
        op: r.string(4)?,
        outcome: r.string(5)?,
        at: r.string(6)?,
    })
}

/// The op stored for `device`'s `device_seq`, from `op_id, user_id, op,
/// outcome, at`.
pub fn op_row(r: &impl Cols, device: DeviceId, device_seq: u64) -> Result<OpRow, StoreError> {
    Ok(OpRow {
        device_id: device,
        device_seq,
        op_id: r.parsed(0, "op id")?,
        user_id: r.parsed(1, "user id")?,
        op: r.string(2)?,
        outcome: r.string(3)?,
        at: r.string(4)?,
    })
}

/// The columns [`problem_row`] reads.
pub const PROBLEM_COLS: &str = "id, user_id, device_id, op, code, message, field, created_at, \
     op_id, decision, decided_by, decided_at, reason";

/// A problem from the [`PROBLEM_COLS`].
pub fn problem_row(r: &impl Cols) -> Result<ProblemRow, StoreError> {
    let decision = match r.text(9)? {
        Some(v) => Some(DecisionRow {
            verdict: Verdict::parse(v)
                .ok_or_else(|| StoreError::Corrupt(format!("bad problem decision {v:?}")))?,
            by: r.parsed(10, "user id")?,
            at: r.string(11)?,
            reason: r.opt_string(12)?,
        }),
        None => None,
    };
    Ok(ProblemRow {
        op_id: r.parsed(8, "op id")?,
        decision,
        id: r.i64(0)?,
        user_id: r.parsed(1, "user id")?,
        device_id: r.parsed(2, "device id")?,
        op: r.string(3)?,
        code: r.string(4)?,
        message: r.string(5)?,
        field: r.opt_string(6)?,
        created_at: r.string(7)?,
    })
}

/// The columns [`reassignment_row`] reads.
pub const REASSIGNMENT_COLS: &str = "from_owner, to_owner, hlc, at";

/// A reassignment from the [`REASSIGNMENT_COLS`]. One written before
/// reassignments kept the server's clock is judged by its time, as the
/// server's clock read then (its physical part).
pub fn reassignment_row(r: &impl Cols) -> Result<Reassignment, StoreError> {
    let hlc = if let Some(hlc) = r.opt_parsed::<Hlc>(2, "reassignment clock")? {
        hlc
    } else {
        let at: DateTime<Utc> = r.parsed(3, "reassignment time")?;
        Hlc::from_wall(at, DeviceId::from(uuid::Uuid::nil()))
    };
    Ok(Reassignment {
        hlc,
        from: r.parsed(0, "user id")?,
        to: r.parsed(1, "user id")?,
    })
}

/// The columns [`conflict_row`] reads.
pub const CONFLICT_COLS: &str = "collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at, \
     loser_user_id, loser_device_id, winner_user_id, winner_device_id, resolved_at, resolution, id, record_id";

/// A stored conflict, from the [`CONFLICT_COLS`].
pub fn conflict_row(r: &impl Cols) -> Result<ConflictRow, StoreError> {
    Ok(ConflictRow {
        collection: r.string(0)?,
        op_id: r.parsed(1, "op id")?,
        user_id: r.parsed(2, "user id")?,
        field: r.string(3)?,
        losing_value: r.string(4)?,
        winning_value: r.string(5)?,
        losing_hlc: r.string(6)?,
        winning_hlc: r.string(7)?,
        created_at: r.string(8)?,
        loser: Side {
            user: r.opt_parsed(9, "user id")?,
            device: r.opt_parsed(10, "device id")?,
        },
        winner: Side {
            user: r.opt_parsed(11, "user id")?,
            device: r.opt_parsed(12, "device id")?,
        },
        resolved_at: r.opt_string(13)?,
        resolution: r.opt_string(14)?,
        id: r.i64(15)?,
        record_id: r.parsed(16, "record id")?,
    })
}

/// `user`'s check-in from `visit_id, started_at_ms, lat, lon` starting at
/// column `o`.
pub fn check_in_row(r: &impl Cols, user: UserId, o: usize) -> Result<CheckIn, StoreError> {
    Ok(CheckIn {
        visit_id: r.parsed(o, "visit id")?,
        user_id: user,
        started_at_ms: r.i64(o + 1)?,
        at: LatLon {
            lat: r.f64(o + 2)?,
            lon: r.f64(o + 3)?,
        },
    })
}
