//! Wire messages (JSON over HTTP, under `/v1/`). Once released these shapes
//! only grow by optional fields; the golden fixtures in `tests/fixtures`
//! pin them.

mod account;

pub use account::*;

use crate::error::{ErrorCode, ValidationError};
use crate::hlc::Hlc;
use crate::id::{DeviceId, OpId, RecordId, UserId};
use crate::merge::{FieldConflict, RecordState};
use crate::op::Op;
use serde::{Deserialize, Serialize};

/// Most ops accepted in one push.
pub const MAX_PUSH_OPS: usize = 5_000;
/// Largest accepted request body, after decompression, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default and largest page of a pull.
pub const DEFAULT_PULL_LIMIT: u32 = 2_000;
/// Largest page of a pull.
pub const MAX_PULL_LIMIT: u32 = 10_000;
/// Response header of a pull: the page's `cursor`, as in the body.
pub const PULL_CURSOR_HEADER: &str = "fieldsync-cursor";
/// Response header of a pull: the page's `more` (`true` or `false`).
pub const PULL_MORE_HEADER: &str = "fieldsync-more";

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// A human sentence.
    pub message: String,
    /// The field concerned, for validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /v1/sync/push`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// Ops in `device_seq` order.
    pub ops: Vec<Op>,
    /// The device's clock when it sent the request.
    pub clock: Hlc,
}

/// What became of one op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Applied in full.
    Applied,
    /// Applied, but lost on some fields to newer (or, for first-writer-wins
    /// fields, older) writes; the winners are listed.
    Superseded {
        /// The fields it lost on.
        conflicts: Vec<FieldConflict>,
    },
    /// Not applied; kept on the server as a problem for review.
    Rejected {
        /// Stable code.
        code: ErrorCode,
        /// Why, in words.
        message: String,
        /// The field concerned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// Not applied, and nothing after it in the request either: the
    /// device already sent another op under this `device_seq` (its
    /// profile was restored from a backup, or copied to a second laptop).
    /// The client registers a new device (`POST /v1/auth/devices`) and
    /// sends its pending ops again under it, keeping their `op_id`s.
    DeviceDiverged {
        /// Why, in words.
        message: String,
    },
}

impl Outcome {
    /// A rejection from a validation error.
    pub fn rejected(e: ValidationError) -> Self {
        Outcome::Rejected {
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }

    /// `applied`, `superseded`, `rejected` or `device_diverged`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Superseded { .. } => "superseded",
            Outcome::Rejected { .. } => "rejected",
            Outcome::DeviceDiverged { .. } => "device_diverged",
        }
    }
}

/// One op's outcome in a push response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpOutcome {
    /// The op.
    pub op_id: OpId,
    /// Its sequence number.
    pub device_seq: u64,
    /// What became of it.
    pub outcome: Outcome,
}

/// The device's clock was too far ahead of the server's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClockWarning {
    /// How far ahead, in milliseconds.
    pub ahead_ms: i64,
    /// The tolerated limit.
    pub limit_ms: i64,
}

/// Answer to a push.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PushResponse {
    /// One outcome per op received, in order, up to the first gap.
    pub outcomes: Vec<OpOutcome>,
    /// Every op of this device up to this `device_seq` is stored on the server.
    pub acked_through: u64,
    /// Set when the ops did not follow on from `acked_through`: resend from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_from: Option<u64>,
    /// The server's clock.
    pub server_clock: Hlc,
    /// Set when the device's clock is too far ahead; its ops were kept but
    /// re-stamped with the server's clock so they cannot win unfairly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_warning: Option<ClockWarning>,
    /// Set when the device's user is deactivated: the ops written before
    /// the deactivation were taken, those written after it were rejected
    /// `user_deactivated`, and nothing more can be pulled or pushed until
    /// an administrator reactivates the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<Deactivation>,
}

/// A deactivation, as a push of the user's device learns of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Deactivation {
    /// When (RFC 3339); absent for a user deactivated before servers kept
    /// the moment, whose ops are all rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `POST /v1/sync/pull`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The last sequence number the device has applied (0 for none).
    pub cursor: u64,
    /// Largest page wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Ask for per-scope counts and checksums on the last page.
    #[serde(default)]
    pub checksums: bool,
}

/// One change in a pull page: an object tagged by `type`. It is read by
/// hand ([`change_de`]) rather than by serde's internally tagged enum,
/// which first copies every record into a generic tree to find the tag.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change<R = RecordState> {
    /// The record's current state.
    Upsert {
        /// Commit-order sequence number of the change.
        seq: u64,
        /// The record.
        record: R,
    },
    /// The customer and everything about it left the device's scope.
    Evict {
        /// Commit-order sequence number of the change.
        seq: u64,
        /// The customer.
        customer_id: RecordId,
    },
}

impl<'de, R: Deserialize<'de>> Deserialize<'de> for Change<R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(change_de::ChangeVisitor(std::marker::PhantomData))
    }
}

