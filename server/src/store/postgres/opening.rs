//! What travels in a transaction's first round trip besides its opening.
//!
//! A transaction is begun lazily: its opening (`START TRANSACTION`, the
//! plan mode or the write lock, the change head and the meta values every
//! sync reads) waits until the transaction first needs the database. Reads
//! announced before that ([`Ask`]: a push's records, customer owners and
//! earlier check-ins, the device a push or a pull starts with) are appended
//! to the same simple query as `EXECUTE`s of statements each connection
//! prepared when it opened ([`prepare_sql`]), so they reuse their plans
//! like protocol-level prepared statements do. A push then reads all it
//! needs in the round trip that takes the write lock, instead of one round
//! trip each while holding it.

use super::WRITE_LOCK;
use super::rows::{DEVICE_WITH_USER, RECORDS_BY_IDS};
use crate::store::StoreError;
use crate::store::decode::{DEVICE_COLS, USER_COLS};
use postgres::{SimpleQueryMessage, SimpleQueryRow};
use std::fmt::Write as _;
use sync_protocol::{DeviceId, RecordId, UserId};

/// Statements in every opening before the asks: `START TRANSACTION`, the
/// plan mode or the write lock, the change head, the meta values.
pub const BASE_STATEMENTS: usize = 4;
/// Position of the change head's answer in an opening.
pub const HEAD_AT: usize = 2;
/// Position of the meta values' answer in an opening.
pub const META_AT: usize = 3;

/// A read that can travel in a transaction's first round trip.
#[derive(Clone, Debug, PartialEq)]
pub enum Ask {
    /// A device by id ([`DEVICE_COLS`]).
    Device(DeviceId),
    /// A device and its user by token hash ([`DEVICE_WITH_USER`]).
    Token(Vec<u8>),
    /// Records by id ([`RECORDS_BY_IDS`]).
    Records(Vec<RecordId>),
    /// Customer owners, each with the owner's user row.
    Owners(Vec<RecordId>),
    /// A user's latest check-in before each `(before_ms, exclude)`.
    CheckIns(UserId, Vec<(i64, RecordId)>),
}

/// The statements [`Ask`]s execute, prepared once per connection.
pub fn prepare_sql() -> String {
    let u_cols = USER_COLS
        .split(", ")
        .map(|c| format!("u.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!("PREPARE fs_device(text) AS SELECT {DEVICE_COLS} FROM devices WHERE id = $1"),
        format!("PREPARE fs_token(bytea) AS {DEVICE_WITH_USER}"),
        format!("PREPARE fs_records(text[]) AS {RECORDS_BY_IDS}"),
        format!(
            "PREPARE fs_owners(text[]) AS SELECT o.customer_id, o.owner_id, {u_cols} \
             FROM customer_owners o LEFT JOIN users u ON u.id = o.owner_id \
             WHERE o.customer_id = ANY($1)"
        ),
        "PREPARE fs_check_ins(text, bigint[], text[]) AS SELECT q.i, c.visit_id, c.started_at_ms, c.lat, c.lon \
         FROM unnest($2, $3) WITH ORDINALITY AS q(before_ms, skip_id, i) \
         CROSS JOIN LATERAL (SELECT visit_id, started_at_ms, lat, lon FROM check_ins \
             WHERE user_id = $1 AND started_at_ms < q.before_ms AND visit_id <> q.skip_id \
             ORDER BY started_at_ms DESC LIMIT 1) c"
            .to_owned(),
    ]
    .join("; ")
}

/// `'{a,b,c}'`: an array literal of values whose text needs no quoting
/// (ids and numbers).
fn array<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut s = String::from("'{");
    for (i, v) in items.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v}");
    }
    s.push_str("}'");
    s
}

