//! Operations: what a device records in its outbox and pushes.

use crate::hlc::Hlc;
use crate::id::{DeviceId, OpId, RecordId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Field values of an op: field name → JSON value (`null` clears an
/// optional `lww` field).
pub type Fields = BTreeMap<String, serde_json::Value>;

/// Base clocks of an op: field name → the clock of the value the device
/// had for that field when the user made the edit. A field the device had
/// never seen is left out, so `{}` means "saw none of them"; an op without
/// `base` at all comes from a client that predates base clocks.
pub type Bases = BTreeMap<String, Hlc>;

/// What an op does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create a record with its initial fields.
    Create,
    /// Change some fields (only those that changed).
    Patch,
    /// Move a state machine `from → to`, optionally with fields.
    Transition,
    /// Archive the record (hide it from lists; history stays).
    Archive,
}

impl OpKind {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Patch => "patch",
            OpKind::Transition => "transition",
            OpKind::Archive => "archive",
        }
    }
}

/// The state change of a transition op.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StateChange {
    /// The transition field, e.g. `status`.
    pub field: String,
    /// The state the device saw.
    pub from: String,
    /// The state it moves to.
    pub to: String,
}

/// One operation. Ops are immutable once written to the outbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Op {
    /// Unique id (UUIDv7).
    pub op_id: OpId,
    /// The device that wrote it.
    pub device_id: DeviceId,
    /// Gap-free per-device sequence number, starting at 1.
    pub device_seq: u64,
    /// The device's clock when it wrote the op.
    pub hlc: Hlc,
    /// Collection-schema version the op was written against.
    pub schema_version: u32,
    /// Collection name, e.g. `visits`.
    pub collection: String,
    /// The record it acts on.
    pub record_id: RecordId,
    /// What it does.
    pub kind: OpKind,
    /// Field values (create, patch, transition).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
    /// The state change (transition ops only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<StateChange>,
    /// Base clocks of the fields it writes (patch and transition ops of
    /// clients that offer them; see [`Bases`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub base: Option<Bases>,
}
