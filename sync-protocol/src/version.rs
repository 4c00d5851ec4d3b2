//! Protocol and schema versions, and capability negotiation.

use serde::{Deserialize, Serialize};

/// The wire protocol version spoken by this build (also the `/v1/` prefix).
pub const PROTOCOL_VERSION: u32 = 1;
/// The collection-schema version this build writes into every op.
pub const SCHEMA_VERSION: u32 = 1;
/// The oldest schema version a server of this build still accepts.
pub const MIN_SCHEMA_VERSION: u32 = 1;
/// Header a client sends with its protocol version.
pub const PROTOCOL_HEADER: &str = "fieldsync-protocol";
/// Header a client sends with its schema version.
pub const SCHEMA_HEADER: &str = "fieldsync-schema";

/// Optional features a server offers; a client uses only those it knows.
pub const CAPABILITIES: &[&str] = &[
    "push-batch",
    "pull-pages",
    "scope-checksums",
    "gzip",
    "zstd",
    "clock-check",
    "base-clocks",
    "conflict-feed",
    "device-divergence",
    "reassignment-clocks",
    "deactivation-handover",
    "problem-decisions",
];

/// What `GET /v1/info` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServerInfo {
    /// Server software version.
    pub server_version: String,
    /// Protocol version spoken.
    pub protocol_version: u32,
    /// Newest schema version understood.
    pub schema_version: u32,
    /// Oldest client schema version accepted.
    pub min_schema_version: u32,
    /// Capabilities offered.
    pub capabilities: Vec<String>,
}

/// Whether a client of `client_schema` may talk to a server accepting
/// `min..=max`. `Err` says which side is too old.
pub fn check_compatible(client_schema: u32, min: u32, max: u32) -> Result<(), Incompatible> {
    if client_schema < min {
        Err(Incompatible::ClientTooOld {
            client: client_schema,
            min,
        })
    } else if client_schema > max {
        Err(Incompatible::ServerTooOld {
            client: client_schema,
            max,
        })
    } else {
        Ok(())
    }
}

/// A version mismatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incompatible {
    /// The client must be upgraded.
    #[error(
        "client schema {client} is older than the oldest the server accepts ({min}); upgrade fieldsync"
    )]
    ClientTooOld {
        /// The client's version.
        client: u32,
        /// The server's minimum.
        min: u32,
    },
    /// The server must be upgraded.
    #[error(
        "client schema {client} is newer than the server understands ({max}); the server must be upgraded"
    )]
    ServerTooOld {
        /// The client's version.
        client: u32,
        /// The server's maximum.
        max: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatibility_window() {
        assert!(check_compatible(1, 1, 1).is_ok());
        assert!(matches!(
            check_compatible(0, 1, 2),
            Err(Incompatible::ClientTooOld { .. })
        ));
        assert!(matches!(
            check_compatible(3, 1, 2),
            Err(Incompatible::ServerTooOld { .. })
        ));
    }
}
