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

mod batch;
mod behind;
mod cols;
mod opening;

use super::turns::{Turn, Turns};
use super::{
    ChangeRow, CheckIn, ConflictRow, DeviceRow, OpRow, ProblemRow, ReadFn, ReadTx, RecordRow,
    RecordScope, ScopeFilter, Store, StoreError, TeamRow, UserRow, WriteFn, WriteTx,
};
use batch::Batch;
use behind::Behind;
use cols::Cols;
use opening::Ask;
use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};
use postgres::{Client, NoTls, Row, SimpleQueryRow, Statement};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use sync_protocol::geo::LatLon;
use sync_protocol::metrics::RecordFact;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, RecordId, TeamId, UserId};

/// Key of the transaction-scoped advisory lock every write transaction holds
/// until it commits or rolls back.
pub const WRITE_LOCK: i64 = 0x6673_5f77_7269_7465; // "fs_write"

/// Pooled connections per server instance (for reads; writes have one
/// more of their own).
const DEFAULT_POOL_SIZE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest one statement may run on a store connection. The slowest
/// statement measured (an HQ scorecard over a million visits) takes about
/// a second; one still running after a minute is stuck.
const STATEMENT_DEADLINE: Duration = Duration::from_mins(1);

/// The deadlines every store connection sets for its session: waiting for
/// a lock (the [`WRITE_LOCK`] included) gives up after `wait`, and so does
/// a transaction left idle (a writer stuck between two statements would
/// otherwise hold the write lock of every instance); a statement gives up
/// after [`STATEMENT_DEADLINE`].
fn session_deadlines(wait: Duration) -> String {
    let wait = wait.as_millis().max(1);
    format!(
        "SET lock_timeout = {wait}; SET idle_in_transaction_session_timeout = {wait}; \
         SET statement_timeout = {}",
        STATEMENT_DEADLINE.as_millis()
    )
}
/// Prepared statements kept per connection before the cache is cleared.
const STATEMENT_CACHE: usize = 256;

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

// Plan modes. A connection keeps PostgreSQL's default plan cache mode (`auto`):
// after five executions a prepared statement keeps a generic plan when
// that costs no more than planning with the parameters. Write
// transactions and the token look-up find rows by key, where a generic
// plan is as good, and planning them again each time was the largest part
// of the database's work in a fleet of small pushes (about 30 % of its
// CPU). A generic plan is made again when ANALYZE (ours, `Analyzer`, or
// autovacuum's) changes a table's statistics.
//
// Read transactions plan every execution instead (`read_opening`):
// a report's period would otherwise be planned without its size, and a
// plan made while a table was tiny would scan it whole. Pulls are the
// exception (`ReadTx::reuse_plans`): their statements reach every row
// from a key, so a plan made without the parameters is the same plan, and
// planning the changes statement for each page had cost more than running
// it (about 0.5 ms against 0.2). Written as `subject_user = ANY($4)`, its
// generic plan walked the whole seq range filtering by user instead (one
// fleet run's median doubled), hence the unnested keys and lateral seeks.

/// Meta values every sync reads, fetched in a transaction's first round trip.
const OPENING_META: [&str; 2] = [crate::sync::META_DEVICE, crate::sync::META_CLOCK];

/// A read transaction's first round trip: begin, plan every execution
/// unless its reads are `keyed` (see "Plan modes" above), then read the change head (which takes the
/// snapshot every later statement sees) and the [`OPENING_META`] values.
fn read_opening(keyed: bool) -> String {
    let mode = if keyed { "auto" } else { "force_custom_plan" };
    format!(
        "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
         SET LOCAL plan_cache_mode = {mode}; {HEAD}; {}",
        opening_meta_sql()
    )
}

/// A write transaction's first round trip: begin, take [`WRITE_LOCK`], then
/// read the change head and the [`OPENING_META`] values on a snapshot taken
/// after the lock was granted. Nothing else changes them until this
/// transaction ends.
fn write_opening() -> String {
    format!(
        "START TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SELECT pg_advisory_xact_lock({WRITE_LOCK}); {HEAD}; {}",
        opening_meta_sql()
    )
}

const HEAD: &str = "SELECT head FROM change_seq WHERE id = 1";

fn opening_meta_sql() -> String {
    let keys: Vec<String> = OPENING_META.iter().map(|k| format!("'{k}'")).collect();
    format!(
        "SELECT key, value FROM meta WHERE key IN ({})",
        keys.join(", ")
    )
}

/// One pooled connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// A connection for the pool: the statements of [`Ask`]s are prepared
    /// (by name, so an opening's simple query can execute them).
    fn new(mut client: Client, wait: Duration) -> Result<Self, postgres::Error> {
        client.batch_execute(&session_deadlines(wait))?;
        client.batch_execute(&opening::prepare_sql())?;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
    }
}

struct PoolState {
    idle: Vec<Conn>,
    open: usize,
}

/// Record rows written (summed over write transactions) after which the
/// planner statistics are refreshed in the background ([`Analyzer`]).
const ANALYZE_AFTER: u64 = 20_000;

/// The tables a bulk write grows, with the columns queries filter, join or
/// sort on, from a sample of 9,000 rows per table instead of 30,000 (a
/// statistics target of 30 instead of 100). A run competes with the syncs
/// for the same cores; it only has to show the planner how large the
/// tables have become and how their keys spread, and autovacuum refines
/// the statistics later. Leaving out a record's JSON and its id (unique:
/// the planner knows from the index) and the smaller sample cut a run
/// over 41,000 visits from about 210 ms to about 55. (A target of 10,
/// about 25 ms, left the PostgreSQL bootstrap pull a few per cent slower,
/// inside the run-to-run spread.)
const ANALYZE: &str = "SET default_statistics_target = 30; ANALYZE records (collection, seq, customer_id, subject_user, subject_team, public), \
     report_facts, report_customers, customer_owners, check_ins (user_id, started_at_ms)";

/// Whether the planner's picture of `records` is off by half or more: it
/// was never analysed, or the table has at least doubled since. Smaller
/// drifts are autovacuum's (it analyses after 10 % changed). The count of
/// changes since the last ANALYZE cannot tell: an ANALYZE of some columns
/// (ours) leaves it as it was, for autovacuum to refine them all later.
const STALE: &str = "SELECT coalesce((SELECT s.n_live_tup >= 2 * greatest(c.reltuples, 0) \
     FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = 'records'::regclass), true)";

/// Run [`ANALYZE`] when the statistics are [`STALE`]; whether it ran.
fn refresh(c: &mut Client) -> Result<bool, postgres::Error> {
    let stale: bool = c.query_one(STALE, &[])?.get(0);
    if stale {
        c.batch_execute(ANALYZE)?;
    }
    Ok(stale)
}

/// Refreshes planner statistics after bulk writes, on a connection and
/// thread of its own, one run at a time. Autovacuum does it too, but only
/// after up to a minute: until then a table loaded by a large push or a
/// migration looks empty to the planner, and a pull's plan reads a
/// customer's whole history for every page (three times slower at 100,000
/// visits).
///
/// The threshold grows with what this instance wrote: a run starts after
/// `after` records, then after as many more as were written in all, so a
/// steadily growing database is analysed ever more rarely (autovacuum
/// looks after it once each run's share of the table is small), while a
/// bulk load is analysed soon after it lands. A run that finds the
/// statistics less than twice off ([`STALE`]: other instances' writes,
/// autovacuum) leaves them to autovacuum: every run makes each connection
/// plan its statements again, and in the fleet a run (one per instance)
/// cost the measured runs' tail more than the statistics gained.
#[derive(Debug)]
struct Analyzer {
    /// Rows after which the first run starts.
    after: u64,
    /// Rows after which the next run starts.
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    written: std::sync::atomic::AtomicU64,
    /// Rows counted before the last run started.
    total: std::sync::atomic::AtomicU64,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new(ANALYZE_AFTER)
    }
}

impl Analyzer {
    fn new(after: u64) -> Self {
        Self {
            after,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(after)),
            written: std::sync::atomic::AtomicU64::new(0),
            total: std::sync::atomic::AtomicU64::new(0),
            running: std::sync::Arc::default(),
        }
    }

    /// Count `rows` written records; start a run when enough were.
    fn wrote(&self, rows: u64, config: &postgres::Config) {
        use std::sync::atomic::Ordering;
        if rows == 0
            || self.written.fetch_add(rows, Ordering::Relaxed) + rows
                < self.next.load(Ordering::Relaxed)
        {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let total = self.total.load(Ordering::Relaxed) + self.written.swap(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        // After a run, wait for as many records again; after a check that
        // found the statistics close enough (or failed), check again soon.
        let (after, grown) = (self.after, total.max(self.after));
        let (config, running, next) = (config.clone(), self.running.clone(), self.next.clone());
        let spawned = std::thread::Builder::new()
            .name("pg-analyze".into())
            .spawn(move || {
                let done = connect(&config)
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| refresh(&mut c).map_err(|e| e.to_string()));
                next.store(
                    if matches!(done, Ok(true)) {
                        grown
                    } else {
                        after
                    },
                    Ordering::Relaxed,
                );
                if let Err(e) = done {
                    tracing::warn!(error = %e, "refreshing planner statistics failed");
                }
                running.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            self.running.store(false, Ordering::Release);
        }
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
        super::facts::rebuild_if_stale(&store)?;
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

    /// Take a connection, opening one when the pool is not full, or wait
    /// for one until the deadline.
    fn checkout(&self) -> Result<Pooled<'_>, StoreError> {
        // Requests get connections in the order they asked; holding a turn,
        // one is idle or may be opened.
        let deadline = Instant::now() + self.wait;
        let turn = self
            .turns
            .wait_until(deadline)
            .ok_or_else(|| self.timed_out("a pooled connection"))?;
        let mut st = lock(&self.state);
        loop {
            if let Some(conn) = st.idle.pop() {
                if conn.client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Pooled {
                    store: self,
                    conn: Some(conn),
                    _turn: turn,
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        store: self,
                        conn: Some(conn),
                        _turn: turn,
                    }),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.returned.notify_one();
                        Err(backend(e))
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timed_out("a pooled connection"));
            }
            st = self
                .returned
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
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

/// A checked-out connection, returned to the pool when dropped (and then
/// its turn passes to the next request in line).
struct Pooled<'a> {
    store: &'a PostgresStore,
    conn: Option<Conn>,
    _turn: Turn<'a>,
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut st = lock(&self.store.state);
            if conn.client.is_closed() {
                st.open -= 1;
            } else {
                st.idle.push(conn);
            }
            drop(st);
            self.store.returned.notify_one();
        }
    }
}

