//! Error codes shared by the server's responses and the CLI's messages.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable error code. The same codes appear in server
/// JSON bodies (`{"code": .., "message": ..}`), in rejected-op outcomes and in
/// CLI output, so scripts can act on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    // --- op and field validation
    /// No collection by that name.
    UnknownCollection,
    /// The collection has no field by that name.
    UnknownField,
    /// A required field is missing or null.
    MissingField,
    /// The value has the wrong JSON type.
    WrongType,
    /// Text longer than the field allows, or a list with too many items.
    TooLong,
    /// A number outside the field's range, or an empty required text.
    OutOfRange,
    /// Not one of the field's enum values.
    NotInEnum,
    /// Latitude/longitude missing, not finite or out of range.
    InvalidCoordinates,
    /// Malformed money, or a non-positive amount where one is required.
    InvalidMoney,
    /// Not an RFC 3339 timestamp.
    InvalidTimestamp,
    /// Not a `YYYY-MM-DD` date.
    InvalidDate,
    /// Not a UUID.
    InvalidId,
    /// A `fact` field cannot be changed after creation.
    ImmutableField,
    /// Clients may not write `server_only` fields.
    ServerOnlyField,
    /// A `transition` field can only change through a transition op.
    TransitionOnlyField,
    /// A patch without fields, or an op of a shape that makes no sense.
    InvalidOp,
    /// The op's schema version is newer than the server understands.
    UnsupportedSchemaVersion,
    /// The state machine has no such move.
    InvalidTransition,
    /// The record is no longer in the `from` state the op expected.
    StaleTransition,
    // --- records and permissions
    /// The record (or a referenced one) does not exist.
    NotFound,
    /// A record with this id already exists (created with different content).
    AlreadyExists,
    /// The record is archived.
    Archived,
    /// The user's role may not do this.
    Forbidden,
    /// The record is outside the user's scope (e.g. a customer reassigned away).
    OutOfScope,
    /// A reference names a record that does not exist or that the author may not point at.
    BadReference,
    // --- protocol and transport
    /// The request body is not valid JSON or not of the expected shape.
    MalformedRequest,
    /// The request body or batch is larger than allowed.
    PayloadTooLarge,
    /// The client speaks a protocol version the server no longer accepts.
    ClientTooOld,
    /// The ops of one push do not follow on from what the server has.
    SeqGap,
    /// The op's device differs from the authenticated device.
    WrongDevice,
    // --- accounts
    /// No or an unknown token.
    Unauthenticated,
    /// Wrong username or password.
    InvalidCredentials,
    /// The device's token was revoked.
    DeviceRevoked,
    /// The user account is deactivated.
    UserDeactivated,
    /// Too many failed logins; try later.
    RateLimited,
    /// A user, team or other name is taken.
    Conflict,
    /// Something went wrong on the server.
    Internal,
    /// The server is not ready (database unreachable).
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &'static str {
        use ErrorCode as E;
        match self {
            E::UnknownCollection => "unknown_collection",
            E::UnknownField => "unknown_field",
            E::MissingField => "missing_field",
            E::WrongType => "wrong_type",
            E::TooLong => "too_long",
            E::OutOfRange => "out_of_range",
            E::NotInEnum => "not_in_enum",
            E::InvalidCoordinates => "invalid_coordinates",
            E::InvalidMoney => "invalid_money",
            E::InvalidTimestamp => "invalid_timestamp",
            E::InvalidDate => "invalid_date",
            E::InvalidId => "invalid_id",
            E::ImmutableField => "immutable_field",
            E::ServerOnlyField => "server_only_field",
            E::TransitionOnlyField => "transition_only_field",
            E::InvalidOp => "invalid_op",
            E::UnsupportedSchemaVersion => "unsupported_schema_version",
            E::InvalidTransition => "invalid_transition",
            E::StaleTransition => "stale_transition",
            E::NotFound => "not_found",
            E::AlreadyExists => "already_exists",
            E::Archived => "archived",
            E::Forbidden => "forbidden",
            E::OutOfScope => "out_of_scope",
            E::BadReference => "bad_reference",
            E::MalformedRequest => "malformed_request",
            E::PayloadTooLarge => "payload_too_large",
            E::ClientTooOld => "client_too_old",
            E::SeqGap => "seq_gap",
            E::WrongDevice => "wrong_device",
            E::Unauthenticated => "unauthenticated",
            E::InvalidCredentials => "invalid_credentials",
            E::DeviceRevoked => "device_revoked",
            E::UserDeactivated => "user_deactivated",
            E::RateLimited => "rate_limited",
            E::Conflict => "conflict",
            E::Internal => "internal",
            E::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an op (or one of its values) is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{message}")]
pub struct ValidationError {
    /// Stable code.
    pub code: ErrorCode,
    /// The field concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A human sentence.
    pub message: String,
}

impl ValidationError {
    /// An error about the whole op.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            field: None,
            message: message.into(),
        }
    }

    /// An error about one field.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}