/// A value together with the exact JSON text it was read from, e.g. a
/// pulled record kept byte for byte as the server sent it
/// (`PullResponse<Verbatim<RecordState>>`); it is written back as that text.
#[derive(Clone, Debug)]
pub struct Verbatim<T> {
    /// The value read.
    pub value: T,
    raw: Box<serde_json::value::RawValue>,
}

impl<T> Verbatim<T> {
    /// The JSON text as received.
    pub fn json(&self) -> &str {
        self.raw.get()
    }
}

impl<T: PartialEq> PartialEq for Verbatim<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value && self.json() == other.json()
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Verbatim<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let value = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
        Ok(Self { value, raw })
    }
}

impl<T> Serialize for Verbatim<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// Reading a [`Change`] in one pass: every key's type is known without the
/// tag, so the keys may come in any order and nothing is buffered.
mod change_de {
    use super::{Change, RecordId};
    use serde::Deserialize;
    use serde::de::{Error, MapAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum Key {
        Type,
        Seq,
        Record,
        CustomerId,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Upsert,
        Evict,
    }

    pub(super) struct ChangeVisitor<R>(pub(super) PhantomData<R>);

    fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
        if slot.replace(value).is_some() {
            return Err(E::duplicate_field(name));
        }
        Ok(())
    }

    impl<'de, R: Deserialize<'de>> Visitor<'de> for ChangeVisitor<R> {
        type Value = Change<R>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a change: an object with type upsert or evict")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Change<R>, A::Error> {
            let mut kind = None;
            let mut seq = None;
            let mut record: Option<R> = None;
            let mut customer: Option<RecordId> = None;
            while let Some(key) = map.next_key()? {
                match key {
                    Key::Type => once(&mut kind, map.next_value::<Kind>()?, "type")?,
                    Key::Seq => once(&mut seq, map.next_value::<u64>()?, "seq")?,
                    Key::Record => once(&mut record, map.next_value()?, "record")?,
                    Key::CustomerId => once(&mut customer, map.next_value()?, "customer_id")?,
                }
            }
            let seq = seq.ok_or_else(|| A::Error::missing_field("seq"))?;
            match kind.ok_or_else(|| A::Error::missing_field("type"))? {
                Kind::Upsert => {
                    if customer.is_some() {
                        return Err(A::Error::unknown_field(
                            "customer_id",
                            &["type", "seq", "record"],
                        ));
                    }
                    let record = record.ok_or_else(|| A::Error::missing_field("record"))?;
                    Ok(Change::Upsert { seq, record })
                }
                Kind::Evict => {
                    if record.is_some() {
                        return Err(A::Error::unknown_field(
                            "record",
                            &["type", "seq", "customer_id"],
                        ));
                    }
                    let customer_id =
                        customer.ok_or_else(|| A::Error::missing_field("customer_id"))?;
                    Ok(Change::Evict { seq, customer_id })
                }
            }
        }
    }
}

impl<R> Change<R> {
    /// The change's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Change::Upsert { seq, .. } | Change::Evict { seq, .. } => *seq,
        }
    }
}

/// One side of a conflict: who wrote the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictSide {
    /// The user (absent where the server itself wrote the value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// Their username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Their device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
}

/// A value that lost, on one field of one record, to a write that had not
/// seen it (or to an earlier write of a first-writer-wins field).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictInfo {
    /// Conflict number on the server.
    pub id: i64,
    /// The record's collection.
    pub collection: String,
    /// The record.
    pub record_id: RecordId,
    /// The field.
    pub field: String,
    /// The value that lost.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub losing_value: serde_json::Value,
    /// The value kept.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub winning_value: serde_json::Value,
    /// Clock of the losing write.
    pub losing_hlc: Hlc,
    /// Clock of the winning write.
    pub winning_hlc: Hlc,
    /// Whose value lost.
    pub loser: ConflictSide,
    /// Whose value won.
    pub winner: ConflictSide,
    /// When the server recorded it (RFC 3339).
    pub created_at: String,
}

/// Most settlements one [`ConflictsRequest`] carries (the request stays
/// a small body).
pub const MAX_SETTLEMENTS: usize = 200;
/// Most open conflicts one [`ConflictsResponse`] (or review) lists.
pub const MAX_OPEN_CONFLICTS: u32 = 1_000;

/// Which side of a conflict its loser kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// Their own value (written again as a new, sequential edit).
    Mine,
    /// The value that won.
    Theirs,
}

impl Keep {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Keep::Mine => "mine",
            Keep::Theirs => "theirs",
        }
    }
}

/// A conflict its loser settled, named by what identifies it on every
/// replica: the record, the field and the clock of the value that lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// The record.
    pub record_id: RecordId,
    /// The field.
    pub field: String,
    /// Clock of the value that lost.
    pub losing_hlc: Hlc,
    /// What the loser kept.
    pub keep: Keep,
}