impl Pooled<'_> {
    fn parts(&mut self) -> Result<(&mut Client, &mut HashMap<String, Statement>), StoreError> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("pooled connection already returned".into()))?;
        Ok((&mut conn.client, &mut conn.statements))
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
        let deadline = Instant::now() + self.wait;
        let turn = self
            .writers
            .wait_until(deadline)
            .ok_or_else(|| self.timed_out("its turn on the writer"))?;
        let mut slot = lock(&self.writer);
        if slot.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            slot.conn = None;
            if let Some(lost) = slot.open.take() {
                lost.group.end(GroupEnd::Failed(
                    "the connection to the database was lost".into(),
                ));
            }
        }
        let resumed = slot.open.take();
        let Writer { conn, open } = &mut *slot;
        let conn = match conn {
            Some(conn) => conn,
            empty => empty.insert(self.connect()?),
        };
        let (mut tx, group) = match resumed {
            Some(s) => {
                let group = Arc::clone(&s.group);
                (Tx::resume(&mut conn.client, &mut conn.statements, s), group)
            }
            None => (
                Tx::new(
                    &mut conn.client,
                    &mut conn.statements,
                    write_opening(),
                    Some(Behind::default()),
                ),
                Arc::new(Group::default()),
            ),
        };
        // Until the group's end is known, writers waiting in it hear that
        // it failed (also if `f` panics).
        let mut ending = GroupEnding {
            group: &group,
            end: Some(GroupEnd::Failed("a writer of the group stopped".into())),
        };
        let mark = tx.mark();
        let own = f(&mut tx);
        // A failed writer of a group is undone alone; the group goes on.
        let usable = match (&own, mark) {
            (Ok(()), _) => true,
            (Err(_), Some(mark)) => tx.undo(mark),
            (Err(_), None) => false,
        };
        if usable
            && group.members() + 1 < MAX_GROUP
            && self.writers.waiting() > 0
            && tx.ensure_open().is_ok()
        {
            if own.is_ok() {
                group.join();
            }
            *open = Some(tx.suspend(Arc::clone(&group)));
            ending.end = None;
            drop(slot);
            drop(turn);
            return match own {
                Ok(()) => group.wait_until(deadline, self.wait),
                Err(e) => Err(e),
            };
        }
        let ended = if usable {
            tx.flush().and_then(|()| {
                let written = tx.behind.as_ref().map_or(0, |b| b.records_sent);
                tx.end("COMMIT").map(|()| written)
            })
        } else {
            tx.end("ROLLBACK").map(|()| 0)
        };
        if ended.is_err() {
            // Whatever state it is left in, the next writer starts on a
            // fresh connection rather than inherit a transaction.
            slot.conn = None;
        }
        ending.end = Some(match (&ended, usable) {
            (Ok(_), true) => GroupEnd::Committed,
            (Err(e), _) => GroupEnd::Failed(e.to_string()),
            (Ok(_), false) => GroupEnd::Failed("a writer of the group failed".into()),
        });
        drop(ending);
        drop(slot);
        drop(turn);
        self.analyzer.wrote(ended?, &self.config);
        own
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
    /// The opening ([`read_opening`] or [`write_opening`]) and the reads
    /// asked to travel with it, until the transaction first needs the
    /// database.
    unsent: Option<(String, Vec<Ask>)>,
    /// The change head: read in the first round trip; a write transaction
    /// (which holds the write lock) counts on from it as it takes numbers.
    head: u64,
    /// The [`OPENING_META`] values as the first round trip read them.
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

impl<'a> Tx<'a> {
    /// A transaction that begins with `opening` ([`read_opening`] or
    /// [`write_opening`]) when it first needs the database.
    fn new(
        t: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
        opening: String,
        behind: Option<Behind>,
    ) -> Self {
        Tx {
            t,
            statements,
            behind,
            unsent: Some((opening, Vec::new())),
            head: 0,
            opening_meta: HashMap::new(),
            open: false,
            continued: false,
        }
    }

    /// The open transaction `s` left by the previous writer of a group.
    fn resume(
        t: &'a mut Client,
        statements: &'a mut HashMap<String, Statement>,
        s: Suspended,
    ) -> Self {
        Tx {
            t,
            statements,
            behind: Some(s.behind),
            unsent: Some((SAVEPOINT.to_owned(), Vec::new())),
            head: s.head,
            opening_meta: s.opening_meta,
            open: true,
            continued: true,
        }
    }

    /// Where this writer of a group starts (`None` for the first).
    fn mark(&mut self) -> Option<WriterMark> {
        if !self.continued {
            return None;
        }
        Some(WriterMark {
            pending: self.behind.as_mut()?.mark(),
            head: self.head,
            opening_meta: self.opening_meta.clone(),
        })
    }

    /// Undo this writer's part of its group's transaction: its statements,
    /// back to its savepoint, and its writes kept behind. `false` when that
    /// cannot be done alone (writes of the group were sent meanwhile, or
    /// the database failed): the whole transaction is rolled back then.
    fn undo(&mut self, m: WriterMark) -> bool {
        let Some(b) = self.behind.as_mut() else {
            return false;
        };
        if !b.undo(&m.pending) {
            return false;
        }
        self.head = m.head;
        self.opening_meta = m.opening_meta;
        // Nothing was sent when the opening (with the savepoint) was not.
        self.unsent.take().is_some()
            || self
                .t
                .batch_execute(&format!("ROLLBACK TO {SAVEPOINT_NAME}"))
                .is_ok()
    }

    /// Leave this (begun) transaction open for the next writer of `group`.
    fn suspend(mut self, group: Arc<Group>) -> Suspended {
        self.open = false;
        Suspended {
            behind: self.behind.take().unwrap_or_default(),
            head: self.head,
            opening_meta: std::mem::take(&mut self.opening_meta),
            group,
        }
    }

    /// Send COMMIT or ROLLBACK (nothing when the transaction never began).
    fn end(mut self, how: &str) -> Result<(), StoreError> {
        if self.open {
            self.open = false;
            self.t.batch_execute(how)?;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Begin, if not yet begun: send the opening with the reads asked so far.
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.unsent.is_some() {
            self.send_opening(None)?;
        }
        Ok(())
    }

    /// Send the opening, the reads asked so far and `last`; keep what the
    /// opening read, apply the asked reads, and return the rows of `last`.
    fn send_opening(&mut self, last: Option<Ask>) -> Result<Vec<SimpleQueryRow>, StoreError> {
        let (mut sql, mut asks) = self
            .unsent
            .take()
            .ok_or_else(|| StoreError::Corrupt("the transaction began twice".into()))?;
        let wanted = last.is_some();
        asks.extend(last);
        for a in &asks {
            sql.push_str("; ");
            sql.push_str(&a.sql());
        }
        // From here a failure may leave a transaction begun: roll it back.
        self.open = true;
        let mut answers = opening::by_statement(self.t.simple_query(&sql)?);
        let base = if self.continued {
            1
        } else {
            let head = opening::answer(&mut answers, opening::HEAD_AT)?;
            self.head = match head.first().map(|r| r.i64(0)).transpose()? {
                Some(h) => h as u64,
                None => return Err(StoreError::Corrupt("the change head is missing".into())),
            };
            for r in opening::answer(&mut answers, opening::META_AT)? {
                self.opening_meta.insert(r.string(0)?, r.string(1)?);
            }
            opening::BASE_STATEMENTS
        };
        let mut out = Vec::new();
        let n = asks.len();
        for (i, a) in asks.into_iter().enumerate() {
            let rows = opening::answer(&mut answers, base + i)?;
            if wanted && i + 1 == n {
                out = rows;
            } else {
                self.apply(&a, &rows)?;
            }
        }
        Ok(out)
    }

    /// Read `ask` now: in the opening if the transaction has not begun,
    /// else as a statement of its own.
    fn ask(&mut self, ask: Ask) -> Result<Vec<SimpleQueryRow>, StoreError> {
        if self.unsent.is_some() {
            return self.send_opening(Some(ask));
        }
        let mut answers = opening::by_statement(self.t.simple_query(&ask.sql())?);
        opening::answer(&mut answers, 0)
    }

    /// A hint: read `ask` with the opening if the transaction has not
    /// begun, else now; the answer goes to what the write-behind knows.
    fn hint(&mut self, ask: Ask) -> Result<(), StoreError> {
        if let Some((_, asks)) = &mut self.unsent {
            asks.push(ask);
            return Ok(());
        }
        let rows = self.ask(ask.clone())?;
        self.apply(&ask, &rows)
    }

    /// Keep the answer to a hint in what the write-behind knows.
    fn apply(&mut self, ask: &Ask, rows: &[SimpleQueryRow]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        match ask {
            Ask::Records(ids) => {
                for id in ids {
                    b.known.records.insert(*id, None);
                }
                for r in rows {
                    let row = record_row(r)?;
                    b.known.records.insert(row.id, Some(row));
                }
            }
            Ask::Owners(ids) => {
                for id in ids {
                    b.known.owners.insert(*id, None);
                }
                for r in rows {
                    let customer: RecordId = parse(&r.string(0)?, "customer id")?;
                    let owner: UserId = parse(&r.string(1)?, "user id")?;
                    b.known.owners.insert(customer, Some(owner));
                    b.known.users.insert(owner, user_row_if_any(r, 2)?);
                }
            }
            Ask::CheckIns(user, asks) => {
                let mut found: Vec<Option<CheckIn>> = vec![None; asks.len()];
                for r in rows {
                    let i = r.i64(0)?;
                    let slot = usize::try_from(i - 1)
                        .ok()
                        .and_then(|i| found.get_mut(i))
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("check-in answer {i} out of range"))
                        })?;
                    *slot = Some(check_in_row(r, *user, 1)?);
                }
                for (&(ms, ex), answer) in asks.iter().zip(found) {
                    b.known.previous.insert((*user, ms, ex), answer);
                }
            }
            Ask::Device(_) | Ask::Token(_) => {
                return Err(StoreError::Corrupt(format!("{ask:?} is not a hint")));
            }
        }
        Ok(())
    }
}

/// The ids of `ids` the transaction cannot answer yet, sorted, once each.
fn unanswered(ids: &[RecordId], answered: impl Fn(&RecordId) -> bool) -> Vec<RecordId> {
    let mut ask: Vec<RecordId> = ids.iter().filter(|id| !answered(id)).copied().collect();
    ask.sort_unstable();
    ask.dedup();
    ask
}

/// A check-in from `visit_id, started_at_ms, lat, lon` starting at column `o`.
fn check_in_row(r: &impl Cols, user: UserId, o: usize) -> Result<CheckIn, StoreError> {
    Ok(CheckIn {
        visit_id: parse(&r.string(o)?, "visit id")?,
        user_id: user,
        started_at_ms: r.i64(o + 1)?,
        at: LatLon {
            lat: r.f64(o + 2)?,
            lon: r.f64(o + 3)?,
        },
    })
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        self.ensure_open()?;
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.t.prepare(sql)?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query(&s, args)?)
    }

    fn opt(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query_opt(&s, args)?)
    }

    fn one(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.query_one(&s, args)?)
    }

    fn exec(&mut self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.t.execute(&s, args)?)
    }
}

/// Column `i` of a row, as `T`.
fn col<'r, T: FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, StoreError> {
    r.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad {what}: {s:?}")))
}

fn parse_opt<T: std::str::FromStr>(s: Option<String>, what: &str) -> Result<Option<T>, StoreError> {
    s.map(|s| parse(&s, what)).transpose()
}

fn seq(n: u64) -> i64 {
    n as i64
}

