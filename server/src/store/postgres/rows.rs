//! Decoding rows into the store's row types, and the SQL that names their columns.

use super::cols::Cols;
use crate::store::{CheckIn, DeviceRow, RecordRow, RecordScope, StoreError, TeamRow, UserRow};
use postgres::Row;
use postgres::error::SqlState;
use postgres::types::FromSql;
use sync_protocol::UserId;
use sync_protocol::geo::LatLon;
use sync_protocol::schema::Role;

/// A check-in from `visit_id, started_at_ms, lat, lon` starting at column `o`.
pub(super) fn check_in_row(r: &impl Cols, user: UserId, o: usize) -> Result<CheckIn, StoreError> {
    Ok(CheckIn {
        visit_id: parse(&r.string(o)?, "visit id")?,
        user_id: user,
        started_at_ms: r.i64(o + 1)?,
        at: LatLon {
            lat: r.f64(o + 2)?,
            lon: r.f64(o + 3)?,
        },
    })
}

/// Column `i` of a row, as `T`.
pub(super) fn col<'r, T: FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

pub(super) fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad {what}: {s:?}")))
}

pub(super) fn parse_opt<T: std::str::FromStr>(
    s: Option<String>,
    what: &str,
) -> Result<Option<T>, StoreError> {
    s.map(|s| parse(&s, what)).transpose()
}

pub(super) fn seq(n: u64) -> i64 {
    n as i64
}

pub(super) fn is_unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(b) => b
            .downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::code)
            .is_some_and(|c| *c == SqlState::UNIQUE_VIOLATION),
        _ => false,
    }
}

pub(super) const USER_COLS: &str =
    "id, username, password_hash, role, team_id, supervisor_id, active, created_at";

/// A record by id, in the columns [`record_row`] reads.
pub(super) const RECORD_BY_ID: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = $1";
/// Records by a list of ids, in the same columns.
pub(super) const RECORDS_BY_IDS: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = ANY($1::text[])";

/// A record from the columns of [`RECORD_BY_ID`].
pub(super) fn record_row(r: &impl Cols) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        id: parse(&r.string(0)?, "record id")?,
        collection: r.string(1)?,
        seq: r.i64(2)? as u64,
        state: r.string(3)?,
        scope: RecordScope {
            customer_id: parse_opt(r.opt_string(4)?, "customer id")?,
            subject_user: parse_opt(r.opt_string(5)?, "user id")?,
            subject_team: parse_opt(r.opt_string(6)?, "team id")?,
            public: r.bool(7)?,
        },
    })
}

pub(super) fn user_row(r: &Row) -> Result<UserRow, StoreError> {
    user_row_at(r, 0)
}

/// A user from the [`USER_COLS`] starting at column `o`.
pub(super) fn user_row_at(r: &impl Cols, o: usize) -> Result<UserRow, StoreError> {
    let role = r.string(o + 3)?;
    Ok(UserRow {
        id: parse(&r.string(o)?, "user id")?,
        username: r.string(o + 1)?,
        password_hash: r.string(o + 2)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        team_id: parse_opt(r.opt_string(o + 4)?, "team id")?,
        supervisor_id: parse_opt(r.opt_string(o + 5)?, "user id")?,
        active: r.bool(o + 6)?,
        created_at: r.string(o + 7)?,
    })
}

/// A user from the [`USER_COLS`] starting at column `o`, if its id is not NULL.
pub(super) fn user_row_if_any(r: &impl Cols, o: usize) -> Result<Option<UserRow>, StoreError> {
    match r.text(o)? {
        Some(_) => Some(user_row_at(r, o)).transpose(),
        None => Ok(None),
    }
}

/// A device and its user from the columns of [`DEVICE_WITH_USER`].
pub(super) fn device_with_user_row(
    r: &impl Cols,
) -> Result<(DeviceRow, Option<UserRow>), StoreError> {
    Ok((device_row(r)?, user_row_if_any(r, 9)?))
}

/// A device and its user (NULL columns when the user is gone), for
/// [`Store::device_with_user`] and [`ReadTx::device_with_user`].
pub(super) const DEVICE_WITH_USER: &str = "SELECT d.id, d.user_id, d.name, d.created_at, d.last_seen_at, d.revoked_at, d.logged_out_at, d.acked_through, d.clock_drift_ms, \
     u.id, u.username, u.password_hash, u.role, u.team_id, u.supervisor_id, u.active, u.created_at \
     FROM devices d LEFT JOIN users u ON u.id = d.user_id WHERE d.token_hash = $1";

pub(super) const DEVICE_COLS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked_through, clock_drift_ms";

pub(super) fn device_row(r: &impl Cols) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: parse(&r.string(0)?, "device id")?,
        user_id: parse(&r.string(1)?, "user id")?,
        name: r.string(2)?,
        created_at: r.string(3)?,
        last_seen_at: r.opt_string(4)?,
        revoked_at: r.opt_string(5)?,
        logged_out_at: r.opt_string(6)?,
        acked_through: r.i64(7)? as u64,
        clock_drift_ms: r.int(8)?,
    })
}

pub(super) fn team_row(r: &Row) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: parse(&col::<String>(r, 0)?, "team id")?,
        name: col(r, 1)?,
        region: col(r, 2)?,
        created_at: col(r, 3)?,
    })
}

pub(super) fn ids<T: ToString>(list: &[T]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}
