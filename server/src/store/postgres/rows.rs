//! SQL shared by a transaction's reads and its opening (records by id, a
//! device with its user), and small helpers for binding and errors. Rows
//! are decoded by `store::decode`.

use crate::store::StoreError;
use postgres::Row;
use postgres::error::SqlState;
use postgres::types::FromSql;

/// Column `i` of a row, as `T`.
pub(super) fn col<'r, T: FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
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

/// A record by id, in the columns [`record_row`](crate::store::decode::record_row) reads.
pub(super) const RECORD_BY_ID: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = $1";
/// Records by a list of ids, in the same columns.
pub(super) const RECORDS_BY_IDS: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = ANY($1::text[])";

/// A device and its user (NULL columns when the user is gone), for
/// [`Store::device_with_user`](crate::store::Store::device_with_user) and
/// [`AccountRead::device_with_user`](crate::store::AccountRead::device_with_user).
pub(super) const DEVICE_WITH_USER: &str = "SELECT d.id, d.user_id, d.name, d.created_at, d.last_seen_at, d.revoked_at, d.logged_out_at, d.acked_through, d.clock_drift_ms, \
     u.id, u.username, u.password_hash, u.role, u.team_id, u.supervisor_id, u.active, u.created_at \
     FROM devices d LEFT JOIN users u ON u.id = d.user_id WHERE d.token_hash = $1";

pub(super) fn ids<T: ToString>(list: &[T]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}