/// Upsert kept record rows.
fn add_records<'a>(batch: &mut Batch<'a>, records: &'a [RecordRow]) {
    if records.is_empty() {
        return;
    }
    let id: Vec<String> = records.iter().map(|r| r.id.to_string()).collect();
    let collection: Vec<&str> = records.iter().map(|r| r.collection.as_str()).collect();
    let seqs: Vec<i64> = records.iter().map(|r| seq(r.seq)).collect();
    let state: Vec<&str> = records.iter().map(|r| r.state.as_str()).collect();
    let text = |f: fn(&RecordScope) -> Option<String>| -> Vec<Option<String>> {
        records.iter().map(|r| f(&r.scope)).collect()
    };
    let customer = text(|s| s.customer_id.map(|c| c.to_string()));
    let user = text(|s| s.subject_user.map(|u| u.to_string()));
    let team = text(|s| s.subject_team.map(|t| t.to_string()));
    let public: Vec<bool> = records.iter().map(|r| r.scope.public).collect();
    batch.add(
        "INSERT INTO records (id, collection, seq, state, customer_id, subject_user, subject_team, public) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[]) \
         ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, seq = excluded.seq, state = excluded.state, customer_id = excluded.customer_id, \
         subject_user = excluded.subject_user, subject_team = excluded.subject_team, public = excluded.public",
        vec![
            Box::new(id),
            Box::new(collection),
            Box::new(seqs),
            Box::new(state),
            Box::new(customer),
            Box::new(user),
            Box::new(team),
            Box::new(public),
        ],
    );
}

/// Replace report fact rows: records whose row is gone are removed, the
/// others upserted (disjoint keys, so both go in one batch).
fn add_facts<'a>(batch: &mut Batch<'a>, facts: &'a [behind::FactWrite]) {
    use super::facts::FactRow;
    let gone = |customer: bool| -> Vec<&'a RecordId> {
        facts
            .iter()
            .filter(|(_, c, row)| *c == customer && row.is_none())
            .map(|(id, _, _)| id)
            .collect()
    };
    let gone_customers: Vec<String> = gone(true).iter().map(ToString::to_string).collect();
    if !gone_customers.is_empty() {
        batch.add(
            "DELETE FROM report_customers WHERE customer_id = ANY($1::text[])",
            vec![Box::new(gone_customers)],
        );
    }
    let gone_facts: Vec<&[u8]> = gone(false)
        .iter()
        .map(|id| id.0.as_bytes().as_slice())
        .collect();
    if !gone_facts.is_empty() {
        batch.add(
            "DELETE FROM report_facts WHERE record_id = ANY($1::bytea[])",
            vec![Box::new(gone_facts)],
        );
    }
    let (mut c_id, mut c_owner, mut c_created) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for (id, _, row) in facts {
        match row {
            None => {}
            Some(FactRow::Customer {
                owner_id,
                created_us,
            }) => {
                c_id.push(id.to_string());
                c_owner.push(owner_id.as_deref());
                c_created.push(*created_us);
            }
            Some(FactRow::Fact(c)) => rows.push((id, c)),
        }
    }
    if !c_id.is_empty() {
        batch.add(
            "INSERT INTO report_customers (customer_id, owner_id, created_us) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) \
             ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id, created_us = excluded.created_us",
            vec![Box::new(c_id), Box::new(c_owner), Box::new(c_created)],
        );
    }
    if rows.is_empty() {
        return;
    }
    let record: Vec<&[u8]> = rows
        .iter()
        .map(|(id, _)| id.0.as_bytes().as_slice())
        .collect();
    let kind: Vec<&str> = rows.iter().map(|(_, c)| c.kind).collect();
    let at: Vec<i64> = rows.iter().map(|(_, c)| c.at_us).collect();
    let customer: Vec<&[u8]> = rows
        .iter()
        .map(|(_, c)| c.customer_id.0.as_bytes().as_slice())
        .collect();
    let amends: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|(_, c)| c.amends.as_ref().map(|a| a.0.as_bytes().as_slice()))
        .collect();
    let num = |f: fn(&super::facts::FactColumns) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(|(_, c)| f(c)).collect()
    };
    let feedback_kind: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, c)| c.feedback_kind.as_deref())
        .collect();
    batch.add(
        "INSERT INTO report_facts (record_id, kind, at_us, customer_id, amends, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us) \
         SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[]) \
         ON CONFLICT (record_id) DO UPDATE SET kind = excluded.kind, at_us = excluded.at_us, customer_id = excluded.customer_id, amends = excluded.amends, \
         minor = excluded.minor, minor_digits = excluded.minor_digits, voided = excluded.voided, feedback_kind = excluded.feedback_kind, \
         csat = excluded.csat, nps = excluded.nps, resolved_us = excluded.resolved_us",
        vec![
            Box::new(record),
            Box::new(kind),
            Box::new(at),
            Box::new(customer),
            Box::new(amends),
            Box::new(num(|c| c.minor)),
            Box::new(num(|c| c.minor_digits)),
            Box::new(num(|c| c.voided)),
            Box::new(feedback_kind),
            Box::new(num(|c| c.csat)),
            Box::new(num(|c| c.nps)),
            Box::new(num(|c| c.resolved_us)),
        ],
    );
}

/// Insert kept ops.
fn add_ops<'a>(batch: &mut Batch<'a>, ops: &'a [OpRow]) {
    if ops.is_empty() {
        return;
    }
    let device: Vec<String> = ops.iter().map(|o| o.device_id.to_string()).collect();
    let device_seq: Vec<i64> = ops.iter().map(|o| seq(o.device_seq)).collect();
    let op_id: Vec<String> = ops.iter().map(|o| o.op_id.to_string()).collect();
    let user: Vec<String> = ops.iter().map(|o| o.user_id.to_string()).collect();
    let op: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    let outcome: Vec<&str> = ops.iter().map(|o| o.outcome.as_str()).collect();
    let at: Vec<&str> = ops.iter().map(|o| o.at.as_str()).collect();
    batch.add(
        "INSERT INTO ops (device_id, device_seq, op_id, user_id, op, outcome, at) \
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])",
        vec![
            Box::new(device),
            Box::new(device_seq),
            Box::new(op_id),
            Box::new(user),
            Box::new(op),
            Box::new(outcome),
            Box::new(at),
        ],
    );
}

fn is_unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Backend(b) => b
            .downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::code)
            .is_some_and(|c| *c == SqlState::UNIQUE_VIOLATION),
        _ => false,
    }
}

const USER_COLS: &str =
    "id, username, password_hash, role, team_id, supervisor_id, active, created_at";

/// A record by id, in the columns [`record_row`] reads.
const RECORD_BY_ID: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = $1";
/// Records by a list of ids, in the same columns.
const RECORDS_BY_IDS: &str = "SELECT id, collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = ANY($1::text[])";

/// A record from the columns of [`RECORD_BY_ID`].
fn record_row(r: &impl Cols) -> Result<RecordRow, StoreError> {
    Ok(RecordRow {
        id: parse(&r.string(0)?, "record id")?,
        collection: r.string(1)?,
        seq: r.i64(2)? as u64,
        state: r.string(3)?,
        scope: RecordScope {
            customer_id: parse_opt(r.opt_string(4)?, "customer id")?,
            subject_user: parse_opt(r.opt_string(5)?, "user id")?,
            subject_team: parse_opt(r.opt_string(6)?, "team id")?,
            public: r.bool(7)?,
        },
    })
}

fn user_row(r: &Row) -> Result<UserRow, StoreError> {
    user_row_at(r, 0)
}

/// A user from the [`USER_COLS`] starting at column `o`.
fn user_row_at(r: &impl Cols, o: usize) -> Result<UserRow, StoreError> {
    let role = r.string(o + 3)?;
    Ok(UserRow {
        id: parse(&r.string(o)?, "user id")?,
        username: r.string(o + 1)?,
        password_hash: r.string(o + 2)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        team_id: parse_opt(r.opt_string(o + 4)?, "team id")?,
        supervisor_id: parse_opt(r.opt_string(o + 5)?, "user id")?,
        active: r.bool(o + 6)?,
        created_at: r.string(o + 7)?,
    })
}

/// A user from the [`USER_COLS`] starting at column `o`, if its id is not NULL.
fn user_row_if_any(r: &impl Cols, o: usize) -> Result<Option<UserRow>, StoreError> {
    match r.text(o)? {
        Some(_) => Some(user_row_at(r, o)).transpose(),
        None => Ok(None),
    }
}

/// A device and its user from the columns of [`DEVICE_WITH_USER`].
fn device_with_user_row(r: &impl Cols) -> Result<(DeviceRow, Option<UserRow>), StoreError> {
    Ok((device_row(r)?, user_row_if_any(r, 9)?))
}

/// A device and its user (NULL columns when the user is gone), for
/// [`Store::device_with_user`] and [`ReadTx::device_with_user`].
const DEVICE_WITH_USER: &str = "SELECT d.id, d.user_id, d.name, d.created_at, d.last_seen_at, d.revoked_at, d.logged_out_at, d.acked_through, d.clock_drift_ms, \
     u.id, u.username, u.password_hash, u.role, u.team_id, u.supervisor_id, u.active, u.created_at \
     FROM devices d LEFT JOIN users u ON u.id = d.user_id WHERE d.token_hash = $1";

const DEVICE_COLS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked_through, clock_drift_ms";

fn device_row(r: &impl Cols) -> Result<DeviceRow, StoreError> {
    Ok(DeviceRow {
        id: parse(&r.string(0)?, "device id")?,
        user_id: parse(&r.string(1)?, "user id")?,
        name: r.string(2)?,
        created_at: r.string(3)?,
        last_seen_at: r.opt_string(4)?,
        revoked_at: r.opt_string(5)?,
        logged_out_at: r.opt_string(6)?,
        acked_through: r.i64(7)? as u64,
        clock_drift_ms: r.int(8)?,
    })
}

fn team_row(r: &Row) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: parse(&col::<String>(r, 0)?, "team id")?,
        name: col(r, 1)?,
        region: col(r, 2)?,
        created_at: col(r, 3)?,
    })
}

