//! Numbered, forward-only SQL migrations for fieldsync's stores, and the
//! runner that applies them.
//!
//! Each store has its own ordered list ([`CLIENT`], [`SERVER_SQLITE`],
//! [`SERVER_POSTGRES`]). The
//! runner applies the missing ones in order, each inside its own
//! transaction, records every applied version in `schema_migrations`, and
//! refuses to touch a database whose version is newer than the binary knows.

#[cfg(feature = "postgres")]
mod postgres;
mod runner;

#[cfg(feature = "postgres")]
pub use postgres::{
    MIGRATION_LOCK_WAIT, apply_postgres, apply_postgres_waiting, current_version_postgres,
};
pub use runner::{Migration, MigrationError, Report, apply, current_version};

/// The client's local store (one per profile).
pub static CLIENT: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../client/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "view_shares_server_state",
        sql: include_str!("../client/0002_view_shares_server_state.sql"),
    },
    Migration {
        version: 3,
        name: "open_visits",
        sql: include_str!("../client/0003_open_visits.sql"),
    },
    Migration {
        version: 4,
        name: "customer_history_index",
        sql: include_str!("../client/0004_customer_history_index.sql"),
    },
    Migration {
        version: 5,
        name: "conflict_feed",
        sql: include_str!("../client/0005_conflict_feed.sql"),
    },
    Migration {
        version: 6,
        name: "problem_decisions",
        sql: include_str!("../client/0006_problem_decisions.sql"),
    },
    Migration {
        version: 7,
        name: "work_credits",
        sql: include_str!("../client/0007_work_credits.sql"),
    },
];

/// The server's SQLite store.
pub static SERVER_SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../server/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "pull_indexes",
        sql: include_str!("../server/sqlite/0002_pull_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "report_facts",
        sql: include_str!("../server/sqlite/0003_report_facts.sql"),
    },
    Migration {
        version: 4,
        name: "report_fact_ids",
        sql: include_str!("../server/sqlite/0004_report_fact_ids.sql"),
    },
    Migration {
        version: 5,
        name: "partial_scope_indexes",
        sql: include_str!("../server/sqlite/0005_partial_scope_indexes.sql"),
    },
    Migration {
        version: 6,
        name: "dashboard_sessions",
        sql: include_str!("../server/sqlite/0006_dashboard_sessions.sql"),
    },
    Migration {
        version: 7,
        name: "conflict_sides",
        sql: include_str!("../server/sqlite/0007_conflict_sides.sql"),
    },
    Migration {
        version: 8,
        name: "ops_by_op_id",
        sql: include_str!("../server/sqlite/0008_ops_by_op_id.sql"),
    },
    Migration {
        version: 9,
        name: "reassignment_clocks",
        sql: include_str!("../server/sqlite/0009_reassignment_clocks.sql"),
    },
    Migration {
        version: 10,
        name: "deactivation_clocks",
        sql: include_str!("../server/sqlite/0010_deactivation_clocks.sql"),
    },
    Migration {
        version: 11,
        name: "problem_decisions",
        sql: include_str!("../server/sqlite/0011_problem_decisions.sql"),
    },
    Migration {
        version: 12,
        name: "work_credits",
        sql: include_str!("../server/sqlite/0012_work_credits.sql"),
    },
];

/// The server's PostgreSQL store (the same tables as [`SERVER_SQLITE`]).
pub static SERVER_POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../server/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "pull_indexes",
        sql: include_str!("../server/postgres/0002_pull_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "report_facts",
        sql: include_str!("../server/postgres/0003_report_facts.sql"),
    },
    Migration {
        version: 4,
        name: "report_fact_ids",
        sql: include_str!("../server/postgres/0004_report_fact_ids.sql"),
    },
    Migration {
        version: 5,
        name: "partial_scope_indexes",
        sql: include_str!("../server/postgres/0005_partial_scope_indexes.sql"),
    },
    Migration {
        version: 6,
        name: "dashboard_sessions",
        sql: include_str!("../server/postgres/0006_dashboard_sessions.sql"),
    },
    Migration {
        version: 7,
        name: "conflict_sides",
        sql: include_str!("../server/postgres/0007_conflict_sides.sql"),
    },
    Migration {
        version: 8,
        name: "ops_by_op_id",
        sql: include_str!("../server/postgres/0008_ops_by_op_id.sql"),
    },
    Migration {
        version: 9,
        name: "reassignment_clocks",
        sql: include_str!("../server/postgres/0009_reassignment_clocks.sql"),
    },
    Migration {
        version: 10,
        name: "deactivation_clocks",
        sql: include_str!("../server/postgres/0010_deactivation_clocks.sql"),
    },
    Migration {
        version: 11,
        name: "problem_decisions",
        sql: include_str!("../server/postgres/0011_problem_decisions.sql"),
    },
    Migration {
        version: 12,
        name: "work_credits",
        sql: include_str!("../server/postgres/0012_work_credits.sql"),
    },
];
