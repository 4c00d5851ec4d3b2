//! The PostgreSQL store, for several stateless server instances over one
//! database.
//!
//! * Reads run in `REPEATABLE READ READ ONLY` transactions: one snapshot per
//!   closure, concurrent with everything.
//! * Writes run in `READ COMMITTED` transactions that first take one
//!   transaction-scoped advisory lock ([`WRITE_LOCK`]), held until commit.
//!   Writers on every instance are therefore serialised exactly like the
//!   SQLite store's single writer, and change numbers become visible in
//!   commit order: when a reader's snapshot shows head `h`, every change up
//!   to `h` is committed and visible in it, so a pull never moves its cursor
//!   past a change it has not seen. (See ARCHITECTURE.md, "Sequence
//!   visibility".)
//! * Writers that queue behind a writer of the same instance share its
//!   transaction (group commit, [`Writer`]); each later one runs inside a
//!   savepoint and is undone alone if it fails.
//! * Reads take connections from a small blocking pool; writes, one at a
//!   time per instance, have a connection of their own. A broken
//!   connection is dropped and replaced when next needed.

mod accounts;
mod batch;
mod behind;
mod cols;
mod flush;
mod group_commit;
mod latest;
mod opening;
mod planner;
mod pool;
mod read;
mod reports;
mod rows;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod tx;
mod write;

use crate::store::decode::device_with_user_row;
use crate::store::turns::Turns;
use crate::store::{DeviceRow, ReadFn, Store, StoreError, UserRow, WriteFn};
use behind::Behind;
use group_commit::Writer;
use opening::{Ask, read_opening};
use planner::Analyzer;
use pool::{
    CONNECT_TIMEOUT, Conn, DEFAULT_POOL_SIZE, PoolState, STATEMENT_DEADLINE, session_deadlines,
};
use postgres::{Client, NoTls, Statement};
use rows::DEVICE_WITH_USER;
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Key of the transaction-scoped advisory lock every write transaction holds
/// until it commits or rolls back.
pub const WRITE_LOCK: i64 = 0x6673_5f77_7269_7465; // "fs_write"

/// Why opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL")]
    Url(#[source] postgres::Error),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL at {target}")]
    Connect {
        /// Host and database, without credentials.
        target: String,
        /// Why.
        #[source]
        source: postgres::Error,
    },
    /// Migrating failed (including a database newer than this binary).
    #[error(transparent)]
    Migrate(#[from] migrations::MigrationError),
    /// Rebuilding the report facts failed.
    #[error("rebuilding report facts: {0}")]
    Facts(#[from] StoreError),
}

fn backend(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => StoreError::TimedOut {
            what: "a database lock",
            after: None,
        },
        Some(c) if *c == SqlState::QUERY_CANCELED => StoreError::TimedOut {
            what: "a statement to finish",
            after: Some(STATEMENT_DEADLINE),
        },
        _ => StoreError::Backend(Box::new(e)),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        backend(e)
    }
}

/// The PostgreSQL store.
pub struct PostgresStore {
    /// One turn per pooled connection, taken in arrival order.
    turns: Turns,
    /// Write transactions of this instance, one at a time, in arrival
    /// order: writers of all instances are serialised by [`WRITE_LOCK`]
    /// anyway.
    writers: Turns,
    /// The connection of the writer holding the turn, besides the pool: a
    /// write never queues for a connection behind the reads (it would
    /// keep every later writer of this instance waiting too), and no read
    /// waits for one held by a writer queued for the lock.
    writer: Mutex<Writer>,
    analyzer: Analyzer,
    config: postgres::Config,
    target: String,
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
    /// How long a call waits, in all, before [`StoreError::TimedOut`]; the
    /// connections' lock and idle-transaction deadlines.
    wait: Duration,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Host, port and database name of a config, for messages (never the password).
pub fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map_or_else(String::new, |h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        });
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!("{host}:{port}/{db}")
}

/// Parse a `postgres://` URL (or key=value string).
pub fn parse_url(url: &str) -> Result<postgres::Config, OpenError> {
    let mut config: postgres::Config = url.parse().map_err(OpenError::Url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("fieldsync-server");
    }
    Ok(config)
}