impl Ask {
    /// The `EXECUTE` statement. Every value is a UUID, a number or hex,
    /// written by this program, so none needs escaping.
    pub fn sql(&self) -> String {
        match self {
            Ask::Device(id) => format!("EXECUTE fs_device('{id}')"),
            Ask::Token(hash) => {
                let mut hex = String::with_capacity(hash.len() * 2);
                for b in hash {
                    let _ = write!(hex, "{b:02x}");
                }
                format!("EXECUTE fs_token(decode('{hex}', 'hex'))")
            }
            Ask::Records(ids) => format!("EXECUTE fs_records({})", array(ids)),
            Ask::Owners(ids) => format!("EXECUTE fs_owners({})", array(ids)),
            Ask::CheckIns(user, asks) => format!(
                "EXECUTE fs_check_ins('{user}', {}, {})",
                array(asks.iter().map(|(ms, _)| ms)),
                array(asks.iter().map(|(_, ex)| ex)),
            ),
        }
    }
}

/// The rows of each statement of a simple query, in order.
pub fn by_statement(messages: Vec<SimpleQueryMessage>) -> Vec<Vec<SimpleQueryRow>> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::Row(r) => rows.push(r),
            SimpleQueryMessage::CommandComplete(_) => out.push(std::mem::take(&mut rows)),
            _ => {}
        }
    }
    out
}

/// The rows of statement `i`, which must have answered.
pub fn answer(
    statements: &mut [Vec<SimpleQueryRow>],
    i: usize,
) -> Result<Vec<SimpleQueryRow>, StoreError> {
    statements
        .get_mut(i)
        .map(std::mem::take)
        .ok_or_else(|| StoreError::Corrupt(format!("statement {i} of the opening did not answer")))
}

/// Meta values every sync reads, fetched in a transaction's first round trip.
pub(super) const OPENING_META: [&str; 2] = [crate::store::META_DEVICE, crate::store::META_CLOCK];

/// A read transaction's first round trip: begin, plan every execution
/// unless its reads are `keyed` (see "Plan modes" above), then read the change head (which takes the
/// snapshot every later statement sees) and the [`OPENING_META`] values.
pub(super) fn read_opening(keyed: bool) -> String {
    let mode = if keyed { "auto" } else { "force_custom_plan" };
    format!(
        "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
         SET LOCAL plan_cache_mode = {mode}; {HEAD}; {}",
        opening_meta_sql()
    )
}

/// A write transaction's first round trip: begin, take [`WRITE_LOCK`], then
/// read the change head and the [`OPENING_META`] values on a snapshot taken
/// after the lock was granted. Nothing else changes them until this
/// transaction ends.
pub(super) fn write_opening() -> String {
    format!(
        "START TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SELECT pg_advisory_xact_lock({WRITE_LOCK}); {HEAD}; {}",
        opening_meta_sql()
    )
}

pub(super) const HEAD: &str = "SELECT head FROM change_seq WHERE id = 1";

pub(super) fn opening_meta_sql() -> String {
    let keys: Vec<String> = OPENING_META.iter().map(|k| format!("'{k}'")).collect();
    format!(
        "SELECT key, value FROM meta WHERE key IN ({})",
        keys.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_are_written_as_literals() {
        let id = RecordId(uuid::Uuid::from_u128(1));
        let user = UserId(uuid::Uuid::from_u128(2));
        assert_eq!(
            Ask::Records(vec![id, id]).sql(),
            format!("EXECUTE fs_records('{{{id},{id}}}')")
        );
        assert_eq!(
            Ask::Records(vec![]).sql(),
            "EXECUTE fs_records('{}')".to_owned()
        );
        assert_eq!(
            Ask::CheckIns(user, vec![(5, id), (-7, id)]).sql(),
            format!("EXECUTE fs_check_ins('{user}', '{{5,-7}}', '{{{id},{id}}}')")
        );
        assert_eq!(
            Ask::Token(vec![0, 0xab, 0x10]).sql(),
            "EXECUTE fs_token(decode('00ab10', 'hex'))"
        );
    }
}
