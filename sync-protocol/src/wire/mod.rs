//! Wire messages (JSON over HTTP, under `/v1/`). Once released these shapes
//! only grow by optional fields; the golden fixtures in `tests/fixtures`
//! pin them.

mod account;

pub use account::*;

use crate::error::{ErrorCode, ValidationError};
use crate::hlc::Hlc;
use crate::id::{OpId, RecordId};
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

    /// `applied`, `superseded` or `rejected`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Superseded { .. } => "superseded",
            Outcome::Rejected { .. } => "rejected",
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

/// One change in a pull page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// The record's current state.
    Upsert {
        /// Commit-order sequence number of the change.
        seq: u64,
        /// The record.
        record: RecordState,
    },
    /// The customer and everything about it left the device's scope.
    Evict {
        /// Commit-order sequence number of the change.
        seq: u64,
        /// The customer.
        customer_id: RecordId,
    },
}

impl Change {
    /// The change's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Change::Upsert { seq, .. } | Change::Evict { seq, .. } => *seq,
        }
    }
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
pub struct PullResponse {
    /// Changes in sequence order.
    pub changes: Vec<Change>,
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