fn ids<T: ToString>(list: &[T]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

/// The scope condition over `records r` joined to `customer_owners o`, with
/// the users as `$U` and the teams as `$T` (text arrays).
fn scope_cond(scope: &ScopeFilter, u: usize, t: usize) -> String {
    if scope.all {
        "TRUE".into()
    } else {
        format!(
            "(r.public OR r.subject_user = ANY(${u}) OR o.owner_id = ANY(${u}) OR r.subject_team = ANY(${t}))"
        )
    }
}

impl ReadTx for Tx<'_> {
    fn reuse_plans(&mut self) {
        if self.behind.is_none()
            && let Some((opening, _)) = &mut self.unsent
        {
            *opening = read_opening(true);
        }
    }

    fn metas(&mut self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        self.ensure_open()?;
        if keys.iter().all(|k| OPENING_META.contains(k)) {
            return Ok(keys.iter().map(|k| self.opening_value(k)).collect());
        }
        let rows = self.query(
            "SELECT key, value FROM meta WHERE key = ANY($1::text[])",
            &[&keys],
        )?;
        let mut stored = HashMap::with_capacity(rows.len());
        for r in &rows {
            stored.insert(col::<String>(r, 0)?, col::<String>(r, 1)?);
        }
        let pending = |k: &str| {
            self.behind
                .as_ref()
                .and_then(|b| b.pending_meta(k))
                .map(str::to_owned)
        };
        Ok(keys
            .iter()
            .map(|k| pending(k).or_else(|| stored.get(*k).cloned()))
            .collect())
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        self.ensure_open()?;
        if OPENING_META.contains(&key) {
            return Ok(self.opening_value(key));
        }
        if let Some(v) = self.behind.as_ref().and_then(|b| b.pending_meta(key)) {
            return Ok(Some(v.to_owned()));
        }
        self.opt("SELECT value FROM meta WHERE key = $1", &[&key])?
            .map(|r| col(&r, 0))
            .transpose()
    }

    fn head_seq(&mut self) -> Result<u64, StoreError> {
        self.ensure_open()?;
        Ok(self.head)
    }

    fn user_count(&mut self) -> Result<u64, StoreError> {
        let r = self.one("SELECT count(*) FROM users", &[])?;
        Ok(col::<i64>(&r, 0)? as u64)
    }

    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        self.opt(
            &format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
            &[&username],
        )?
        .map(|r| user_row(&r))
        .transpose()
    }

    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        if let Some(u) = self.behind.as_ref().and_then(|b| b.known.users.get(&id)) {
            return Ok(u.clone());
        }
        self.opt(
            &format!("SELECT {USER_COLS} FROM users WHERE id = $1"),
            &[&id.to_string()],
        )?
        .map(|r| user_row(&r))
        .transpose()
    }

    fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        self.query(
            &format!("SELECT {USER_COLS} FROM users ORDER BY username COLLATE \"C\""),
            &[],
        )?
        .iter()
        .map(user_row)
        .collect()
    }

    fn team_members(
        &mut self,
        team: Option<TeamId>,
        supervisor: Option<UserId>,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = self.query(
            "SELECT id FROM users WHERE ($1::text IS NOT NULL AND team_id = $1) OR ($2::text IS NOT NULL AND supervisor_id = $2) ORDER BY id COLLATE \"C\"",
            &[&team.map(|t| t.to_string()), &supervisor.map(|s| s.to_string())],
        )?;
        rows.iter()
            .map(|r| parse(&col::<String>(r, 0)?, "user id"))
            .collect()
    }

    fn team_by_name(&mut self, name: &str) -> Result<Option<TeamRow>, StoreError> {
        self.opt(
            "SELECT id, name, region, created_at FROM teams WHERE name = $1",
            &[&name],
        )?
        .map(|r| team_row(&r))
        .transpose()
    }

    fn team(&mut self, id: TeamId) -> Result<Option<TeamRow>, StoreError> {
        self.opt(
            "SELECT id, name, region, created_at FROM teams WHERE id = $1",
            &[&id.to_string()],
        )?
        .map(|r| team_row(&r))
        .transpose()
    }

    fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError> {
        self.query(
            "SELECT id, name, region, created_at FROM teams ORDER BY name COLLATE \"C\"",
            &[],
        )?
        .iter()
        .map(team_row)
        .collect()
    }

    fn device(&mut self, id: DeviceId) -> Result<Option<DeviceRow>, StoreError> {
        let stored = if self.unsent.is_some() {
            self.ask(Ask::Device(id))?
                .first()
                .map(device_row)
                .transpose()?
        } else {
            self.opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"),
                &[&id.to_string()],
            )?
            .map(|r| device_row(&r))
            .transpose()?
        };
        // Bookkeeping kept behind is laid over the stored row.
        let pending = self
            .behind
            .as_ref()
            .and_then(|b| b.pending.devices.get(&id));
        Ok(stored.map(|mut d| {
            if let Some(u) = pending {
                if let Some(seen) = &u.last_seen_at {
                    d.last_seen_at = Some(seen.clone());
                }
                if let Some(a) = u.acked_through {
                    d.acked_through = a;
                }
                if let Some(drift) = u.clock_drift_ms {
                    d.clock_drift_ms = Some(drift);
                }
            }
            d
        }))
    }

    fn device_with_user(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<(DeviceRow, Option<UserRow>)>, StoreError> {
        self.flush_devices()?;
        if self.unsent.is_some() {
            return self
                .ask(Ask::Token(token_hash.to_vec()))?
                .first()
                .map(device_with_user_row)
                .transpose();
        }
        self.opt(DEVICE_WITH_USER, &[&token_hash])?
            .map(|r| device_with_user_row(&r))
            .transpose()
    }

    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError> {
        self.flush_devices()?;
        self.opt(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = $1"),
            &[&token_hash],
        )?
        .map(|r| device_row(&r))
        .transpose()
    }

    fn devices(&mut self, user: Option<UserId>) -> Result<Vec<DeviceRow>, StoreError> {
        self.flush_devices()?;
        self.query(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE $1::text IS NULL OR user_id = $1 ORDER BY created_at COLLATE \"C\", id COLLATE \"C\""),
            &[&user.map(|u| u.to_string())],
        )?
        .iter()
        .map(device_row)
        .collect()
    }

    fn active_device_count(&mut self) -> Result<u64, StoreError> {
        let r = self.one("SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id WHERE d.revoked_at IS NULL AND u.active", &[])?;
        Ok(col::<i64>(&r, 0)? as u64)
    }

    fn login_failures(
        &mut self,
        username: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(Vec<(String, i64)>, u64), StoreError> {
        let by_user = self
            .query(
                "SELECT address, at_ms FROM login_failures WHERE username = $1 AND at_ms >= $2 ORDER BY at_ms",
                &[&username, &since_ms],
            )?
            .iter()
            .map(|r| Ok((col::<String>(r, 0)?, col::<i64>(r, 1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let r = self.one(
            "SELECT count(*) FROM login_failures WHERE address = $1 AND at_ms >= $2",
            &[&key, &since_ms],
        )?;
        Ok((by_user, col::<i64>(&r, 0)? as u64))
    }

    fn dashboard_session(&mut self, id_hash: &[u8]) -> Result<Option<(UserId, i64)>, StoreError> {
        self.opt(
            "SELECT user_id, expires_at_ms FROM dashboard_sessions WHERE id_hash = $1",
            &[&id_hash],
        )?
        .map(|r| {
            Ok((
                parse(&col::<String>(&r, 0)?, "user id")?,
                col::<i64>(&r, 1)?,
            ))
        })
        .transpose()
    }

    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError> {
        if let Some(b) = &self.behind {
            if let Some(r) = b.pending.records.get(&id) {
                return Ok(Some(r.clone()));
            }
            if let Some(r) = b.known.records.get(&id) {
                return Ok(r.clone());
            }
        }
        let row = self
            .opt(RECORD_BY_ID, &[&id.to_string()])?
            .map(|r| record_row(&r))
            .transpose()?;
        if let Some(b) = &mut self.behind {
            b.known.records.insert(id, row.clone());
        }
        Ok(row)
    }

    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError> {
        if let Some((_, owner)) = self
            .behind
            .as_ref()
            .and_then(|b| b.pending.owners.get(&customer))
        {
            return Ok(Some(*owner));
        }
        if let Some(owner) = self
            .behind
            .as_ref()
            .and_then(|b| b.known.owners.get(&customer))
        {
            return Ok(*owner);
        }
        let s: Option<String> = self
            .opt(
                "SELECT owner_id FROM customer_owners WHERE customer_id = $1",
                &[&customer.to_string()],
            )?
            .map(|r| col(&r, 0))
            .transpose()?;
        parse_opt(s, "user id")
    }

    fn customer_unit(&mut self, customer: RecordId) -> Result<Vec<RecordId>, StoreError> {
        self.flush()?;
        self.query(
            "SELECT id FROM records WHERE customer_id = $1 ORDER BY seq",
            &[&customer.to_string()],
        )?
        .iter()
        .map(|r| parse(&col::<String>(r, 0)?, "record id"))
        .collect()
    }

    fn changes(
        &mut self,
        scope: &ScopeFilter,
        cursor: u64,
        head: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let limit = i64::from(limit);
        let (cursor, head) = (seq(cursor), seq(head));
        if scope.all {
            let rows = self.query(
                "SELECT r.seq, r.state FROM records r WHERE r.seq > $1 AND r.seq <= $2 ORDER BY r.seq LIMIT $3",
                &[&cursor, &head, &limit],
            )?;
            return rows
                .iter()
                .map(|r| {
                    Ok(ChangeRow::Upsert {
                        seq: r.i64(0)? as u64,
                        state: r.string(1)?,
                    })
                })
                .collect();
        }
        // One index seek per scope key (each user, owned customer and
        // team, and the public records), each bounded by the seq range,
        // merged in seq order and cut at the limit before the states are
        // read; the customers that left the users' scope (evictions) in the
        // same statement and order. Every seek starts from a key (the
        // arrays are unnested, a state is looked up by seq per row), so
        // the plan is the same whatever the parameters and may be made
        // once: see "Plan modes".
        let rows = self.query(
            "SELECT seq, state, evicted FROM (\
             (SELECT s.seq, r.state, NULL::text AS evicted FROM (\
              (SELECT seq FROM records WHERE public AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) \
              UNION (SELECT x.seq FROM unnest($4::text[]) AS k(id) CROSS JOIN LATERAL \
                     (SELECT seq FROM records WHERE subject_user = k.id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x) \
              UNION (SELECT x.seq FROM unnest($4::text[]) AS k(id) \
                     CROSS JOIN LATERAL (SELECT customer_id FROM customer_owners WHERE owner_id = k.id OFFSET 0) o \
                     CROSS JOIN LATERAL (SELECT seq FROM records WHERE customer_id = o.customer_id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x \
                     ORDER BY x.seq LIMIT $3) \
              UNION (SELECT x.seq FROM unnest($5::text[]) AS k(id) CROSS JOIN LATERAL \
                     (SELECT seq FROM records WHERE subject_team = k.id AND seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3) x) \
              ORDER BY 1 LIMIT $3) s \
              CROSS JOIN LATERAL (SELECT state FROM records WHERE seq = s.seq OFFSET 0) r) \
             UNION ALL \
             (SELECT x.seq, NULL, x.customer_id FROM unnest($4::text[]) AS k(id) CROSS JOIN LATERAL \
                (SELECT e.seq, e.customer_id FROM evictions e WHERE e.from_owner = k.id AND e.seq > $1 AND e.seq <= $2 ORDER BY e.seq LIMIT $3) x \
              WHERE COALESCE((SELECT o.owner_id FROM customer_owners o WHERE o.customer_id = x.customer_id) <> ALL($4), TRUE))\
             ) c ORDER BY seq LIMIT $3",
            &[&cursor, &head, &limit, &users, &teams],
        )?;
        rows.iter()
            .map(|r| {
                let seq = r.i64(0)? as u64;
                Ok(match r.text(2)? {
                    Some(c) => ChangeRow::Evict {
                        seq,
                        customer_id: parse(c, "customer id")?,
                    },
                    None => ChangeRow::Upsert {
                        seq,
                        state: r.string(1)?,
                    },
                })
            })
            .collect()
    }

    fn scope_records(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
            scope_cond(scope, 1, 2)
        );
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![]
        } else {
            vec![&users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let c: &str = col(&r, 0)?;
            let st: &str = col(&r, 1)?;
            f(c, st);
        }
        Ok(())
    }

    fn scope_records_of(
        &mut self,
        scope: &ScopeFilter,
        collections: &[&str],
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let wanted: Vec<String> = collections.iter().map(|c| (*c).to_owned()).collect();
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE r.collection = ANY($1) AND {}",
            scope_cond(scope, 2, 3)
        );
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![&wanted]
        } else {
            vec![&wanted, &users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let c: &str = col(&r, 0)?;
            let st: &str = col(&r, 1)?;
            f(c, st);
        }
        Ok(())
    }

    fn report_customers(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let sql = if scope.all {
            "SELECT customer_id, owner_id, created_us FROM report_customers".to_owned()
        } else {
            format!(
                "SELECT c.customer_id, c.owner_id, c.created_us FROM report_customers c JOIN records r ON r.id = c.customer_id \
                 LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
                scope_cond(scope, 1, 2)
            )
        };
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![]
        } else {
            vec![&users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let id = super::facts::record_id(col(&r, 0)?)?;
            let owner: Option<&str> = col(&r, 1)?;
            f(id, super::facts::customer_fact(owner, col(&r, 2)?)?);
        }
        Ok(())
    }

    fn report_facts(
        &mut self,
        from_us: i64,
        to_us: i64,
        part: super::facts::FactPart,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        use super::facts::{FactColumns, kind, record_id_bytes};
        use postgres::fallible_iterator::FallibleIterator;
        self.flush()?;
        let opt_id = |b: Option<&[u8]>| b.map(record_id_bytes).transpose();
        for (sql, a, b, visits) in part.queries(from_us, to_us) {
            let s = self.statement(sql)?;
            let args: Vec<&(dyn ToSql + Sync)> = vec![&a, &b];
            let mut rows = self.t.query_raw(&s, args)?;
            while let Some(r) = rows.next()? {
                let record = record_id_bytes(col(&r, 0)?)?;
                let cols = if visits {
                    FactColumns::<&str> {
                        amends: opt_id(col(&r, 3)?)?,
                        ..FactColumns::new("visit", col(&r, 1)?, record_id_bytes(col(&r, 2)?)?)
                    }
                } else {
                    FactColumns::<&str> {
                        minor: col(&r, 4)?,
                        minor_digits: col(&r, 5)?,
                        voided: col(&r, 6)?,
                        feedback_kind: col(&r, 7)?,
                        csat: col(&r, 8)?,
                        nps: col(&r, 9)?,
                        resolved_us: col(&r, 10)?,
                        ..FactColumns::new(
                            kind(col(&r, 1)?)?,
                            col(&r, 2)?,
                            record_id_bytes(col(&r, 3)?)?,
                        )
                    }
                };
                f(record, cols.to_fact(record)?);
            }
        }
        Ok(())
    }

    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError> {
        self.flush()?;
        let Some(r) = self.opt(
            "SELECT op_id, user_id, op, outcome, at FROM ops WHERE device_id = $1 AND device_seq = $2",
            &[&device.to_string(), &seq(device_seq)],
        )?
        else {
            return Ok(None);
        };
        Ok(Some(OpRow {
            device_id: device,
            device_seq,
            op_id: parse(&col::<String>(&r, 0)?, "op id")?,
            user_id: parse(&col::<String>(&r, 1)?, "user id")?,
            op: col(&r, 2)?,
            outcome: col(&r, 3)?,
            at: col(&r, 4)?,
        }))
    }

    fn problems(&mut self, users: Option<&[UserId]>) -> Result<Vec<ProblemRow>, StoreError> {
        const COLS: &str =
            "SELECT id, user_id, device_id, op, code, message, field, created_at FROM problems";
        let rows = match users {
            None => self.query(&format!("{COLS} ORDER BY id DESC"), &[])?,
            Some([]) => return Ok(vec![]),
            Some(users) => self.query(
                &format!("{COLS} WHERE user_id = ANY($1) ORDER BY id DESC"),
                &[&ids(users)],
            )?,
        };
        rows.iter()
            .map(|r| {
                Ok(ProblemRow {
                    id: col(r, 0)?,
                    user_id: parse(&col::<String>(r, 1)?, "user id")?,
                    device_id: parse(&col::<String>(r, 2)?, "device id")?,
                    op: col(r, 3)?,
                    code: col(r, 4)?,
                    message: col(r, 5)?,
                    field: col(r, 6)?,
                    created_at: col(r, 7)?,
                })
            })
            .collect()
    }

    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError> {
        self.query(
            "SELECT collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at FROM conflicts WHERE record_id = $1 ORDER BY id",
            &[&record.to_string()],
        )?
        .iter()
        .map(|r| {
            Ok(ConflictRow {
                record_id: record,
                collection: col(r, 0)?,
                op_id: parse(&col::<String>(r, 1)?, "op id")?,
                user_id: parse(&col::<String>(r, 2)?, "user id")?,
                field: col(r, 3)?,
                losing_value: col(r, 4)?,
                winning_value: col(r, 5)?,
                losing_hlc: col(r, 6)?,
                winning_hlc: col(r, 7)?,
                created_at: col(r, 8)?,
            })
        })
        .collect()
    }

    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        let key = (user, before_ms, exclude);
        let known = match &self.behind {
            None => return self.previous_check_in_db(user, before_ms, exclude),
            Some(b) => b.known.previous.get(&key).copied(),
        };
        let db = if let Some(a) = known {
            a
        } else {
            let a = self.previous_check_in_db(user, before_ms, exclude)?;
            self.behind_mut()?.known.previous.insert(key, a);
            a
        };
        let b = self.behind_mut()?;
        if db.is_some_and(|d| b.pending.check_ins.get(&d.visit_id).is_some()) {
            // This transaction replaced that check-in: send it and ask again.
            self.flush()?;
            return self.previous_check_in_db(user, before_ms, exclude);
        }
        Ok(behind::later(
            db,
            b.pending_previous(user, before_ms, exclude),
        ))
    }
}

impl Tx<'_> {
    fn previous_check_in_db(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        self.opt(
            "SELECT visit_id, started_at_ms, lat, lon FROM check_ins WHERE user_id = $1 AND started_at_ms < $2 AND visit_id <> $3 ORDER BY started_at_ms DESC LIMIT 1",
            &[&user.to_string(), &before_ms, &exclude.to_string()],
        )?
        .map(|r| check_in_row(&r, user, 0))
        .transpose()
    }
}