/// `POST /v1/sync/conflicts`: settle some conflicts, then list the open
/// ones the caller's values lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictsRequest {
    /// Conflicts the caller settled (at most [`MAX_SETTLEMENTS`]).
    #[serde(default)]
    pub settle: Vec<Settlement>,
}

/// Answer to [`ConflictsRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConflictsResponse {
    /// How many of the settlements named a conflict the caller lost (now
    /// settled, or settled before); the others named none and are dropped.
    pub settled: u64,
    /// The open conflicts the caller's values lost, newest first (at most
    /// [`MAX_OPEN_CONFLICTS`]).
    pub open: Vec<ConflictInfo>,
}

/// Count and checksum of one collection in the device's scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScopeSummary {
    /// Collection.
    pub collection: String,
    /// Number of records.
    pub count: u64,
    /// See [`crate::integrity`]; 16 hex digits.
    pub checksum: String,
}

/// A page of changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PullResponse<R = RecordState> {
    /// Changes in sequence order.
    pub changes: Vec<Change<R>>,
    /// Store this as the new cursor together with the changes, in one transaction.
    pub cursor: u64,
    /// The newest sequence number when the pull began; keep pulling until `cursor` reaches it.
    pub checkpoint: u64,
    /// Whether more pages follow.
    pub more: bool,
    /// Per-collection counts and checksums of the whole scope (last page, when asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<ScopeSummary>>,
    /// The server's clock.
    pub server_clock: Hlc,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> RecordState {
        RecordState::new(RecordId::new_v7(chrono::Utc::now()), "customers")
    }

    #[test]
    fn a_change_reads_the_same_whatever_the_order_of_its_keys() {
        let r = record();
        let tag_first = json!({"type": "upsert", "seq": 7, "record": r}).to_string();
        let tag_last = format!(
            r#"{{"record":{},"seq":7,"type":"upsert"}}"#,
            serde_json::to_string(&r).unwrap()
        );
        let want = Change::Upsert { seq: 7, record: r };
        for text in [tag_first, tag_last] {
            assert_eq!(
                serde_json::from_str::<Change>(&text).unwrap(),
                want,
                "{text}"
            );
        }
        let c = RecordId::new_v7(chrono::Utc::now());
        let evict = json!({"customer_id": c, "type": "evict", "seq": 9}).to_string();
        assert_eq!(
            serde_json::from_str::<Change>(&evict).unwrap(),
            Change::Evict {
                seq: 9,
                customer_id: c
            }
        );
    }

    #[test]
    fn a_verbatim_record_keeps_and_writes_back_the_text_it_came_from() {
        let r = record();
        let text = format!(r#"{{"record": {} , "seq":3,"type":"upsert"}}"#, json!(r));
        let read: Change<Verbatim<RecordState>> = serde_json::from_str(&text).unwrap();
        let Change::Upsert { seq, record: v } = &read else {
            panic!("an upsert: {read:?}");
        };
        assert_eq!((*seq, &v.value), (3, &r));
        assert_eq!(v.json(), json!(r).to_string(), "the text as received");
        let again = serde_json::to_string(&read).unwrap();
        assert!(again.contains(&json!(r).to_string()), "{again}");
        let other: Verbatim<RecordState> =
            serde_json::from_str(&format!(" {} ", serde_json::to_string_pretty(&r).unwrap()))
                .unwrap();
        assert_eq!(other.value, v.value);
        assert_ne!(&other, v, "same value, other text");
        assert!(serde_json::from_str::<Verbatim<RecordState>>(r#"{"id": 1}"#).is_err());
    }

    #[test]
    fn a_change_with_a_missing_a_foreign_or_a_repeated_key_is_refused() {
        let r = serde_json::to_value(record()).unwrap();
        let c = RecordId::new_v7(chrono::Utc::now());
        for (bad, why) in [
            (json!({"seq": 1, "record": r}), "missing field `type`"),
            (
                json!({"type": "upsert", "record": r}),
                "missing field `seq`",
            ),
            (
                json!({"type": "upsert", "seq": 1}),
                "missing field `record`",
            ),
            (
                json!({"type": "evict", "seq": 1}),
                "missing field `customer_id`",
            ),
            (
                json!({"type": "upsert", "seq": 1, "record": r, "extra": 1}),
                "unknown field `extra`",
            ),
            (
                json!({"type": "upsert", "seq": 1, "record": r, "customer_id": c}),
                "unknown field `customer_id`",
            ),
            (
                json!({"type": "evict", "seq": 1, "record": r, "customer_id": c}),
                "unknown field `record`",
            ),
            (
                json!({"type": "merge", "seq": 1, "record": r}),
                "unknown variant `merge`",
            ),
            (json!([1, 2]), "a change"),
        ] {
            let err = serde_json::from_value::<Change>(bad.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let twice = r#"{"type":"evict","seq":1,"seq":2,"customer_id":"x"}"#;
        let err = serde_json::from_str::<Change>(twice)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field `seq`"), "{err}");
    }
}
