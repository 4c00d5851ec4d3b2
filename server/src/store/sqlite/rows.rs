//! Decoding rows into the store's row types, the statement cache, and
//! small SQL helpers.

use crate::store::{DeviceRow, StoreError, TeamRow, UserRow};
use rusqlite::{Connection, Row};
use sync_protocol::schema::Role;

/// Running statements through the connection's statement cache.
pub(super) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }
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

pub(super) const USER_COLS: &str =
    "id, username, password_hash, role, team_id, supervisor_id, active, created_at";

pub(super) type RawUser = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    String,
);

pub(super) fn raw_user(r: &Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

pub(super) fn user_row(raw: RawUser) -> Result<UserRow, StoreError> {
    let (id, username, password_hash, role, team_id, supervisor_id, active, created_at) = raw;
    Ok(UserRow {
        id: parse(&id, "user id")?,
        username,
        password_hash,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        team_id: parse_opt(team_id, "team id")?,
        supervisor_id: parse_opt(supervisor_id, "user id")?,
        active,
        created_at,
    })
}

pub(super) const DEVICE_COLS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked_through, clock_drift_ms";

pub(super) type RawDevice = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

pub(super) fn raw_device(r: &Row<'_>) -> rusqlite::Result<RawDevice> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

pub(super) fn device_row(raw: RawDevice) -> Result<DeviceRow, StoreError> {
    let (id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked, drift) =
        raw;
    Ok(DeviceRow {
        id: parse(&id, "device id")?,
        user_id: parse(&user_id, "user id")?,
        name,
        created_at,
        last_seen_at,
        revoked_at,
        logged_out_at,
        acked_through: acked as u64,
        clock_drift_ms: drift,
    })
}

pub(super) fn team_row(
    raw: (String, String, Option<String>, String),
) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: parse(&raw.0, "team id")?,
        name: raw.1,
        region: raw.2,
        created_at: raw.3,
    })
}

pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