/// Connect once (no pool), for migrations and tools.
pub fn connect(config: &postgres::Config) -> Result<Client, OpenError> {
    config.connect(NoTls).map_err(|source| OpenError::Connect {
        target: describe(config),
        source,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PostgresStore {
    /// Connect to `url`, apply migrations (refusing a newer schema), and keep
    /// a pool of up to 8 connections for reads and one for writes.
    pub fn open(url: &str) -> Result<Self, OpenError> {
        Self::open_with_pool(url, DEFAULT_POOL_SIZE)
    }

    /// [`PostgresStore::open`] with a pool of `max` connections (at least 1).
    pub fn open_with_pool(url: &str, max: usize) -> Result<Self, OpenError> {
        let config = parse_url(url)?;
        let mut client = connect(&config)?;
        migrations::apply_postgres(&mut client, migrations::SERVER_POSTGRES)?;
        let first =
            Conn::new(client, super::WAIT_DEADLINE).map_err(|source| OpenError::Connect {
                target: describe(&config),
                source,
            })?;
        let store = Self {
            turns: Turns::new(max.max(1)),
            writers: Turns::new(1),
            writer: Mutex::new(Writer::default()),
            analyzer: Analyzer::default(),
            target: describe(&config),
            config,
            max: max.max(1),
            state: Mutex::new(PoolState {
                idle: vec![first],
                open: 1,
            }),
            returned: Condvar::new(),
            wait: super::WAIT_DEADLINE,
        };
        crate::store::facts::rebuild_if_stale(&store)?;
        Ok(store)
    }

    /// The same store with another [`super::WAIT_DEADLINE`] (tests force
    /// stuck writers and held locks with a short one).
    pub fn with_wait_deadline(mut self, wait: Duration) -> Result<Self, StoreError> {
        self.wait = wait;
        let set = session_deadlines(wait);
        for conn in &mut lock(&self.state).idle {
            conn.client.batch_execute(&set)?;
        }
        if let Some(conn) = &mut lock(&self.writer).conn {
            conn.client.batch_execute(&set)?;
        }
        Ok(self)
    }

    /// A new store connection.
    fn connect(&self) -> Result<Conn, postgres::Error> {
        Conn::new(self.config.connect(NoTls)?, self.wait)
    }

    fn timed_out(&self, what: &'static str) -> StoreError {
        StoreError::TimedOut {
            what,
            after: Some(self.wait),
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing a `postgres::Client` blocks on its own runtime, which
        // panics on a thread that drives an async runtime (the server drops
        // its state there on shutdown): close the idle connections on a
        // plain thread.
        let mut idle = std::mem::take(&mut lock(&self.state).idle);
        idle.extend(lock(&self.writer).conn.take());
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}

impl Store for PostgresStore {
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), StoreError> {
        let mut pooled = self.checkout()?;
        let (client, statements) = pooled.parts()?;
        let mut tx = Tx::new(client, statements, read_opening(false), None);
        f(&mut tx)?;
        tx.end("COMMIT")
    }

    /// Group commit: when another writer of this instance is waiting as
    /// `f` returns, the transaction is left open for it (see [`Writer`]),
    /// and this call returns once the group's transaction has ended.
    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), StoreError> {
        self.write_in_group(f)
    }

    /// One statement outside any transaction (a single statement sees one
    /// snapshot): one round trip instead of four.
    fn device_with_user(
        &self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<UserRow>)>, StoreError> {
        let mut pooled = self.checkout()?;
        let (client, statements) = pooled.parts()?;
        let statement = if let Some(s) = statements.get(DEVICE_WITH_USER) {
            s.clone()
        } else {
            let s = client.prepare(DEVICE_WITH_USER)?;
            statements.insert(DEVICE_WITH_USER.to_owned(), s.clone());
            s
        };
        client
            .query_opt(&statement, &[&token_hash])?
            .map(|r| device_with_user_row(&r))
            .transpose()
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut pooled = self.checkout()?;
        let (client, _) = pooled.parts()?;
        client.query_one("SELECT head FROM change_seq WHERE id = 1", &[])?;
        Ok(())
    }
}

/// One transaction on a pooled connection. It is begun lazily and with
/// plain statements rather than the driver's `Transaction`, so that BEGIN
/// travels with the transaction's first reads in one round trip
/// (`opening.rs`).
struct Tx<'a> {
    t: &'a mut Client,
    statements: &'a mut HashMap<String, Statement>,
    /// Write transactions: writes not yet sent ([`behind`]).
    behind: Option<Behind>,
    /// The opening ([`read_opening`] or [`write_opening`](opening::write_opening)) and the reads
    /// asked to travel with it, until the transaction first needs the
    /// database.
    unsent: Option<(String, Vec<Ask>)>,
    /// The change head: read in the first round trip; a write transaction
    /// (which holds the write lock) counts on from it as it takes numbers.
    head: u64,
    /// The [`OPENING_META`](opening::OPENING_META) values as the first round trip read them.
    opening_meta: HashMap<String, String>,
    /// Begun, and neither COMMIT nor ROLLBACK was sent yet.
    open: bool,
    /// The transaction was begun by an earlier writer of its group: the
    /// unsent opening is this writer's savepoint (then its asks), and
    /// carries no head or meta reads.
    continued: bool,
}

impl Drop for Tx<'_> {
    /// A transaction left open by an error is rolled back, so the
    /// connection returns to the pool clean (the driver's `Transaction`
    /// does the same).
    fn drop(&mut self) {
        if self.open {
            let _ = self.t.batch_execute("ROLLBACK");
        }
    }
}