impl Tx<'_> {
    /// An [`OPENING_META`] value: kept behind, else as first read.
    fn opening_value(&self, key: &str) -> Option<String> {
        self.behind
            .as_ref()
            .and_then(|b| b.pending_meta(key))
            .or_else(|| self.opening_meta.get(key).map(String::as_str))
            .map(str::to_owned)
    }

    /// A user row is about to change: forget the ones read earlier.
    fn forget_users(&mut self) {
        if let Some(b) = &mut self.behind {
            b.known.users.clear();
        }
    }

    fn behind_mut(&mut self) -> Result<&mut Behind, StoreError> {
        self.behind
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("a write in a read-only transaction".into()))
    }

    /// Send the writes kept behind, when there are enough of them.
    fn flush_if_full(&mut self) -> Result<(), StoreError> {
        if self.behind.as_ref().is_some_and(Behind::full) {
            self.flush()?;
        }
        Ok(())
    }

    /// Send the writes kept behind, as one statement ([`Batch`]).
    fn flush(&mut self) -> Result<(), StoreError> {
        let Some(b) = self.behind.as_mut() else {
            return Ok(());
        };
        let p = b.take();
        b.records_sent += p.records.rows().len() as u64;
        let mut batch = Batch::default();
        if let Some(h) = p.head {
            batch.add(
                "UPDATE change_seq SET head = $1 WHERE id = 1",
                vec![Box::new(seq(h))],
            );
        }
        add_records(&mut batch, p.records.rows());
        add_facts(&mut batch, p.facts.rows());
        let owners = p.owners.rows();
        if !owners.is_empty() {
            let customer: Vec<String> = owners.iter().map(|(c, _)| c.to_string()).collect();
            let owner: Vec<String> = owners.iter().map(|(_, o)| o.to_string()).collect();
            batch.add(
                "INSERT INTO customer_owners (customer_id, owner_id) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id",
                vec![Box::new(customer), Box::new(owner)],
            );
        }
        add_ops(&mut batch, &p.ops);
        let check_ins = p.check_ins.rows();
        if !check_ins.is_empty() {
            let visit: Vec<String> = check_ins.iter().map(|c| c.visit_id.to_string()).collect();
            let user: Vec<String> = check_ins.iter().map(|c| c.user_id.to_string()).collect();
            let started: Vec<i64> = check_ins.iter().map(|c| c.started_at_ms).collect();
            let lat: Vec<f64> = check_ins.iter().map(|c| c.at.lat).collect();
            let lon: Vec<f64> = check_ins.iter().map(|c| c.at.lon).collect();
            batch.add(
                "INSERT INTO check_ins (visit_id, user_id, started_at_ms, lat, lon) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::float8[]) \
                 ON CONFLICT (visit_id) DO UPDATE SET user_id = excluded.user_id, started_at_ms = excluded.started_at_ms, lat = excluded.lat, lon = excluded.lon",
                vec![Box::new(visit), Box::new(user), Box::new(started), Box::new(lat), Box::new(lon)],
            );
        }
        let meta = p.meta.rows();
        if !meta.is_empty() {
            let key: Vec<&str> = meta.iter().map(|(k, _)| k.as_str()).collect();
            let value: Vec<&str> = meta.iter().map(|(_, v)| v.as_str()).collect();
            batch.add(
                "INSERT INTO meta (key, value) SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                vec![Box::new(key), Box::new(value)],
            );
        }
        let devices = p.devices.rows();
        if !devices.is_empty() {
            let id: Vec<Option<String>> = devices
                .iter()
                .map(|d| d.id.map(|i| i.to_string()))
                .collect();
            let seen: Vec<Option<&str>> =
                devices.iter().map(|d| d.last_seen_at.as_deref()).collect();
            let acked: Vec<Option<i64>> =
                devices.iter().map(|d| d.acked_through.map(seq)).collect();
            let drift: Vec<Option<i64>> = devices.iter().map(|d| d.clock_drift_ms).collect();
            // NULL leaves a column as it is: none of these is ever set to NULL.
            batch.add(
                "UPDATE devices d SET last_seen_at = coalesce(u.seen, d.last_seen_at), \
                 acked_through = coalesce(u.acked, d.acked_through), clock_drift_ms = coalesce(u.drift, d.clock_drift_ms) \
                 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u (id, seen, acked, drift) WHERE d.id = u.id",
                vec![Box::new(id), Box::new(seen), Box::new(acked), Box::new(drift)],
            );
        }
        if batch.is_empty() {
            return Ok(());
        }
        let sql = batch.sql();
        self.exec(&sql, &batch.args())?;
        Ok(())
    }

    /// Flush first when device bookkeeping is kept behind: the caller reads
    /// or writes `devices` directly.
    fn flush_devices(&mut self) -> Result<(), StoreError> {
        if self
            .behind
            .as_ref()
            .is_some_and(|b| !b.pending.devices.rows().is_empty())
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Run `sql` inside a savepoint so a unique violation can be answered
    /// with [`StoreError::Taken`] and the transaction stays usable.
    fn insert_unique(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
        taken: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.t.batch_execute("SAVEPOINT fs_unique")?;
        match self.exec(sql, args) {
            Ok(_) => {
                self.t.batch_execute("RELEASE SAVEPOINT fs_unique")?;
                Ok(())
            }
            Err(e) if is_unique_violation(&e) => {
                self.t.batch_execute("ROLLBACK TO SAVEPOINT fs_unique")?;
                Err(StoreError::Taken(taken()))
            }
            Err(e) => Err(e),
        }
    }
}

