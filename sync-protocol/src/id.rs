//! Typed identifiers. Every id is a UUID; records, ops and devices use
//! UUIDv7 so that ids sort roughly by creation time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Declares a newtype around [`Uuid`] with parsing, display and a v7 constructor.
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new UUIDv7 for the given creation instant. Time is passed in:
            /// this crate never reads the wall clock.
            pub fn new_v7(at: DateTime<Utc>) -> Self {
                let secs = u64::try_from(at.timestamp()).unwrap_or(0);
                let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, at.timestamp_subsec_nanos());
                Self(Uuid::new_v7(ts))
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        crate::string_schema!($name, "UUID");

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

typed_id!(
    /// Any synced record (customer, visit, goal, ...).
    RecordId
);
typed_id!(
    /// One operation in a device's outbox.
    OpId
);
typed_id!(
    /// One registered laptop (or the server itself).
    DeviceId
);
typed_id!(
    /// A user account.
    UserId
);
typed_id!(
    /// A team of reps under a supervisor.
    TeamId
);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn v7_ids_sort_by_creation_time() {
        let a = RecordId::new_v7(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
        let b = RecordId::new_v7(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap());
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
        assert_eq!(a.to_string().parse::<RecordId>().unwrap(), a);
    }
}
