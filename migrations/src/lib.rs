//! Numbered, forward-only SQL migrations for fieldsync's stores, and the
//! runner that applies them.
//!
//! Each store has its own ordered list ([`CLIENT`], [`SERVER_SQLITE`]). The
//! runner applies the missing ones in order, each inside its own
//! transaction, records every applied version in `schema_migrations`, and
//! refuses to touch a database whose version is newer than the binary knows.

mod runner;

pub use runner::{Migration, MigrationError, Report, apply, current_version};

/// The client's local store (one per profile).
pub static CLIENT: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../client/0001_init.sql"),
}];

/// The server's SQLite store.
pub static SERVER_SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "init",
    sql: include_str!("../server/sqlite/0001_init.sql"),
}];
