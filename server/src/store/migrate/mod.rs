//! `fieldsync-server migrate-store`: copy a server's whole state (users,
//! devices and their token hashes, records with their change numbers, the op
//! log, problems, conflicts, evictions, check-ins, login failures and the
//! server's own identity and clock) from a SQLite file (or another
//! PostgreSQL database) into an empty PostgreSQL database.
//!
//! The source is read in one read-only snapshot and never written. The
//! target is filled in one transaction that holds the store's write lock;
//! before it commits, every table's row count and SHA-256 checksum (over
//! every column of every row, in primary-key order) are recomputed from the
//! target and compared with the source's. Any difference rolls everything
//! back, so the target is either a verified copy or still empty.

mod copy;
mod tables;
#[cfg(test)]
mod tests;

use crate::store::postgres::{OpenError, WRITE_LOCK, connect, parse_url};
use copy::{Summer, copy_table, pg_rows, sqlite_rows};
use rusqlite::OpenFlags;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use tables::{SERIALS, TABLES};

/// Why copying failed. The target is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The SQLite source does not exist.
    #[error("no SQLite database at {0}")]
    SourceMissing(PathBuf),
    /// The SQLite source could not be read.
    #[error("cannot read the SQLite source: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL database could not be read or written.
    #[error("PostgreSQL error")]
    Postgres(#[from] postgres::Error),
    /// The target could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading a schema version or migrating the target failed.
    #[error(transparent)]
    Migrate(#[from] migrations::MigrationError),
    /// The source's schema is not the one this binary writes.
    #[error(
        "the source is at schema version {found}, this program copies version {known}; run the matching fieldsync-server on it first"
    )]
    SourceSchema {
        /// The source's version.
        found: u32,
        /// This binary's.
        known: u32,
    },
    /// The target already holds data.
    #[error("the target database is not empty: table {table} has {rows} rows")]
    TargetNotEmpty {
        /// First non-empty table.
        table: &'static str,
        /// Its rows.
        rows: u64,
    },
    /// Source and target are the same database.
    #[error("the source and the target are the same database")]
    SameDatabase,
    /// The copy differs from the source (nothing was committed).
    #[error(
        "verification failed for table {table}: source {source_rows} rows ({source_sum}), target {target_rows} rows ({target_sum}); nothing was committed"
    )]
    Mismatch {
        /// Table.
        table: &'static str,
        /// Rows in the source.
        source_rows: u64,
        /// Rows in the target.
        target_rows: u64,
        /// Source checksum.
        source_sum: String,
        /// Target checksum.
        target_sum: String,
    },
}

/// Where to copy from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A SQLite `server.db` (or a data directory holding one).
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Source {
    /// `postgres://…`/`postgresql://…` is PostgreSQL; anything else is a
    /// path (a directory means its `server.db`).
    pub fn parse(s: &str) -> Self {
        if is_postgres_url(s) {
            return Source::Postgres(s.to_owned());
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            Source::Sqlite(p.join("server.db"))
        } else {
            Source::Sqlite(p)
        }
    }
}

/// Whether `s` is a PostgreSQL connection URL.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// One table's verified copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// Table.
    pub table: &'static str,
    /// Rows copied.
    pub rows: u64,
    /// SHA-256 (hex) over every row, equal in source and target.
    pub checksum: String,
}

/// A source opened for one consistent read.
enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

/// Copy everything from `from` into the empty PostgreSQL database at `to`
/// (migrating it first), verify, and commit. Returns one line per table.
pub fn migrate_store(from: &Source, to: &str) -> Result<Vec<TableReport>, MigrateError> {
    let target_config = parse_url(to)?;
    let mut reader = match from {
        Source::Sqlite(path) => {
            if !path.is_file() {
                return Err(MigrateError::SourceMissing(path.clone()));
            }
            let c = rusqlite::Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            let found = migrations::current_version(&c)?;
            let known = migrations::SERVER_SQLITE.len() as u32;
            if found != known {
                return Err(MigrateError::SourceSchema { found, known });
            }
            Reader::Sqlite(c)
        }
        Source::Postgres(url) => {
            let config = parse_url(url)?;
            if super::postgres::describe(&config) == super::postgres::describe(&target_config) {
                return Err(MigrateError::SameDatabase);
            }
            let mut c = connect(&config)?;
            let found = migrations::current_version_postgres(&mut c)?;
            let known = migrations::SERVER_POSTGRES.len() as u32;
            if found != known {
                return Err(MigrateError::SourceSchema { found, known });
            }
            Reader::Postgres(c)
        }
    };

    let mut target = connect(&target_config)?;
    migrations::apply_postgres(&mut target, migrations::SERVER_POSTGRES)?;
    let mut tx = target.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    check_empty(&mut tx)?;
    tx.execute("DELETE FROM change_seq", &[])?;

    // One snapshot of the source for the whole copy.
    let mut source_sums = Vec::with_capacity(TABLES.len());
    match &mut reader {
        Reader::Sqlite(c) => {
            let snapshot = c.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            for t in TABLES {
                source_sums.push(copy_table(t, &mut tx, &mut |f| {
                    sqlite_rows(&snapshot, t, f)
                })?);
            }
            snapshot.finish()?;
        }
        Reader::Postgres(c) => {
            let mut snapshot = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            for t in TABLES {
                source_sums.push(copy_table(t, &mut tx, &mut |f| {
                    pg_rows(&mut snapshot, t, f)
                })?);
            }
            snapshot.commit()?;
        }
    }

    for table in SERIALS {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )?;
    }

    let mut report = Vec::with_capacity(TABLES.len());
    for (t, (source_rows, source_sum)) in TABLES.iter().zip(source_sums) {
        let mut sum = Summer::new();
        pg_rows(&mut tx, t, &mut |row| {
            sum.add(&row);
            Ok(())
        })?;
        let (target_rows, target_sum) = sum.finish();
        if target_rows != source_rows || target_sum != source_sum {
            return Err(MigrateError::Mismatch {
                table: t.name,
                source_rows,
                target_rows,
                source_sum,
                target_sum,
            });
        }
        report.push(TableReport {
            table: t.name,
            rows: target_rows,
            checksum: target_sum,
        });
    }
    tx.commit()?;
    // Planner statistics for the freshly loaded tables, instead of waiting
    // for autovacuum: with none, a pull's plan scans a customer's whole
    // history instead of stopping at a page.
    target.batch_execute("ANALYZE")?;
    Ok(report)
}

fn check_empty(tx: &mut postgres::Transaction<'_>) -> Result<(), MigrateError> {
    for t in TABLES {
        let rows: i64 = if t.name == "change_seq" {
            tx.query_one("SELECT coalesce(max(head), 0) FROM change_seq", &[])?
                .get(0)
        } else {
            tx.query_one(&format!("SELECT count(*) FROM {}", t.name), &[])?
                .get(0)
        };
        if rows != 0 {
            return Err(MigrateError::TargetNotEmpty {
                table: t.name,
                rows: rows as u64,
            });
        }
    }
    Ok(())
}

/// Render a report as the lines `migrate-store` prints.
pub fn render(report: &[TableReport]) -> String {
    let mut out = String::new();
    for t in report {
        let _ = writeln!(out, "{:<16} {:>10}  sha256:{}", t.table, t.rows, t.checksum);
    }
    out
}

/// The SQLite database file of a data directory or path.
pub fn sqlite_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("server.db")
    } else {
        p.to_owned()
    }
}
