//! `sync-protocol`: the language fieldsync's server and clients share.
//!
//! Ids ([`id`]), the hybrid logical clock ([`hlc`]), money ([`money`]),
//! positions and GPS verdicts ([`geo`]), collection schemas with merge
//! policies and permissions ([`schema`]), ops ([`op`]), the merge rules
//! ([`merge`]), who owned a customer when ([`ownership`]), validation
//! ([`validate`]), scope checksums ([`integrity`]),
//! wire messages ([`wire`]) and versions ([`version`]).
//!
//! This crate does no I/O and never reads the wall clock: time is always
//! passed in, so callers (and tests) control it.

/// Implements utoipa's schema traits for a type serialised as a string.
#[macro_export]
#[doc(hidden)]
macro_rules! string_schema {
    ($ty:ty, $desc:expr) => {
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($desc))
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $ty {}
    };
}

pub mod error;
pub mod geo;
pub mod hlc;
pub mod id;
pub mod integrity;
pub mod merge;
pub mod metrics;
pub mod money;
pub mod op;
pub mod ownership;
pub mod schema;
pub mod time;
pub mod validate;
pub mod version;
pub mod wire;

pub use error::{ErrorCode, ValidationError};
pub use hlc::{Hlc, HlcClock};
pub use id::{DeviceId, OpId, RecordId, TeamId, UserId};
pub use merge::{FieldConflict, FieldState, RecordState};
pub use op::{Bases, Fields, Op, OpKind, StateChange};