impl WriteTx for Tx<'_> {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.ensure_open()?;
        self.behind_mut()?.put_meta(key, value);
        if OPENING_META.contains(&key) {
            // Read back from here once a flush has sent it.
            self.opening_meta.insert(key.to_owned(), value.to_owned());
        }
        self.flush_if_full()
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        // The write transaction holds WRITE_LOCK until it ends, so this
        // number becomes visible only after every smaller one. The head is
        // read once and counted here; the flush before commit stores it.
        self.ensure_open()?;
        let next = self.head + 1;
        self.behind_mut()?.pending.head = Some(next);
        self.head = next;
        Ok(next)
    }

    fn insert_user(&mut self, u: &UserRow) -> Result<(), StoreError> {
        self.forget_users();
        self.insert_unique(
            &format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
            &[
                &u.id.to_string(),
                &u.username,
                &u.password_hash,
                &u.role.as_str(),
                &u.team_id.map(|t| t.to_string()),
                &u.supervisor_id.map(|s| s.to_string()),
                &u.active,
                &u.created_at,
            ],
            || format!("username {:?}", u.username),
        )
    }

    fn set_user_active(&mut self, id: UserId, active: bool) -> Result<(), StoreError> {
        self.forget_users();
        self.exec(
            "UPDATE users SET active = $2 WHERE id = $1",
            &[&id.to_string(), &active],
        )?;
        Ok(())
    }

    fn set_password(&mut self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        self.forget_users();
        self.exec(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            &[&id.to_string(), &password_hash],
        )?;
        Ok(())
    }

    fn insert_team(&mut self, t: &TeamRow) -> Result<(), StoreError> {
        self.insert_unique(
            "INSERT INTO teams (id, name, region, created_at) VALUES ($1, $2, $3, $4)",
            &[&t.id.to_string(), &t.name, &t.region, &t.created_at],
            || format!("team name {:?}", t.name),
        )
    }

    fn upsert_device(&mut self, d: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "INSERT INTO devices (id, user_id, name, token_hash, created_at, last_seen_at, revoked_at, acked_through, clock_drift_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash, last_seen_at = excluded.last_seen_at, logged_out_at = NULL",
            &[
                &d.id.to_string(),
                &d.user_id.to_string(),
                &d.name,
                &token_hash,
                &d.created_at,
                &d.last_seen_at,
                &seq(d.acked_through),
                &d.clock_drift_ms,
            ],
        )?;
        Ok(())
    }

    fn revoke_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.to_string(), &at],
        )?;
        Ok(())
    }

    fn log_out_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.flush_devices()?;
        self.exec(
            "UPDATE devices SET logged_out_at = $2 WHERE id = $1 AND logged_out_at IS NULL",
            &[&id.to_string(), &at],
        )?;
        Ok(())
    }

    fn touch_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.last_seen_at = Some(at.to_owned()));
        self.flush_if_full()
    }

    fn set_acked_through(&mut self, id: DeviceId, s: u64) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.acked_through = Some(s));
        self.flush_if_full()
    }

    fn set_clock_drift(&mut self, id: DeviceId, drift_ms: i64) -> Result<(), StoreError> {
        self.behind_mut()?
            .update_device(id, |u| u.clock_drift_ms = Some(drift_ms));
        self.flush_if_full()
    }

    fn add_login_failure(
        &mut self,
        username: &str,
        key: &str,
        at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<i64, StoreError> {
        self.exec(
            "DELETE FROM login_failures WHERE at_ms < $1",
            &[&prune_before_ms],
        )?;
        let r = self.one(
            "INSERT INTO login_failures (username, address, at_ms) VALUES ($1, $2, $3) RETURNING id",
            &[&username, &key, &at_ms],
        )?;
        col::<i64>(&r, 0)
    }

    fn start_dashboard_session(
        &mut self,
        id_hash: &[u8],
        user: UserId,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE expires_at_ms <= $1",
            &[&now_ms],
        )?;
        self.exec(
            "INSERT INTO dashboard_sessions (id_hash, user_id, expires_at_ms) VALUES ($1, $2, $3)",
            &[&id_hash, &user.to_string(), &expires_at_ms],
        )?;
        Ok(())
    }

    fn end_dashboard_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE id_hash = $1",
            &[&id_hash],
        )?;
        Ok(())
    }

    fn end_user_dashboard_sessions(&mut self, user: UserId) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM dashboard_sessions WHERE user_id = $1",
            &[&user.to_string()],
        )?;
        Ok(())
    }

    fn forget_login_failure(&mut self, id: i64) -> Result<(), StoreError> {
        self.exec("DELETE FROM login_failures WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn put_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        self.behind_mut()?.put_record(r.clone());
        super::facts::on_put(self, r)?;
        self.flush_if_full()
    }

    fn put_report_fact(
        &mut self,
        id: RecordId,
        customer: bool,
        row: Option<&super::facts::FactRow>,
    ) -> Result<(), StoreError> {
        self.behind_mut()?.put_fact(id, customer, row.cloned());
        self.flush_if_full()
    }

    fn clear_report_facts(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.exec("DELETE FROM report_customers", &[])?;
        self.exec("DELETE FROM report_facts", &[])?;
        Ok(())
    }

    fn set_record_seq(&mut self, id: RecordId, s: u64) -> Result<(), StoreError> {
        // Records read or kept behind would carry the old number.
        self.flush()?;
        self.behind_mut()?.known.records.remove(&id);
        self.exec(
            "UPDATE records SET seq = $2 WHERE id = $1",
            &[&id.to_string(), &seq(s)],
        )?;
        Ok(())
    }

    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError> {
        self.behind_mut()?.put_owner(customer, owner);
        self.flush_if_full()
    }

    fn add_eviction(
        &mut self,
        s: u64,
        customer: RecordId,
        from: UserId,
        to: UserId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO evictions (seq, customer_id, from_owner, to_owner, at) VALUES ($1, $2, $3, $4, $5)",
            &[&seq(s), &customer.to_string(), &from.to_string(), &to.to_string(), &at],
        )?;
        Ok(())
    }

    fn add_op(&mut self, o: &OpRow) -> Result<(), StoreError> {
        self.behind_mut()?.add_op(o.clone());
        self.flush_if_full()
    }

    fn add_problem(&mut self, p: &ProblemRow) -> Result<i64, StoreError> {
        let r = self.one(
            "INSERT INTO problems (user_id, device_id, op, code, message, field, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                &p.user_id.to_string(),
                &p.device_id.to_string(),
                &p.op,
                &p.code,
                &p.message,
                &p.field,
                &p.created_at,
            ],
        )?;
        col(&r, 0)
    }

    fn add_conflict(&mut self, c: &ConflictRow) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO conflicts (record_id, collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &c.record_id.to_string(),
                &c.collection,
                &c.op_id.to_string(),
                &c.user_id.to_string(),
                &c.field,
                &c.losing_value,
                &c.winning_value,
                &c.losing_hlc,
                &c.winning_hlc,
                &c.created_at,
            ],
        )?;
        Ok(())
    }

    fn put_check_in(&mut self, ci: &CheckIn) -> Result<(), StoreError> {
        self.behind_mut()?.put_check_in(*ci);
        self.flush_if_full()
    }

    fn prefetch_records(&mut self, ids: &[RecordId]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let ask = unanswered(ids, |id| {
            b.pending.records.get(id).is_some() || b.known.records.contains_key(id)
        });
        if ask.is_empty() {
            return Ok(());
        }
        self.hint(Ask::Records(ask))
    }

    fn prefetch_customer_owners(&mut self, customers: &[RecordId]) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let ask = unanswered(customers, |id| {
            b.pending.owners.get(id).is_some() || b.known.owners.contains_key(id)
        });
        if ask.is_empty() {
            return Ok(());
        }
        self.hint(Ask::Owners(ask))
    }

    fn prefetch_previous_check_ins(
        &mut self,
        user: UserId,
        asks: &[(i64, RecordId)],
    ) -> Result<(), StoreError> {
        let b = self.behind_mut()?;
        let asks: Vec<(i64, RecordId)> = asks
            .iter()
            .filter(|(ms, ex)| !b.known.previous.contains_key(&(user, *ms, *ex)))
            .copied()
            .collect();
        if asks.is_empty() {
            return Ok(());
        }
        self.hint(Ask::CheckIns(user, asks))
    }
}

/// Throwaway PostgreSQL databases for tests: created with a unique name,
/// dropped (even with connections left open) when the guard is dropped.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The maintenance connection (override with `FIELDSYNC_TEST_POSTGRES`).
    pub fn admin_url() -> String {
        std::env::var("FIELDSYNC_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A database that exists while this lives.
    pub struct TempDatabase {
        name: String,
    }

    impl TempDatabase {
        /// Create a fresh, empty database.
        pub fn new() -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!(
                "fs_test_{}_{}_{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let mut c = postgres::Client::connect(&admin_url(), postgres::NoTls)
                .expect("PostgreSQL must answer at 127.0.0.1:5432 (pg_ctlcluster 15 main start)");
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            Self { name }
        }

        /// Its URL.
        pub fn url(&self) -> String {
            let admin = admin_url();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            format!("{base}/{}", self.name)
        }
    }

    impl Drop for TempDatabase {
        fn drop(&mut self) {
            if let Ok(mut c) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::waits::{self, SIGNAL, assert_timed_out, once};
    use super::testing::TempDatabase;
    use super::*;

    /// On every pooled connection, the one left over from migrating
    /// included, read transactions plan each execution with its parameters
    /// (unless a pull says its reads are keyed) and everything else may
    /// keep generic plans; a transaction's opening
    /// reads the head and the server's meta values, and a transaction left
    /// open is rolled back when dropped.
    #[test]
    fn transactions_open_in_one_round_trip_with_their_plan_mode() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
        crate::store::write(&store, |tx| {
            tx.set_meta(crate::sync::META_CLOCK, "c1")?;
            tx.set_meta("other", "o1")?;
            tx.next_seq().map(drop)
        })
        .unwrap();
        let mut first = store.checkout().unwrap();
        let mut second = store.checkout().unwrap();
        let show =
            |c: &mut Client| -> String { c.query_one("SHOW plan_cache_mode", &[]).unwrap().get(0) };
        for pooled in [&mut first, &mut second] {
            let (client, statements) = pooled.parts().unwrap();
            assert_eq!(show(client), "auto");
            // (opening, a pull's hint first, plan mode, write-behind)
            for (opening, reuse, mode, behind) in [
                (read_opening(false), false, "force_custom_plan", None),
                (read_opening(false), true, "auto", None),
                (write_opening(), false, "auto", Some(Behind::default())),
            ] {
                let mut tx = Tx::new(client, statements, opening, behind);
                if reuse {
                    tx.reuse_plans();
                }
                assert_eq!(tx.head_seq().unwrap(), 1);
                assert_eq!(show(tx.t), mode);
                assert_eq!(tx.opening_meta.get(crate::sync::META_CLOCK).unwrap(), "c1");
                assert!(!tx.opening_meta.contains_key("other"));
                assert_eq!(tx.meta("other").unwrap().as_deref(), Some("o1"));
                drop(tx);
                // Rolled back: its SET LOCAL and its lock are gone.
                assert_eq!(show(client), "auto");
                let locks: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(locks, 0);
            }
        }
        drop((first, second));
        drop(store);
    }

    /// Wait (at most 10 s) until `n` writers wait for their turn.
    fn wait_until_queued(store: &PostgresStore, n: usize) {
        let ok = (0..10_000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            store.writers.waiting() == n
        });
        assert!(ok, "{n} writers queued within 10 s");
    }

    fn meta_of(store: &PostgresStore, key: &str) -> Option<String> {
        waits::meta_of(store, key)
    }

    fn head(store: &PostgresStore) -> u64 {
        waits::head(store)
    }

    /// A store on a fresh database whose waits give up after `wait`.
    fn impatient_store(wait: Duration) -> (TempDatabase, PostgresStore) {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 2)
            .unwrap()
            .with_wait_deadline(wait)
            .unwrap();
        (db, store)
    }

    /// A request waits for a pooled connection only until its deadline.
    #[test]
    fn a_read_waits_for_a_pooled_connection_only_until_its_deadline() {
        let wait = Duration::from_millis(300);
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 1)
            .unwrap()
            .with_wait_deadline(wait)
            .unwrap();
        let held = store.checkout().unwrap();
        let start = Instant::now();
        let res = store.ping();
        assert_timed_out(&res, "a pooled connection", start.elapsed(), wait);
        assert_eq!(store.turns.waiting(), 0, "it left the line");
        drop(held);
        store.ping().unwrap();
    }

    /// Every store connection carries the session deadlines, and a
    /// statement cancelled by its deadline is a `TimedOut`.
    #[test]
    fn store_connections_carry_the_session_deadlines() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 1)
            .unwrap()
            .with_wait_deadline(Duration::from_millis(1500))
            .unwrap();
        let show = |c: &mut Client, name: &str| -> String {
            c.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
        };
        crate::store::write(&store, |tx| once(tx, "w")).unwrap();
        let writer = &mut lock(&store.writer);
        let mut pooled = store.checkout().unwrap();
        for client in [
            &mut writer.conn.as_mut().unwrap().client,
            pooled.parts().unwrap().0,
        ] {
            assert_eq!(show(client, "lock_timeout"), "1500ms");
            assert_eq!(
                show(client, "idle_in_transaction_session_timeout"),
                "1500ms"
            );
            assert_eq!(show(client, "statement_timeout"), "1min");
            client.batch_execute("SET statement_timeout = 50").unwrap();
            let res = client.batch_execute("SELECT pg_sleep(5)").map_err(backend);
            assert!(
                matches!(
                    res,
                    Err(StoreError::TimedOut {
                        what: "a statement to finish",
                        ..
                    })
                ),
                "{res:?}"
            );
            client
                .batch_execute(&session_deadlines(Duration::from_millis(1500)))
                .unwrap();
        }
    }

    /// Another instance holding the write lock (here: a plain connection)
    /// makes a writer give up after `lock_timeout`; once it lets go, the
    /// retry applies the work once.
    #[test]
    fn a_writer_gives_up_on_a_write_lock_held_elsewhere_and_its_retry_applies_once() {
        let wait = Duration::from_millis(300);
        let (db, store) = impatient_store(wait);
        let mut other = Client::connect(&db.url(), NoTls).unwrap();
        other
            .execute("SELECT pg_advisory_lock($1)", &[&WRITE_LOCK])
            .unwrap();
        let start = Instant::now();
        let res = crate::store::write(&store, |tx| once(tx, "w"));
        assert_timed_out(&res, "a database lock", start.elapsed(), wait);
        other
            .execute("SELECT pg_advisory_unlock($1)", &[&WRITE_LOCK])
            .unwrap();
        waits::retry_twice(&store, "w");
        assert_eq!(meta_of(&store, "w").as_deref(), Some("1"));
        assert_eq!(head(&store), 1);
    }

    #[test]
    fn a_writer_behind_a_stuck_writer_gives_up_at_its_deadline_and_applies_nothing() {
        let wait = Duration::from_millis(300);
        let (_db, store) = impatient_store(wait);
        waits::a_writer_behind_a_stuck_writer_gives_up_and_applies_nothing(&store, wait);
        // The stuck writer sat idle in its transaction past the deadline:
        // its session was ended, its lock released and its work undone.
        assert_eq!(meta_of(&store, "stuck"), None);
    }

    /// A writer whose work joined a group waits for the group's COMMIT,
    /// which the writer after it runs. When that writer stalls, the first
    /// gives up at its deadline; the stalled transaction is ended by the
    /// database, and a retry applies the work exactly once.
    #[test]
    fn a_group_member_gives_up_when_the_writer_after_it_stalls_and_its_retry_applies_once() {
        let wait = Duration::from_secs(1);
        let (_db, store) = impatient_store(wait);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (inside, entered) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let stalling = std::thread::scope(|s| {
            let member = s.spawn(|| {
                let start = Instant::now();
                let res = crate::store::write(&store, |tx| {
                    once(tx, "member")?;
                    started_tx.send(()).unwrap();
                    // Stay until the stalling writer queues: the group's
                    // transaction is then left open for it.
                    wait_until_queued(&store, 1);
                    Ok(())
                });
                (res, start.elapsed())
            });
            started.recv_timeout(SIGNAL).unwrap();
            let store = &store;
            let stalling = s.spawn(move || {
                crate::store::write(store, |tx| {
                    inside.send(()).unwrap();
                    released.recv_timeout(SIGNAL).unwrap();
                    once(tx, "stalling")
                })
            });
            entered.recv_timeout(SIGNAL).unwrap();
            let (res, waited) = member.join().unwrap();
            assert_timed_out(&res, "its group's COMMIT", waited, wait);
            release.send(()).unwrap();
            stalling.join().unwrap()
        });
        // Whatever became of the group, each key is there exactly when its
        // writer was told so, and a retry leaves one copy.
        assert_eq!(meta_of(&store, "stalling").is_some(), stalling.is_ok());
        crate::store::write(&store, |tx| once(tx, "member")).unwrap();
        crate::store::write(&store, |tx| once(tx, "member")).unwrap();
        assert!(meta_of(&store, "member").is_some());
        let expected = 1 + u64::from(meta_of(&store, "stalling").is_some());
        assert_eq!(head(&store), expected, "each applied exactly once");
    }

    /// Writers that queue while another is inside share its transaction:
    /// one commit for the group, every part numbered on from the last. One
    /// that fails is undone alone (its statements, its writes kept behind,
    /// the numbers it took) and gets its own error; the others commit.
    #[test]
    fn waiting_writers_share_a_transaction_and_a_failed_one_is_undone_alone() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
        let problem = |i: usize| ProblemRow {
            id: 0,
            user_id: UserId(uuid::Uuid::from_u128(1)),
            device_id: DeviceId(uuid::Uuid::from_u128(2)),
            op: "{}".into(),
            code: format!("w{i}"),
            message: "m".into(),
            field: None,
            created_at: "2027-01-01T00:00:00.000Z".into(),
        };
        let write = |i: usize| {
            crate::store::write(&store, |tx| {
                tx.set_meta(&format!("w{i}"), "x")?;
                tx.next_seq()?;
                tx.add_problem(&problem(i))?;
                if i == 2 {
                    return Err(StoreError::Taken(format!("w{i}")));
                }
                Ok(())
            })
        };
        let (inside, entered) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let queued = |n: usize| wait_until_queued(&store, n);
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
            let (store, inside) = (&store, inside);
            let first = s.spawn(move || {
                crate::store::write(store, |tx| {
                    tx.set_meta("w0", "x")?;
                    tx.next_seq()?;
                    inside.send(()).unwrap();
                    released.recv_timeout(SIGNAL).unwrap();
                    Ok(())
                })
            });
            entered.recv_timeout(SIGNAL).unwrap();
            // They queue in this order, so the failing one is in the middle.
            let mut all = vec![first];
            for i in 1..4 {
                all.push(s.spawn(move || write(i)));
                queued(i);
            }
            release.send(()).unwrap();
            all.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert!(matches!(&results[2], Err(StoreError::Taken(w)) if w == "w2"));
        let mut c = Client::connect(&db.url(), NoTls).unwrap();
        let keys: Vec<String> = c
            .query("SELECT key FROM meta WHERE key LIKE 'w%' ORDER BY key", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, ["w0", "w1", "w3"]);
        let codes: Vec<String> = c
            .query("SELECT code FROM problems ORDER BY code", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(codes, ["w1", "w3"]);
        // The number the failed writer took was taken again: none is missing.
        let head: i64 = c
            .query_one("SELECT head FROM change_seq", &[])
            .unwrap()
            .get(0);
        assert_eq!(head, 3);
        // One transaction wrote the values kept behind (one statement).
        let writers: i64 = c
            .query_one(
                "SELECT count(DISTINCT xmin::text) FROM meta WHERE key LIKE 'w%'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(writers, 1);
    }

    /// A writer that panics inside a group's transaction rolls it back:
    /// the writers waiting in the group get an error instead of waiting
    /// forever, and the next writer begins a transaction of its own.
    #[test]
    fn a_panicking_writer_fails_its_group_and_the_next_writer_goes_on() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
        let (inside, entered) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let queued = |n: usize| wait_until_queued(&store, n);
        let (first, panicked, last) = std::thread::scope(|s| {
            let (store, inside) = (&store, inside);
            let first = s.spawn(move || {
                crate::store::write(store, |tx| {
                    tx.set_meta("w0", "x")?;
                    inside.send(()).unwrap();
                    released.recv_timeout(SIGNAL).unwrap();
                    Ok::<(), StoreError>(())
                })
            });
            entered.recv_timeout(SIGNAL).unwrap();
            let panicking = s.spawn(move || {
                crate::store::write(store, |tx| -> Result<(), StoreError> {
                    tx.set_meta("w1", "x")?;
                    panic!("a writer's bug");
                })
            });
            queued(1);
            let last = s.spawn(move || crate::store::write(store, |tx| tx.set_meta("w2", "x")));
            queued(2);
            release.send(()).unwrap();
            (
                first.join().unwrap(),
                panicking.join().is_err(),
                last.join().unwrap(),
            )
        });
        assert!(first.is_err(), "the group the first writer was in failed");
        assert!(panicked);
        assert!(last.is_ok());
        let mut c = Client::connect(&db.url(), NoTls).unwrap();
        let keys: Vec<String> = c
            .query("SELECT key FROM meta WHERE key LIKE 'w%' ORDER BY key", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(keys, ["w2"]);
    }

    /// When the database drops the writer's connection, the write that
    /// finds out fails, and the next one connects again.
    #[test]
    fn the_writer_connects_again_after_its_connection_is_dropped() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
        crate::store::write(&store, |tx| tx.set_meta("k", "1")).unwrap();
        let mut admin = Client::connect(&db.url(), NoTls).unwrap();
        admin
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .unwrap();
        // The request that finds its connection gone fails; the next
        // one connects again (reads alike, on the pool).
        let wrote = (0..2).any(|_| crate::store::write(&store, |tx| tx.set_meta("k", "2")).is_ok());
        assert!(wrote, "a write succeeds within two attempts");
        let read = (0..2).find_map(|_| crate::store::read(&store, |tx| tx.meta("k")).ok());
        assert_eq!(read, Some(Some("2".to_owned())));
    }

    /// A write does not queue for a pooled connection: with every pooled
    /// connection held by reads, it still commits (on the writer's own).
    #[test]
    fn a_write_needs_no_pooled_connection() {
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
        let held = store.checkout().unwrap();
        let (done, wrote) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = crate::store::write(&store, |tx| tx.set_meta("k", "v"));
                let _ = done.send(r);
            });
            let r = wrote.recv_timeout(Duration::from_secs(20));
            drop(held);
            r.expect("the write finished while the pool was held")
                .unwrap();
        });
        let v = crate::store::read(&store, |tx| tx.meta("k")).unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }

    /// Reads a push announces travel in the round trip that begins the
    /// transaction (the first read, here the device), and later reads are
    /// answered from what it brought; a pull's token look-up begins its
    /// read transaction the same way.
    #[test]
    fn announced_reads_travel_with_the_opening() {
        use crate::store::{DeviceRow, RecordScope};
        let db = TempDatabase::new();
        let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
        let at = "2027-01-01T00:00:00.000Z".to_owned();
        let owner = UserRow {
            id: UserId(uuid::Uuid::from_u128(1)),
            username: "olga".into(),
            password_hash: "x".into(),
            role: Role::Rep,
            team_id: None,
            supervisor_id: None,
            active: true,
            created_at: at.clone(),
        };
        let device = DeviceRow {
            id: DeviceId(uuid::Uuid::from_u128(2)),
            user_id: owner.id,
            name: "laptop".into(),
            created_at: at,
            last_seen_at: None,
            revoked_at: None,
            logged_out_at: None,
            acked_through: 3,
            clock_drift_ms: Some(-4),
        };
        let (customer, missing) = (
            RecordId(uuid::Uuid::from_u128(3)),
            RecordId(uuid::Uuid::from_u128(4)),
        );
        let check_in = CheckIn {
            visit_id: RecordId(uuid::Uuid::from_u128(5)),
            user_id: owner.id,
            started_at_ms: 1_000,
            at: LatLon {
                lat: 52.520_008,
                lon: -13.404_954_1,
            },
        };
        crate::store::write(&store, |tx| {
            tx.insert_user(&owner)?;
            tx.upsert_device(&device, b"token")?;
            let seq = tx.next_seq()?;
            tx.put_record(&RecordRow {
                id: customer,
                collection: "customers".into(),
                seq,
                state: "{\"name\":\"it's \\\"quoted\\\"\"}".into(),
                scope: RecordScope {
                    customer_id: Some(customer),
                    ..RecordScope::default()
                },
            })?;
            tx.set_customer_owner(customer, owner.id)?;
            tx.put_check_in(&check_in)
        })
        .unwrap();
        let stored = crate::store::read(&store, |tx| tx.record(customer)).unwrap();

        let mut pooled = store.checkout().unwrap();
        let (client, statements) = pooled.parts().unwrap();
        let mut tx = Tx::new(client, statements, write_opening(), Some(Behind::default()));
        tx.prefetch_records(&[customer, missing]).unwrap();
        tx.prefetch_customer_owners(&[customer, missing]).unwrap();
        tx.prefetch_previous_check_ins(owner.id, &[(2_000, missing), (500, missing)])
            .unwrap();
        assert!(tx.unsent.is_some(), "nothing is sent before the first read");
        assert_eq!(tx.device(device.id).unwrap(), Some(device.clone()));
        assert!(tx.unsent.is_none());
        let known = &tx.behind.as_ref().unwrap().known;
        assert_eq!(known.records.get(&customer), Some(&stored));
        assert_eq!(known.records.get(&missing), Some(&None));
        assert_eq!(known.owners.get(&customer), Some(&Some(owner.id)));
        assert_eq!(known.owners.get(&missing), Some(&None));
        assert_eq!(known.users.get(&owner.id), Some(&Some(owner.clone())));
        let previous = |ms| known.previous.get(&(owner.id, ms, missing)).copied();
        assert_eq!(
            previous(2_000),
            Some(Some(check_in)),
            "floats read back exactly"
        );
        assert_eq!(previous(500), Some(None));
        // A hint after the opening is read at once.
        let later = RecordId(uuid::Uuid::from_u128(6));
        tx.prefetch_records(&[later]).unwrap();
        assert_eq!(
            tx.behind.as_ref().unwrap().known.records.get(&later),
            Some(&None)
        );
        drop(tx);

        let mut tx = Tx::new(client, statements, read_opening(false), None);
        let found = tx.device_with_user(b"token").unwrap();
        assert!(tx.unsent.is_none());
        assert_eq!(found, Some((device.clone(), Some(owner.clone()))));
        assert_eq!(tx.device_with_user(b"other").unwrap(), None);
        tx.end("COMMIT").unwrap();
    }

    /// A refresh runs only while the statistics of `records` are at least
    /// twice off: never taken, or the table has doubled since.
    #[test]
    fn a_refresh_runs_only_when_the_statistics_are_twice_off() {
        let db = TempDatabase::new();
        drop(PostgresStore::open_with_pool(&db.url(), 1).unwrap());
        let config = parse_url(&db.url()).unwrap();
        let (mut writer, mut c) = (connect(&config).unwrap(), connect(&config).unwrap());
        let mut next = 1;
        // Insert `n` records, then wait until the statistics count them all.
        let mut insert = |c: &mut Client, n: i64| {
            writer
                .batch_execute(&format!(
                    "INSERT INTO records (id, collection, seq, state) \
                     SELECT 'r' || g, 'visits', g, '{{}}' FROM generate_series({next}, {}) g",
                    next + n - 1
                ))
                .unwrap();
            next += n;
            writer
                .query_one("SELECT pg_stat_force_next_flush()", &[])
                .unwrap();
            let total = next - 1;
            let counted = (0..400).any(|_| {
                let live: i64 = c
                    .query_one(
                        "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'records'",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                if live < total {
                    std::thread::sleep(Duration::from_millis(25));
                }
                live >= total
            });
            assert!(counted, "the statistics count {total} rows within 10 s");
        };
        assert!(refresh(&mut c).unwrap(), "never analysed");
        insert(&mut c, 10);
        assert!(refresh(&mut c).unwrap(), "10 rows after an empty table");
        insert(&mut c, 3);
        assert!(!refresh(&mut c).unwrap(), "13 rows after 10");
        insert(&mut c, 7);
        assert!(refresh(&mut c).unwrap(), "20 rows after 10");
    }

    /// Enough written records refresh the planner statistics in the
    /// background; fewer do not.
    #[test]
    fn bulk_writes_refresh_planner_statistics() {
        use std::sync::atomic::Ordering;
        let db = TempDatabase::new();
        let mut store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
        store.analyzer = Analyzer::new(3);
        let analyzed = |store: &PostgresStore| -> bool {
            let mut pooled = store.checkout().unwrap();
            let (client, _) = pooled.parts().unwrap();
            client
                .query_one(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'records'",
                    &[],
                )
                .unwrap()
                .get(0)
        };
        let put = |store: &PostgresStore, n: u128| {
            store
                .write(&mut |tx| {
                    let id = RecordId(uuid::Uuid::from_u128(n));
                    let seq = tx.next_seq()?;
                    tx.put_record(&RecordRow {
                        id,
                        collection: "customers".into(),
                        seq,
                        state: "{}".into(),
                        scope: RecordScope::default(),
                    })
                })
                .unwrap();
        };
        put(&store, 1);
        put(&store, 2);
        assert!(!analyzed(&store), "two records are below the threshold");
        put(&store, 3);
        let mut seen = false;
        for _ in 0..200 {
            if analyzed(&store) {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(seen, "the third record starts a run within 5 s");
        // The next run waits for as many records again as were written.
        let idle = (0..200).any(|_| {
            let done = !store.analyzer.running.load(Ordering::Acquire);
            if !done {
                std::thread::sleep(Duration::from_millis(25));
            }
            done
        });
        assert!(idle, "the run ends within 5 s");
        assert_eq!(store.analyzer.next.load(Ordering::Relaxed), 3);
        for n in 4..=5 {
            put(&store, n);
        }
        assert!(
            !store.analyzer.running.load(Ordering::Acquire),
            "two more records start no run"
        );
    }
}

/// Writers whose changes share one transaction, at most this many.
const MAX_GROUP: usize = 4;

const SAVEPOINT_NAME: &str = "fs_writer";
/// Opens each later writer's part of a group's transaction.
const SAVEPOINT: &str = "SAVEPOINT fs_writer";

/// Where a later writer of a group started ([`Tx::mark`]).
struct WriterMark {
    pending: behind::PendingMark,
    head: u64,
    opening_meta: HashMap<String, String>,
}

/// The writer's connection and the transaction a group leaves open.
///
/// A writer whose closure returned while another writer of this instance
/// waits for its turn leaves its transaction here, begun and holding
/// [`WRITE_LOCK`], and waits for the group to end; the next writer
/// resumes it. The writer that finds nobody waiting, or is the
/// [`MAX_GROUP`]th, flushes and commits for the whole group.
#[derive(Default)]
struct Writer {
    conn: Option<Conn>,
    open: Option<Suspended>,
}

/// A begun write transaction between two writers of a group.
struct Suspended {
    behind: Behind,
    head: u64,
    opening_meta: HashMap<String, String>,
    group: Arc<Group>,
}

/// Writers who share one transaction, waiting for it to end.
#[derive(Default)]
struct Group {
    state: Mutex<(usize, Option<GroupEnd>)>,
    ended: Condvar,
}

#[derive(Clone, Debug)]
enum GroupEnd {
    Committed,
    Failed(String),
}

impl Group {
    fn members(&self) -> usize {
        lock(&self.state).0
    }

    fn join(&self) {
        lock(&self.state).0 += 1;
    }

    fn end(&self, end: GroupEnd) {
        lock(&self.state).1 = Some(end);
        self.ended.notify_all();
    }

    /// Wait for the group's end until `deadline` (`after` from the
    /// call's start). A writer that gives up may still be committed with
    /// the group, or not: a retry tells.
    fn wait_until(&self, deadline: Instant, after: Duration) -> Result<(), StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let (st, _) = self
            .ended
            .wait_timeout_while(lock(&self.state), left, |st| st.1.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        match &st.1 {
            Some(GroupEnd::Committed) => Ok(()),
            Some(GroupEnd::Failed(why)) => Err(StoreError::Backend(why.clone().into())),
            None => Err(StoreError::TimedOut {
                what: "its group's COMMIT",
                after: Some(after),
            }),
        }
    }
}

/// Ends a group when dropped (also while unwinding), unless disarmed.
struct GroupEnding<'g> {
    group: &'g Group,
    end: Option<GroupEnd>,
}

impl Drop for GroupEnding<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            self.group.end(end);
        }
    }
}
