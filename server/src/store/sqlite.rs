//! The embedded SQLite store: WAL with `synchronous=FULL` (an acknowledged
//! push survives a power cut), one writer connection with group commit, and
//! a few read connections.
//!
//! Group commit: writers still run one at a time on the writer connection,
//! but each runs inside a `SAVEPOINT` of one shared `BEGIN IMMEDIATE`
//! transaction (a batch). A failing writer rolls back only its savepoint.
//! The writer that finishes while nobody is queued behind it (or that fills
//! the batch) commits once for everyone in it; the others wait for that
//! COMMIT and return only after it succeeded, or all get its error. One
//! fsync thus covers every writer that queued up during the previous one.

use super::turns::{Turn, Turns};
use super::{
    AccountRead, AccountWrite, ChangeRow, CheckIn, ConflictRow, DeviceRow, OpRow, PairFn,
    ProblemRow, ReadFn, ReadTx, RecordRead, RecordRow, RecordScope, RecordWrite, ReportRead,
    ReportWrite, ScopeFilter, Store, StoreError, TeamRow, UserRow, WriteFn, WriteTx,
};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use sync_protocol::geo::LatLon;
use sync_protocol::metrics::RecordFact;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, RecordId, TeamId, UserId};

const READERS: usize = 4;
/// Most writers one COMMIT covers.
const MAX_BATCH: usize = 16;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: every statement the store runs
/// fits, so a push or pull never re-parses SQL (parsing was the largest
/// cost of a push before statements were cached).
const STATEMENT_CACHE: usize = 128;

/// Running statements through the connection's statement cache.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }
}

/// Why opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database could not be opened or configured.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// Migrating failed (including a database newer than this binary).
    #[error(transparent)]
    Migrate(#[from] migrations::MigrationError),
    /// Rebuilding the report facts failed.
    #[error("rebuilding report facts: {0}")]
    Facts(#[from] StoreError),
}

/// The SQLite store. Every wait in it ends within its deadline (see
/// [`super::WAIT_DEADLINE`]).
pub struct SqliteStore {
    /// Writers take `writer` in the order they arrived.
    turns: Turns,
    writer: Mutex<Writer>,
    /// How batches ended, for the writers waiting on them. Apart from
    /// `writer`, so that a waiting writer can give up at its deadline
    /// even while the writer holding the turn is stuck.
    ends: Mutex<Ends>,
    /// Signalled whenever a batch ends (committed or failed).
    batch_ended: Condvar,
    /// How long a call waits, in all, before [`StoreError::TimedOut`].
    wait: Duration,
    /// Writers asking for `writer`: while one is, the writer holding it
    /// leaves the batch open for them instead of committing.
    queued: AtomicUsize,
    readers: Vec<Mutex<Connection>>,
    /// One turn per read connection: a connection is held only with a
    /// turn, so a turn always finds one idle.
    reader_turns: Turns,
    next_reader: AtomicUsize,
}

/// The writer connection and its batch.
struct Writer {
    conn: Connection,
    /// A batch (one `BEGIN IMMEDIATE` transaction) is open.
    open: bool,
    /// Number of the open batch, or of the last one when none is open.
    batch: u64,
    /// Writers whose work is in the open batch.
    members: usize,
    /// COMMITs run (a batch of one included).
    commits: u64,
    /// When the open batch began.
    opened: Instant,
    /// What a COMMIT costs here (a moving average): a batch stays open for
    /// queued writers only while it is younger than this, so the first
    /// writer in it never waits much longer for the others than one COMMIT
    /// of its own would have taken.
    commit_cost: Duration,
}

/// What the writers waiting for a batch's COMMIT read.
#[derive(Default)]
struct Ends {
    /// Every batch numbered up to this one has ended.
    ended: u64,
    /// Writers waiting for the open batch to end (those that gave up at
    /// their deadline are no longer counted).
    waiting: usize,
    /// Batches that failed and waiting members that have not yet read the
    /// error.
    failed: Vec<FailedBatch>,
}

struct FailedBatch {
    batch: u64,
    error: Arc<rusqlite::Error>,
    unread: usize,
}

/// A batch's failure, reported to every writer in it.
#[derive(Debug, thiserror::Error)]
#[error("group commit failed: {0}")]
struct BatchFailed(#[source] Arc<rusqlite::Error>);

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn backend(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
        // The busy handler waited `BUSY_TIMEOUT` for another connection
        // (another process, or a backup) to let go of the database.
        return StoreError::TimedOut {
            what: "the database file's lock",
            after: None,
        };
    }
    StoreError::Backend(Box::new(e))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        backend(e)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing is left half-done while a lock is held across a panic: the
    // writer catches a panicking closure and ends its batch first.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Bytes of the database file each reader maps (SQLite caps it at its
/// compile-time maximum, 2 GiB in this build).
const READER_MMAP: i64 = 1 << 31;

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and apply migrations.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let open_err = |source| OpenError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut writer = Connection::open(path).map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        migrations::apply(&mut writer, migrations::SERVER_SQLITE)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
            c.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
            // Readers map the file instead of copying each page out of the
            // OS cache: a report scanning a million fact rows spends a
            // tenth of its time in read() otherwise.
            c.pragma_update(None, "mmap_size", READER_MMAP)
                .map_err(open_err)?;
            readers.push(Mutex::new(c));
        }
        let store = Self {
            turns: Turns::default(),
            writer: Mutex::new(Writer {
                conn: writer,
                open: false,
                batch: 0,
                members: 0,
                commits: 0,
                opened: Instant::now(),
                commit_cost: Duration::ZERO,
            }),
            ends: Mutex::default(),
            batch_ended: Condvar::new(),
            wait: super::WAIT_DEADLINE,
            queued: AtomicUsize::new(0),
            readers,
            reader_turns: Turns::new(READERS),
            next_reader: AtomicUsize::new(0),
        };
        super::facts::rebuild_if_stale(&store)?;
        Ok(store)
    }

    /// The same store with another [`super::WAIT_DEADLINE`] (tests force
    /// stuck writers and held locks with a short one); the connections'
    /// busy timeout becomes no longer than it.
    pub fn with_wait_deadline(mut self, wait: Duration) -> Result<Self, StoreError> {
        self.wait = wait;
        let busy = wait.min(BUSY_TIMEOUT);
        lock(&self.writer).conn.busy_timeout(busy)?;
        for r in &self.readers {
            lock(r).busy_timeout(busy)?;
        }
        Ok(self)
    }

    /// An idle read connection, waiting in line for one until the
    /// deadline.
    fn reader(&self) -> Result<Reader<'_>, StoreError> {
        let turn = self
            .reader_turns
            .wait_until(Instant::now() + self.wait)
            .ok_or(StoreError::TimedOut {
                what: "a read connection",
                after: Some(self.wait),
            })?;
        Ok(self.idle_reader(turn))
    }

    /// The idle connection that a reader turn vouches for: a connection is
    /// only ever held with a turn, so one of them is free.
    fn idle_reader<'a>(&'a self, turn: Turn<'a>) -> Reader<'a> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return Reader { conn, _turn: turn };
            }
        }
        // Unreachable while the invariant above holds; a plain lock is
        // still correct if it ever did not.
        let conn = lock(&self.readers[start % self.readers.len()]);
        Reader { conn, _turn: turn }
    }
}

fn configure(c: &Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    // Every writer runs inside a savepoint of its group-commit batch, so
    // SQLite copies each page it first changes there into a sub-journal;
    // kept in memory, that is a copy instead of a write() to a temp file.
    c.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// A read connection and the turn that holds it (dropped in this order).
struct Reader<'a> {
    conn: MutexGuard<'a, Connection>,
    _turn: Turn<'a>,
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// How a writer's closure ended inside its savepoint.
enum Ran {
    /// Released into the batch.
    Joined,
    /// Rolled back to its savepoint; the batch goes on without it.
    Failed(StoreError),
    /// Rolled back to its savepoint, then re-raised once the batch is safe.
    Panicked(Box<dyn std::any::Any + Send>),
}

impl SqliteStore {
    /// Run `f` on the writer connection inside a savepoint of the open batch
    /// and return once the COMMIT holding its work succeeded (see the module
    /// documentation). `Err` means nothing of `f`'s was applied.
    fn write_conn(
        &self,
        f: &mut dyn FnMut(&Connection) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.wait;
        self.queued.fetch_add(1, Ordering::SeqCst);
        let turn = self.turns.wait_until(deadline);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let Some(turn) = turn else {
            return Err(StoreError::TimedOut {
                what: "its turn on the writer",
                after: Some(self.wait),
            });
        };
        let mut w = lock(&self.writer);
        if !w.open {
            if !w.conn.is_autocommit() {
                // Left over from a batch whose ROLLBACK failed.
                let _ = w.conn.exec("ROLLBACK", []);
            }
            w.conn.exec("BEGIN IMMEDIATE", [])?;
            w.opened = Instant::now();
            w.open = true;
            w.batch += 1;
            w.members = 0;
        }
        let batch = w.batch;
        let (ran, undone) = run_in_savepoint(&w.conn, f);
        if !undone || w.conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk), or a failed writer's work could not be undone alone:
            // the batch is abandoned whole, earlier members' work with it.
            if !w.conn.is_autocommit() {
                let _ = w.conn.exec("ROLLBACK", []);
            }
            let error = Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the group transaction was rolled back".into()),
            ));
            self.end_batch(&mut w, Some(error.clone()));
            drop(w);
            return match ran {
                Ran::Panicked(p) => std::panic::resume_unwind(p),
                Ran::Failed(e) => Err(e),
                Ran::Joined => Err(StoreError::Backend(Box::new(BatchFailed(error)))),
            };
        }
        let joined = matches!(ran, Ran::Joined);
        if joined {
            w.members += 1;
        }
        let last = self.queued.load(Ordering::SeqCst) == 0
            || w.members >= MAX_BATCH
            || w.opened.elapsed() >= w.commit_cost;
        if last || matches!(ran, Ran::Panicked(_)) {
            let outcome = self.commit_batch(&mut w);
            drop(w);
            return match ran {
                Ran::Panicked(p) => std::panic::resume_unwind(p),
                Ran::Failed(e) => Err(e),
                Ran::Joined => outcome.map_err(|e| StoreError::Backend(Box::new(BatchFailed(e)))),
            };
        }
        if let Ran::Failed(e) = ran {
            return Err(e);
        }
        // The next writer may go while this one waits for the COMMIT.
        let mut ends = lock(&self.ends);
        ends.waiting += 1;
        drop(w);
        drop(turn);
        let (mut ends, _) = self
            .batch_ended
            .wait_timeout_while(
                ends,
                deadline.saturating_duration_since(Instant::now()),
                |e| e.ended < batch,
            )
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ends.ended < batch {
            // The writer holding the turn is stuck. This writer's work may
            // still be committed with the batch, or not: a retry tells.
            ends.waiting -= 1;
            return Err(StoreError::TimedOut {
                what: "its group's COMMIT",
                after: Some(self.wait),
            });
        }
        let Some(i) = ends.failed.iter().position(|b| b.batch == batch) else {
            return Ok(());
        };
        let error = ends.failed[i].error.clone();
        ends.failed[i].unread -= 1;
        if ends.failed[i].unread == 0 {
            ends.failed.swap_remove(i);
        }
        Err(StoreError::Backend(Box::new(BatchFailed(error))))
    }

    /// COMMIT the open batch (ROLLBACK when it holds nobody's work) and end
    /// it.
    fn commit_batch(&self, w: &mut Writer) -> Result<(), Arc<rusqlite::Error>> {
        let res = if w.members == 0 {
            w.conn.exec("ROLLBACK", [])
        } else {
            w.commits += 1;
            let start = Instant::now();
            let res = w.conn.exec("COMMIT", []);
            w.commit_cost = (w.commit_cost * 7 + start.elapsed()) / 8;
            res
        };
        match res {
            Ok(_) => {
                self.end_batch(w, None);
                Ok(())
            }
            Err(e) => {
                if !w.conn.is_autocommit() {
                    // A failed COMMIT can leave the transaction open; the
                    // batch is abandoned whole. If even this fails, the next
                    // `BEGIN IMMEDIATE` fails and reports it.
                    let _ = w.conn.exec("ROLLBACK", []);
                }
                let e = Arc::new(e);
                self.end_batch(w, Some(e.clone()));
                Err(e)
            }
        }
    }

    /// Mark the open batch ended, keep its error for the members waiting
    /// on it to read, and wake them.
    fn end_batch(&self, w: &mut Writer, failure: Option<Arc<rusqlite::Error>>) {
        let mut ends = lock(&self.ends);
        let waiting = std::mem::take(&mut ends.waiting);
        if let Some(error) = failure
            && waiting > 0
        {
            ends.failed.push(FailedBatch {
                batch: w.batch,
                error,
                unread: waiting,
            });
        }
        ends.ended = w.batch;
        drop(ends);
        w.open = false;
        w.members = 0;
        self.batch_ended.notify_all();
    }
}

/// Run `f` between `SAVEPOINT` and `RELEASE`, rolling back to the savepoint
/// when it fails or panics. The flag is false when that rollback failed, so
/// `f`'s work may still be in the transaction.
fn run_in_savepoint(
    c: &Connection,
    f: &mut dyn FnMut(&Connection) -> Result<(), StoreError>,
) -> (Ran, bool) {
    if let Err(e) = c.exec("SAVEPOINT w", []) {
        return (Ran::Failed(e.into()), true);
    }
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)));
    let undo = || -> rusqlite::Result<()> {
        c.exec("ROLLBACK TO w", [])?;
        c.exec("RELEASE w", [])?;
        Ok(())
    };
    match res {
        Ok(Ok(())) => match c.exec("RELEASE w", []) {
            Ok(_) => (Ran::Joined, true),
            Err(e) => (Ran::Failed(e.into()), undo().is_ok()),
        },
        Ok(Err(e)) => (Ran::Failed(e), undo().is_ok()),
        Err(p) => {
            let undone = undo().is_ok();
            (Ran::Panicked(p), undone)
        }
    }
}

impl Store for SqliteStore {
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), StoreError> {
        let mut conn = self.reader()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut t = Tx { c: &tx };
        f(&mut t)?;
        tx.finish()?;
        Ok(())
    }

    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), StoreError> {
        self.write_conn(&mut |c| f(&mut Tx { c }))
    }

    /// Two idle reader connections begin a transaction each; both read the
    /// change head (which every commit that stores a record moves). Equal
    /// heads mean the same snapshot as far as records and their report
    /// facts go; otherwise a write landed in between and the pair is
    /// declined, as it is when fewer than two readers are idle.
    fn read_pair(&self, a: &mut ReadFn<'_>, b: &mut PairFn<'_>) -> Result<bool, StoreError> {
        let (Some(a_turn), Some(b_turn)) =
            (self.reader_turns.try_take(), self.reader_turns.try_take())
        else {
            return Ok(false);
        };
        let mut first = self.idle_reader(a_turn);
        let mut second = self.idle_reader(b_turn);
        let second: &mut Connection = &mut second;
        let tx = first.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut t = Tx { c: &tx };
        let head = t.head_seq()?;
        let (to_second, from_first) = std::sync::mpsc::channel::<bool>();
        let (to_first, from_second) = std::sync::mpsc::channel::<Result<u64, StoreError>>();
        let (ran, res_a, res_b) = std::thread::scope(|s| {
            let other = s.spawn(move || -> Result<(), StoreError> {
                let tx = match second.transaction_with_behavior(TransactionBehavior::Deferred) {
                    Ok(tx) => tx,
                    Err(e) => {
                        let _ = to_first.send(Err(e.into()));
                        return Ok(());
                    }
                };
                let mut t = Tx { c: &tx };
                let _ = to_first.send(t.head_seq());
                if from_first.recv() == Ok(true) {
                    b(&mut t)?;
                }
                tx.finish()?;
                Ok(())
            });
            let same = matches!(from_second.recv(), Ok(Ok(h)) if h == head);
            let _ = to_second.send(same);
            let res_a = if same { a(&mut t) } else { Ok(()) };
            let res_b = other
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (same, res_a, res_b)
        });
        res_a?;
        res_b?;
        tx.finish()?;
        Ok(ran)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let c = self.reader()?;
        c.query_row("SELECT head FROM change_seq WHERE id = 1", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(())
    }
}

struct Tx<'a> {
    c: &'a Connection,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad {what}: {s:?}")))
}

fn parse_opt<T: std::str::FromStr>(s: Option<String>, what: &str) -> Result<Option<T>, StoreError> {
    s.map(|s| parse(&s, what)).transpose()
}

const USER_COLS: &str =
    "id, username, password_hash, role, team_id, supervisor_id, active, created_at";

type RawUser = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    String,
);

fn raw_user(r: &Row<'_>) -> rusqlite::Result<RawUser> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn user_row(raw: RawUser) -> Result<UserRow, StoreError> {
    let (id, username, password_hash, role, team_id, supervisor_id, active, created_at) = raw;
    Ok(UserRow {
        id: parse(&id, "user id")?,
        username,
        password_hash,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        team_id: parse_opt(team_id, "team id")?,
        supervisor_id: parse_opt(supervisor_id, "user id")?,
        active,
        created_at,
    })
}

const DEVICE_COLS: &str = "id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked_through, clock_drift_ms";

type RawDevice = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

fn raw_device(r: &Row<'_>) -> rusqlite::Result<RawDevice> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn device_row(raw: RawDevice) -> Result<DeviceRow, StoreError> {
    let (id, user_id, name, created_at, last_seen_at, revoked_at, logged_out_at, acked, drift) =
        raw;
    Ok(DeviceRow {
        id: parse(&id, "device id")?,
        user_id: parse(&user_id, "user id")?,
        name,
        created_at,
        last_seen_at,
        revoked_at,
        logged_out_at,
        acked_through: acked as u64,
        clock_drift_ms: drift,
    })
}

fn team_row(raw: (String, String, Option<String>, String)) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: parse(&raw.0, "team id")?,
        name: raw.1,
        region: raw.2,
        created_at: raw.3,
    })
}

/// The SQL condition for a scope over `records r` joined to `customer_owners o`,
/// and its parameters.
fn scope_sql(scope: &ScopeFilter) -> (String, Vec<String>) {
    if scope.all {
        return ("1".into(), vec![]);
    }
    let mut params: Vec<String> = Vec::new();
    let users = placeholders(scope.users.len());
    let teams = placeholders(scope.teams.len());
    let mut sql = String::from("(r.public = 1");
    if !scope.users.is_empty() {
        let _ = write!(
            sql,
            " OR r.subject_user IN ({users}) OR o.owner_id IN ({users})"
        );
        params.extend(scope.users.iter().map(ToString::to_string));
        params.extend(scope.users.iter().map(ToString::to_string));
    }
    if !scope.teams.is_empty() {
        let _ = write!(sql, " OR r.subject_team IN ({teams})");
        params.extend(scope.teams.iter().map(ToString::to_string));
    }
    sql.push(')');
    (sql, params)
}

/// The pull query: one index seek per scope branch (public records, records
/// about a scope user or team, records of customers a scope user owns), each
/// bounded by the seq range `?1 < seq <= ?2`, merged in seq order and cut at
/// `?3` before the states are read. Users are bound from `?4`, then teams.
fn changes_sql(scope: &ScopeFilter) -> String {
    if scope.all {
        return "SELECT r.seq, r.state FROM records r WHERE r.seq > ?1 AND r.seq <= ?2 \
                ORDER BY r.seq LIMIT ?3"
            .into();
    }
    let numbered = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let users = numbered(4, scope.users.len());
    let teams = numbered(4 + scope.users.len(), scope.teams.len());
    let mut branches =
        vec!["SELECT seq FROM records WHERE public = 1 AND seq > ?1 AND seq <= ?2".to_owned()];
    if !scope.users.is_empty() {
        branches.push(format!(
            "SELECT seq FROM records WHERE subject_user IN ({users}) AND seq > ?1 AND seq <= ?2"
        ));
        branches.push(format!(
            "SELECT r.seq FROM customer_owners o JOIN records r ON r.customer_id = o.customer_id \
             WHERE o.owner_id IN ({users}) AND r.seq > ?1 AND r.seq <= ?2"
        ));
    }
    if !scope.teams.is_empty() {
        branches.push(format!(
            "SELECT seq FROM records WHERE subject_team IN ({teams}) AND seq > ?1 AND seq <= ?2"
        ));
    }
    // `seq IN (…)` walks the sorted list of numbers and looks each record
    // up: no sort of whole records (a join to the list sorted them again,
    // spilling a page's JSON to temporary files).
    format!(
        "SELECT r.seq, r.state FROM records r WHERE r.seq IN ({} ORDER BY 1 LIMIT ?3) ORDER BY r.seq",
        branches
            .iter()
            .map(|b| format!("SELECT seq FROM ({b} ORDER BY 1 LIMIT ?3)"))
            .collect::<Vec<_>>()
            .join(" UNION ")
    )
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl ReadTx for Tx<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .c
            .row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    fn head_seq(&mut self) -> Result<u64, StoreError> {
        let h: i64 = self
            .c
            .row("SELECT head FROM change_seq WHERE id = 1", [], |r| r.get(0))?;
        Ok(h as u64)
    }
}

impl AccountRead for Tx<'_> {
    fn user_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.c.row("SELECT count(*) FROM users", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let raw = self
            .c
            .row(
                &format!("SELECT {USER_COLS} FROM users WHERE username = ?1"),
                [username],
                raw_user,
            )
            .optional()?;
        raw.map(user_row).transpose()
    }

    fn user(&mut self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        let raw = self
            .c
            .row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                [id.to_string()],
                raw_user,
            )
            .optional()?;
        raw.map(user_row).transpose()
    }

    fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        let mut st = self
            .c
            .prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
        let raws = st.query_map([], raw_user)?.collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(user_row).collect()
    }

    fn team_members(
        &mut self,
        team: Option<TeamId>,
        supervisor: Option<UserId>,
    ) -> Result<Vec<UserId>, StoreError> {
        let mut st = self.c.prepare_cached("SELECT id FROM users WHERE (?1 IS NOT NULL AND team_id = ?1) OR (?2 IS NOT NULL AND supervisor_id = ?2) ORDER BY id")?;
        let ids = st
            .query_map(
                params![
                    team.map(|t| t.to_string()),
                    supervisor.map(|s| s.to_string())
                ],
                |r| r.get::<_, String>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "user id")).collect()
    }

    fn team_by_name(&mut self, name: &str) -> Result<Option<TeamRow>, StoreError> {
        let raw = self
            .c
            .row(
                "SELECT id, name, region, created_at FROM teams WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        raw.map(team_row).transpose()
    }

    fn team(&mut self, id: TeamId) -> Result<Option<TeamRow>, StoreError> {
        let raw = self
            .c
            .row(
                "SELECT id, name, region, created_at FROM teams WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        raw.map(team_row).transpose()
    }

    fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError> {
        let mut st = self
            .c
            .prepare_cached("SELECT id, name, region, created_at FROM teams ORDER BY name")?;
        let raws = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(team_row).collect()
    }

    fn device(&mut self, id: DeviceId) -> Result<Option<DeviceRow>, StoreError> {
        let raw = self
            .c
            .row(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
                [id.to_string()],
                raw_device,
            )
            .optional()?;
        raw.map(device_row).transpose()
    }

    fn device_by_token(&mut self, token_hash: &[u8]) -> Result<Option<DeviceRow>, StoreError> {
        let raw = self
            .c
            .row(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?1"),
                [token_hash],
                raw_device,
            )
            .optional()?;
        raw.map(device_row).transpose()
    }

    fn devices(&mut self, user: Option<UserId>) -> Result<Vec<DeviceRow>, StoreError> {
        let mut st = self.c.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created_at, id"))?;
        let raws = st
            .query_map([user.map(|u| u.to_string())], raw_device)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(device_row).collect()
    }

    fn active_device_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = self.c.row("SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id WHERE d.revoked_at IS NULL AND u.active = 1", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn login_failures(
        &mut self,
        username: &str,
        key: &str,
        since_ms: i64,
    ) -> Result<(Vec<(String, i64)>, u64), StoreError> {
        let by_user = self
            .c
            .prepare_cached(
                "SELECT address, at_ms FROM login_failures WHERE username = ?1 AND at_ms >= ?2 ORDER BY at_ms",
            )?
            .query_map(params![username, since_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let by_key: i64 = self.c.row(
            "SELECT count(*) FROM login_failures WHERE address = ?1 AND at_ms >= ?2",
            params![key, since_ms],
            |r| r.get(0),
        )?;
        Ok((by_user, by_key as u64))
    }

    fn dashboard_session(&mut self, id_hash: &[u8]) -> Result<Option<(UserId, i64)>, StoreError> {
        let row: Option<(String, i64)> = self
            .c
            .row(
                "SELECT user_id, expires_at_ms FROM dashboard_sessions WHERE id_hash = ?1",
                [id_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(u, exp)| Ok((parse(&u, "user id")?, exp)))
            .transpose()
    }
}

impl RecordRead for Tx<'_> {
    fn record(&mut self, id: RecordId) -> Result<Option<RecordRow>, StoreError> {
        type Raw = (
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        );
        let raw: Option<Raw> = self
            .c
            .row("SELECT collection, seq, state, customer_id, subject_user, subject_team, public FROM records WHERE id = ?1", [id.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .optional()?;
        let Some((collection, seq, state, customer_id, subject_user, subject_team, public)) = raw
        else {
            return Ok(None);
        };
        Ok(Some(RecordRow {
            id,
            collection,
            seq: seq as u64,
            state,
            scope: RecordScope {
                customer_id: parse_opt(customer_id, "customer id")?,
                subject_user: parse_opt(subject_user, "user id")?,
                subject_team: parse_opt(subject_team, "team id")?,
                public,
            },
        }))
    }

    fn customer_owner(&mut self, customer: RecordId) -> Result<Option<UserId>, StoreError> {
        let s: Option<String> = self
            .c
            .row(
                "SELECT owner_id FROM customer_owners WHERE customer_id = ?1",
                [customer.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        parse_opt(s, "user id")
    }

    fn customer_unit(&mut self, customer: RecordId) -> Result<Vec<RecordId>, StoreError> {
        let mut st = self
            .c
            .prepare_cached("SELECT id FROM records WHERE customer_id = ?1 ORDER BY seq")?;
        let ids = st
            .query_map([customer.to_string()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter().map(|s| parse(s, "record id")).collect()
    }

    fn changes(
        &mut self,
        scope: &ScopeFilter,
        cursor: u64,
        head: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let mut out = Vec::new();
        {
            let sql = changes_sql(scope);
            let mut args: Vec<rusqlite::types::Value> = vec![
                (cursor as i64).into(),
                (head as i64).into(),
                i64::from(limit).into(),
            ];
            if !scope.all {
                args.extend(
                    scope
                        .users
                        .iter()
                        .map(|u| rusqlite::types::Value::from(u.to_string())),
                );
                args.extend(
                    scope
                        .teams
                        .iter()
                        .map(|t| rusqlite::types::Value::from(t.to_string())),
                );
            }
            let mut st = self.c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (seq, state) = row?;
                out.push(ChangeRow::Upsert {
                    seq: seq as u64,
                    state,
                });
            }
        }
        if !scope.all && !scope.users.is_empty() {
            let users = placeholders(scope.users.len());
            let sql = format!(
                "SELECT e.seq, e.customer_id FROM evictions e LEFT JOIN customer_owners o ON o.customer_id = e.customer_id \
                 WHERE e.seq > ? AND e.seq <= ? AND e.from_owner IN ({users}) AND (o.owner_id IS NULL OR o.owner_id NOT IN ({users})) \
                 ORDER BY e.seq LIMIT ?"
            );
            let mut args: Vec<rusqlite::types::Value> =
                vec![(cursor as i64).into(), (head as i64).into()];
            args.extend(
                scope
                    .users
                    .iter()
                    .map(|u| rusqlite::types::Value::from(u.to_string())),
            );
            args.extend(
                scope
                    .users
                    .iter()
                    .map(|u| rusqlite::types::Value::from(u.to_string())),
            );
            args.push(i64::from(limit).into());
            let mut st = self.c.prepare_cached(&sql)?;
            let rows = st.query_map(params_from_iter(args), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (seq, customer) = row?;
                out.push(ChangeRow::Evict {
                    seq: seq as u64,
                    customer_id: parse(&customer, "customer id")?,
                });
            }
            out.sort_by_key(ChangeRow::seq);
            out.truncate(limit as usize);
        }
        Ok(out)
    }

    fn op(&mut self, device: DeviceId, device_seq: u64) -> Result<Option<OpRow>, StoreError> {
        type Raw = (String, String, String, String, String);
        let raw: Option<Raw> = self
            .c
            .row("SELECT op_id, user_id, op, outcome, at FROM ops WHERE device_id = ?1 AND device_seq = ?2", params![device.to_string(), device_seq as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        let Some((op_id, user_id, op, outcome, at)) = raw else {
            return Ok(None);
        };
        Ok(Some(OpRow {
            device_id: device,
            device_seq,
            op_id: parse(&op_id, "op id")?,
            user_id: parse(&user_id, "user id")?,
            op,
            outcome,
            at,
        }))
    }

    fn problems(&mut self, users: Option<&[UserId]>) -> Result<Vec<ProblemRow>, StoreError> {
        type Raw = (
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<String>,
            String,
        );
        let mut sql = String::from(
            "SELECT id, user_id, device_id, op, code, message, field, created_at FROM problems",
        );
        let mut args: Vec<String> = Vec::new();
        if let Some(users) = users {
            if users.is_empty() {
                return Ok(vec![]);
            }
            let _ = write!(sql, " WHERE user_id IN ({})", placeholders(users.len()));
            args.extend(users.iter().map(ToString::to_string));
        }
        sql.push_str(" ORDER BY id DESC");
        let mut st = self.c.prepare_cached(&sql)?;
        let raws: Vec<Raw> = st
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        raws.into_iter()
            .map(|(id, u, d, op, code, message, field, created_at)| {
                Ok(ProblemRow {
                    id,
                    user_id: parse(&u, "user id")?,
                    device_id: parse(&d, "device id")?,
                    op,
                    code,
                    message,
                    field,
                    created_at,
                })
            })
            .collect()
    }

    fn conflicts(&mut self, record: RecordId) -> Result<Vec<ConflictRow>, StoreError> {
        type Raw = (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        );
        let mut st = self.c.prepare_cached(
            "SELECT collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at FROM conflicts WHERE record_id = ?1 ORDER BY id",
        )?;
        let raws: Vec<Raw> = st
            .query_map([record.to_string()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        raws.into_iter()
            .map(
                |(
                    collection,
                    op_id,
                    user_id,
                    field,
                    losing_value,
                    winning_value,
                    losing_hlc,
                    winning_hlc,
                    created_at,
                )| {
                    Ok(ConflictRow {
                        record_id: record,
                        collection,
                        op_id: parse(&op_id, "op id")?,
                        user_id: parse(&user_id, "user id")?,
                        field,
                        losing_value,
                        winning_value,
                        losing_hlc,
                        winning_hlc,
                        created_at,
                    })
                },
            )
            .collect()
    }

    fn previous_check_in(
        &mut self,
        user: UserId,
        before_ms: i64,
        exclude: RecordId,
    ) -> Result<Option<CheckIn>, StoreError> {
        let raw: Option<(String, i64, f64, f64)> = self
            .c
            .row(
                "SELECT visit_id, started_at_ms, lat, lon FROM check_ins WHERE user_id = ?1 AND started_at_ms < ?2 AND visit_id <> ?3 ORDER BY started_at_ms DESC LIMIT 1",
                params![user.to_string(), before_ms, exclude.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        raw.map(|(v, t, lat, lon)| {
            Ok(CheckIn {
                visit_id: parse(&v, "visit id")?,
                user_id: user,
                started_at_ms: t,
                at: LatLon { lat, lon },
            })
        })
        .transpose()
    }
}

impl ReportRead for Tx<'_> {
    fn scope_records(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        let (cond, sp) = scope_sql(scope);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {cond}"
        );
        let mut st = self.c.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(sp))?;
        while let Some(r) = rows.next()? {
            let c: String = r.get(0)?;
            let s: String = r.get(1)?;
            f(&c, &s);
        }
        Ok(())
    }

    fn scope_records_of(
        &mut self,
        scope: &ScopeFilter,
        collections: &[&str],
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        let (cond, sp) = scope_sql(scope);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE r.collection IN ({}) AND {cond}",
            placeholders(collections.len())
        );
        let mut st = self.c.prepare_cached(&sql)?;
        let all: Vec<String> = collections
            .iter()
            .map(|c| (*c).to_owned())
            .chain(sp)
            .collect();
        let mut rows = st.query(params_from_iter(all))?;
        while let Some(r) = rows.next()? {
            let c: String = r.get(0)?;
            let s: String = r.get(1)?;
            f(&c, &s);
        }
        Ok(())
    }

    fn report_customers(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        let sql = if scope.all {
            "SELECT customer_id, owner_id, created_us FROM report_customers".to_owned()
        } else {
            format!(
                "SELECT c.customer_id, c.owner_id, c.created_us FROM report_customers c JOIN records r ON r.id = c.customer_id \
                 LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
                scope_sql(scope).0
            )
        };
        let mut st = self.c.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(scope_sql(scope).1))?;
        while let Some(r) = rows.next()? {
            let id =
                super::facts::record_id(r.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?)?;
            let owner: Option<&str> = r
                .get_ref(1)?
                .as_str_or_null()
                .map_err(rusqlite::Error::from)?;
            f(id, super::facts::customer_fact(owner, r.get(2)?)?);
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
        fn id(r: &rusqlite::Row<'_>, i: usize) -> Result<RecordId, StoreError> {
            record_id_bytes(r.get_ref(i)?.as_blob().map_err(rusqlite::Error::from)?)
        }
        fn opt_id(r: &rusqlite::Row<'_>, i: usize) -> Result<Option<RecordId>, StoreError> {
            match r
                .get_ref(i)?
                .as_blob_or_null()
                .map_err(rusqlite::Error::from)?
            {
                Some(b) => record_id_bytes(b).map(Some),
                None => Ok(None),
            }
        }
        for (sql, a, b, visits) in part.queries(from_us, to_us) {
            let mut st = self.c.prepare_cached(&sql.replace('$', "?"))?;
            let mut rows = st.query(params![a, b])?;
            while let Some(r) = rows.next()? {
                let record = id(r, 0)?;
                let cols = if visits {
                    FactColumns::<&str> {
                        amends: opt_id(r, 3)?,
                        ..FactColumns::new("visit", r.get(1)?, id(r, 2)?)
                    }
                } else {
                    FactColumns {
                        minor: r.get(4)?,
                        minor_digits: r.get(5)?,
                        voided: r.get(6)?,
                        feedback_kind: r
                            .get_ref(7)?
                            .as_str_or_null()
                            .map_err(rusqlite::Error::from)?,
                        csat: r.get(8)?,
                        nps: r.get(9)?,
                        resolved_us: r.get(10)?,
                        ..FactColumns::new(
                            kind(r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?)?,
                            r.get(2)?,
                            id(r, 3)?,
                        )
                    }
                };
                f(record, cols.to_fact(record)?);
            }
        }
        Ok(())
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl WriteTx for Tx<'_> {
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.c.exec("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])?;
        Ok(())
    }

    fn next_seq(&mut self) -> Result<u64, StoreError> {
        // Two statements, not `UPDATE … RETURNING`: SQLite runs a RETURNING
        // statement in a statement transaction, and closing one inside the
        // writer's savepoint truncates the in-memory sub-journal by walking
        // it from its start, 1 KiB chunk by chunk. In 4 MiB pushes of visits
        // spread over weeks, that walk was 40 % of the server's CPU.
        self.c
            .exec("UPDATE change_seq SET head = head + 1 WHERE id = 1", [])?;
        let h: i64 = self
            .c
            .row("SELECT head FROM change_seq WHERE id = 1", [], |r| r.get(0))?;
        Ok(h as u64)
    }
}

impl AccountWrite for Tx<'_> {
    fn insert_user(&mut self, u: &UserRow) -> Result<(), StoreError> {
        let res = self.c.exec(
            &format!("INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                u.id.to_string(),
                u.username,
                u.password_hash,
                u.role.as_str(),
                u.team_id.map(|t| t.to_string()),
                u.supervisor_id.map(|s| s.to_string()),
                u.active,
                u.created_at
            ],
        );
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Taken(format!("username {:?}", u.username)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn set_user_active(&mut self, id: UserId, active: bool) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE users SET active = ?2 WHERE id = ?1",
            params![id.to_string(), active],
        )?;
        Ok(())
    }

    fn set_password(&mut self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![id.to_string(), password_hash],
        )?;
        Ok(())
    }

    fn insert_team(&mut self, t: &TeamRow) -> Result<(), StoreError> {
        let res = self.c.exec(
            "INSERT INTO teams (id, name, region, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![t.id.to_string(), t.name, t.region, t.created_at],
        );
        match res {
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Taken(format!("team name {:?}", t.name)))
            }
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    fn upsert_device(&mut self, d: &DeviceRow, token_hash: &[u8]) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO devices (id, user_id, name, token_hash, created_at, last_seen_at, revoked_at, acked_through, clock_drift_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, token_hash = excluded.token_hash, last_seen_at = excluded.last_seen_at, logged_out_at = NULL",
            params![d.id.to_string(), d.user_id.to_string(), d.name, token_hash, d.created_at, d.last_seen_at, d.acked_through as i64, d.clock_drift_ms],
        )?;
        Ok(())
    }

    fn revoke_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn log_out_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET logged_out_at = ?2 WHERE id = ?1 AND logged_out_at IS NULL",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn touch_device(&mut self, id: DeviceId, at: &str) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET last_seen_at = ?2 WHERE id = ?1",
            params![id.to_string(), at],
        )?;
        Ok(())
    }

    fn set_acked_through(&mut self, id: DeviceId, seq: u64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET acked_through = ?2 WHERE id = ?1",
            params![id.to_string(), seq as i64],
        )?;
        Ok(())
    }

    fn set_clock_drift(&mut self, id: DeviceId, drift_ms: i64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE devices SET clock_drift_ms = ?2 WHERE id = ?1",
            params![id.to_string(), drift_ms],
        )?;
        Ok(())
    }

    fn add_login_failure(
        &mut self,
        username: &str,
        key: &str,
        at_ms: i64,
        prune_before_ms: i64,
    ) -> Result<i64, StoreError> {
        self.c.exec(
            "DELETE FROM login_failures WHERE at_ms < ?1",
            [prune_before_ms],
        )?;
        Ok(self.c.row(
            "INSERT INTO login_failures (username, address, at_ms) VALUES (?1, ?2, ?3) RETURNING id",
            params![username, key, at_ms],
            |r| r.get(0),
        )?)
    }

    fn forget_login_failure(&mut self, id: i64) -> Result<(), StoreError> {
        self.c
            .exec("DELETE FROM login_failures WHERE id = ?1", [id])?;
        Ok(())
    }

    fn start_dashboard_session(
        &mut self,
        id_hash: &[u8],
        user: UserId,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE expires_at_ms <= ?1",
            [now_ms],
        )?;
        self.c.exec(
            "INSERT INTO dashboard_sessions (id_hash, user_id, expires_at_ms) VALUES (?1, ?2, ?3)",
            params![id_hash, user.to_string(), expires_at_ms],
        )?;
        Ok(())
    }

    fn end_dashboard_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE id_hash = ?1",
            [id_hash],
        )?;
        Ok(())
    }

    fn end_user_dashboard_sessions(&mut self, user: UserId) -> Result<(), StoreError> {
        self.c.exec(
            "DELETE FROM dashboard_sessions WHERE user_id = ?1",
            [user.to_string()],
        )?;
        Ok(())
    }
}

impl RecordWrite for Tx<'_> {
    fn put_record(&mut self, r: &RecordRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO records (id, collection, seq, state, customer_id, subject_user, subject_team, public) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (id) DO UPDATE SET collection = excluded.collection, seq = excluded.seq, state = excluded.state, customer_id = excluded.customer_id, \
             subject_user = excluded.subject_user, subject_team = excluded.subject_team, public = excluded.public",
            params![
                r.id.to_string(),
                r.collection,
                r.seq as i64,
                r.state,
                r.scope.customer_id.map(|c| c.to_string()),
                r.scope.subject_user.map(|u| u.to_string()),
                r.scope.subject_team.map(|t| t.to_string()),
                r.scope.public
            ],
        )?;
        super::facts::on_put(self, r)
    }

    fn set_record_seq(&mut self, id: RecordId, seq: u64) -> Result<(), StoreError> {
        self.c.exec(
            "UPDATE records SET seq = ?2 WHERE id = ?1",
            params![id.to_string(), seq as i64],
        )?;
        Ok(())
    }

    fn set_customer_owner(&mut self, customer: RecordId, owner: UserId) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO customer_owners (customer_id, owner_id) VALUES (?1, ?2) ON CONFLICT (customer_id) DO UPDATE SET owner_id = excluded.owner_id",
            [customer.to_string(), owner.to_string()],
        )?;
        Ok(())
    }

    fn add_eviction(
        &mut self,
        seq: u64,
        customer: RecordId,
        from: UserId,
        to: UserId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO evictions (seq, customer_id, from_owner, to_owner, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq as i64, customer.to_string(), from.to_string(), to.to_string(), at],
        )?;
        Ok(())
    }

    fn add_op(&mut self, o: &OpRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO ops (device_id, device_seq, op_id, user_id, op, outcome, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![o.device_id.to_string(), o.device_seq as i64, o.op_id.to_string(), o.user_id.to_string(), o.op, o.outcome, o.at],
        )?;
        Ok(())
    }

    fn add_problem(&mut self, p: &ProblemRow) -> Result<i64, StoreError> {
        self.c.exec(
            "INSERT INTO problems (user_id, device_id, op, code, message, field, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![p.user_id.to_string(), p.device_id.to_string(), p.op, p.code, p.message, p.field, p.created_at],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn add_conflict(&mut self, c: &ConflictRow) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO conflicts (record_id, collection, op_id, user_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                c.record_id.to_string(),
                c.collection,
                c.op_id.to_string(),
                c.user_id.to_string(),
                c.field,
                c.losing_value,
                c.winning_value,
                c.losing_hlc,
                c.winning_hlc,
                c.created_at
            ],
        )?;
        Ok(())
    }

    fn put_check_in(&mut self, ci: &CheckIn) -> Result<(), StoreError> {
        self.c.exec(
            "INSERT INTO check_ins (visit_id, user_id, started_at_ms, lat, lon) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (visit_id) DO UPDATE SET user_id = excluded.user_id, started_at_ms = excluded.started_at_ms, lat = excluded.lat, lon = excluded.lon",
            params![ci.visit_id.to_string(), ci.user_id.to_string(), ci.started_at_ms, ci.at.lat, ci.at.lon],
        )?;
        Ok(())
    }
}

impl ReportWrite for Tx<'_> {
    fn put_report_fact(
        &mut self,
        id: RecordId,
        customer: bool,
        row: Option<&super::facts::FactRow>,
    ) -> Result<(), StoreError> {
        use super::facts::FactRow;
        let bytes = id.0.as_bytes().as_slice();
        let id = id.to_string();
        if customer {
            self.c
                .exec("DELETE FROM report_customers WHERE customer_id = ?1", [&id])?;
        } else {
            self.c
                .exec("DELETE FROM report_facts WHERE record_id = ?1", [bytes])?;
        }
        match row {
            None => {}
            Some(FactRow::Customer {
                owner_id,
                created_us,
            }) => {
                self.c.exec(
                    "INSERT INTO report_customers (customer_id, owner_id, created_us) VALUES (?1, ?2, ?3)",
                    params![id, owner_id, created_us],
                )?;
            }
            Some(FactRow::Fact(c)) => {
                self.c.exec(
                    "INSERT INTO report_facts (record_id, kind, at_us, customer_id, amends, minor, minor_digits, voided, feedback_kind, csat, nps, resolved_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        bytes,
                        c.kind,
                        c.at_us,
                        c.customer_id.0.as_bytes().as_slice(),
                        c.amends.as_ref().map(|a| a.0.as_bytes().as_slice()),
                        c.minor,
                        c.minor_digits,
                        c.voided,
                        c.feedback_kind,
                        c.csat,
                        c.nps,
                        c.resolved_us
                    ],
                )?;
            }
        }
        Ok(())
    }

    fn clear_report_facts(&mut self) -> Result<(), StoreError> {
        self.c.exec("DELETE FROM report_customers", [])?;
        self.c.exec("DELETE FROM report_facts", [])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::waits::{self, SIGNAL, assert_timed_out, once, retry_twice, stuck_writer};
    use super::*;

    /// Issue 7: a pull walked every change after the cursor and tested scope
    /// per row. Its plan must seek indexes only, never scan `records`.
    #[test]
    fn pull_query_seeks_indexes_instead_of_scanning_records() {
        let mut c = Connection::open_in_memory().expect("open");
        migrations::apply(&mut c, migrations::SERVER_SQLITE).expect("migrate");
        let now = chrono::Utc::now();
        let scope = ScopeFilter {
            all: false,
            users: vec![UserId::new_v7(now), UserId::new_v7(now)],
            teams: vec![TeamId::new_v7(now)],
        };
        let mut args: Vec<rusqlite::types::Value> = vec![0_i64.into(), 10_i64.into(), 5_i64.into()];
        args.extend(scope.users.iter().map(|u| u.to_string().into()));
        args.extend(scope.teams.iter().map(|t| t.to_string().into()));
        let sql = format!("EXPLAIN QUERY PLAN {}", changes_sql(&scope));
        let mut st = c.prepare(&sql).expect("prepare");
        let plan: Vec<String> = st
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows");
        for index in [
            "records_public_seq",
            "records_subject_user_seq",
            "records_subject_team_seq",
            "records_customer_seq",
        ] {
            assert!(plan.iter().any(|d| d.contains(index)), "{index}: {plan:#?}");
        }
        // The old plan walked the whole seq range of `records`
        // (`SEARCH r USING INDEX sqlite_autoindex_records_2 (seq>? AND seq<?)`).
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN r")
                || (d.contains("sqlite_autoindex_records_2") && d.contains("seq>?"))),
            "{plan:#?}"
        );
    }
    fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.db");
        let store = SqliteStore::open(&path).expect("open");
        (dir, path, store)
    }

    fn meta_of(store: &SqliteStore, key: &str) -> Option<String> {
        super::super::read(store, |tx| tx.meta(key)).expect("read")
    }

    /// Batches stay open for queued writers however long they take.
    fn keep_batches_open(store: &SqliteStore) {
        lock(&store.writer).commit_cost = Duration::from_hours(24);
    }

    fn commits(store: &SqliteStore) -> u64 {
        lock(&store.writer).commits
    }

    /// Wait (bounded) until `n` writers queue for the writer connection.
    fn until_queued(store: &SqliteStore, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while store.queued.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "writers never queued");
            std::thread::yield_now();
        }
    }

    /// A store whose waits give up after `wait`.
    fn impatient_store(wait: Duration) -> (tempfile::TempDir, SqliteStore) {
        let (dir, _, store) = temp_store();
        (dir, store.with_wait_deadline(wait).expect("deadline"))
    }

    fn head(store: &SqliteStore) -> u64 {
        waits::head(store)
    }

    #[test]
    fn a_writer_behind_a_stuck_writer_gives_up_at_its_deadline_and_applies_nothing() {
        let wait = Duration::from_millis(300);
        let (_dir, store) = impatient_store(wait);
        waits::a_writer_behind_a_stuck_writer_gives_up_and_applies_nothing(&store, wait);
        // SQLite committed the stuck writer when it went on.
        assert!(meta_of(&store, "stuck").is_some());
    }

    /// A writer whose work joined a batch waits for the batch's COMMIT,
    /// which the writer after it runs. When that writer is stuck, the
    /// first gives up at its deadline (it cannot know whether its work
    /// will be committed); the batch commits later, and a retry finds the
    /// work there instead of applying it again.
    #[test]
    fn a_batch_member_gives_up_when_the_writer_after_it_stalls_and_its_retry_applies_once() {
        let wait = Duration::from_millis(300);
        let (_dir, store) = impatient_store(wait);
        keep_batches_open(&store);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (inside, entered) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let before = commits(&store);
        std::thread::scope(|s| {
            let member = s.spawn(|| {
                let start = Instant::now();
                let res = super::super::write(&store, |tx| {
                    once(tx, "member")?;
                    started_tx.send(()).expect("signal");
                    // Stay until the stalling writer queues: the batch is
                    // then left open for it.
                    until_queued(&store, 1);
                    Ok(())
                });
                (res, start.elapsed())
            });
            started.recv_timeout(SIGNAL).expect("the member is inside");
            let store = &store;
            let stalling = s.spawn(move || stuck_writer(store, "stalling", inside, &released));
            entered
                .recv_timeout(SIGNAL)
                .expect("the stalling writer is inside");
            let (res, waited) = member.join().expect("member");
            assert_timed_out(&res, "its group's COMMIT", waited, wait);
            release.send(()).expect("release");
            stalling.join().expect("stalling").expect("committed");
        });
        // One COMMIT held both, the member's work included.
        assert_eq!(commits(&store), before + 1);
        assert_eq!(meta_of(&store, "member").as_deref(), Some("1"));
        super::super::write(&store, |tx| once(tx, "member")).expect("the retry");
        assert_eq!(meta_of(&store, "member").as_deref(), Some("1"));
        assert_eq!(head(&store), 2, "applied exactly once");
        assert!(lock(&store.ends).failed.is_empty());
        assert_eq!(lock(&store.ends).waiting, 0);
    }

    #[test]
    fn a_write_blocked_by_another_process_holding_the_file_gives_up_and_its_retry_applies_once() {
        let wait = Duration::from_millis(300);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.db");
        let store = SqliteStore::open(&path)
            .expect("open")
            .with_wait_deadline(wait)
            .expect("deadline");
        let other = Connection::open(&path).expect("second connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let start = Instant::now();
        let res = super::super::write(&store, |tx| once(tx, "w"));
        assert_timed_out(&res, "the database file's lock", start.elapsed(), wait);
        other.execute_batch("ROLLBACK").expect("unlock");
        retry_twice(&store, "w");
        assert_eq!(meta_of(&store, "w").as_deref(), Some("1"));
        assert_eq!(head(&store), 1);
    }

    #[test]
    fn a_read_waits_for_a_connection_only_until_its_deadline() {
        let wait = Duration::from_millis(300);
        let (_dir, store) = impatient_store(wait);
        let (inside, entered) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        std::thread::scope(|s| {
            let mut readers = Vec::new();
            for _ in 0..READERS {
                let (store, inside, released) = (&store, inside.clone(), &released);
                readers.push(s.spawn(move || {
                    super::super::read(store, |_| {
                        inside.send(()).expect("signal");
                        lock(released).recv_timeout(SIGNAL).expect("released");
                        Ok::<(), StoreError>(())
                    })
                }));
                entered.recv_timeout(SIGNAL).expect("a reader is inside");
            }
            let start = Instant::now();
            let res = store.ping();
            assert_timed_out(&res, "a read connection", start.elapsed(), wait);
            for _ in 0..READERS {
                release.send(()).expect("release");
            }
            for r in readers {
                r.join().expect("reader").expect("read");
            }
        });
        store.ping().expect("connections are free again");
    }

    #[test]
    fn concurrent_writers_are_all_durable_and_failed_ones_leave_nothing() {
        let (_dir, path, store) = temp_store();
        keep_batches_open(&store);
        let ok: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
        let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (store, ok, failed) = (&store, &ok, &failed);
                s.spawn(move || {
                    for i in 0..40 {
                        let key = format!("k-{t}-{i}");
                        let fail = i % 7 == 3;
                        let res = super::super::write(store, |tx| {
                            let seq = tx.next_seq()?;
                            tx.set_meta(&key, &seq.to_string())?;
                            if fail {
                                return Err(StoreError::Rollback);
                            }
                            Ok(seq)
                        });
                        match res {
                            Ok(seq) => lock(ok).push((key, seq)),
                            Err(StoreError::Rollback) if fail => lock(failed).push(key),
                            Err(e) => panic!("{key}: {e}"),
                        }
                    }
                });
            }
        });
        let ok = ok.into_inner().expect("ok");
        let failed = failed.into_inner().expect("failed");
        assert_eq!(ok.len(), 8 * 34);
        assert_eq!(failed.len(), 8 * 6);
        drop(store);
        let store = SqliteStore::open(&path).expect("reopen");
        for (key, seq) in &ok {
            assert_eq!(meta_of(&store, key), Some(seq.to_string()), "{key}");
        }
        for key in &failed {
            assert_eq!(meta_of(&store, key), None, "{key}");
        }
        // Failed writers' numbers were rolled back with them: the committed
        // ones are exactly 1..=n, each taken once.
        let mut seqs: Vec<u64> = ok.iter().map(|(_, s)| *s).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=ok.len() as u64).collect::<Vec<_>>());
        let head = super::super::read(&store, |tx| tx.head_seq()).expect("head");
        assert_eq!(head, ok.len() as u64);
    }

    #[test]
    fn failing_writer_in_a_shared_batch_rolls_back_only_its_own_work() {
        let (_dir, path, store) = temp_store();
        keep_batches_open(&store);
        let before = commits(&store);
        let (started_tx, started) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                super::super::write(&store, |tx| {
                    tx.set_meta("a", "1")?;
                    started_tx.send(()).expect("signal");
                    // Stay in the batch until both others queue behind it.
                    until_queued(&store, 2);
                    Ok::<_, StoreError>(())
                })
            });
            started.recv_timeout(SIGNAL).expect("first writer started");
            let failing = s.spawn(|| {
                super::super::write(&store, |tx| {
                    tx.set_meta("b", "2")?;
                    Err::<(), _>(StoreError::Taken("b".into()))
                })
            });
            let third = s.spawn(|| super::super::write(&store, |tx| tx.set_meta("c", "3")));
            assert!(first.join().expect("first").is_ok());
            assert!(matches!(
                failing.join().expect("failing"),
                Err(StoreError::Taken(_))
            ));
            assert!(third.join().expect("third").is_ok());
        });
        // One COMMIT covered both successful writers.
        assert_eq!(commits(&store), before + 1);
        drop(store);
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(meta_of(&store, "a").as_deref(), Some("1"));
        assert_eq!(meta_of(&store, "b"), None);
        assert_eq!(meta_of(&store, "c").as_deref(), Some("3"));
    }

    #[test]
    fn failed_commit_fails_every_writer_in_the_batch() {
        let (_dir, path, store) = temp_store();
        keep_batches_open(&store);
        lock(&store.writer)
            .conn
            .execute_batch(
                "CREATE TABLE gc_parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE gc_child (parent INTEGER REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .expect("tables");
        let (started_tx, started) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                super::super::write(&store, |tx| {
                    tx.set_meta("a", "1")?;
                    started_tx.send(()).expect("signal");
                    until_queued(&store, 1);
                    Ok::<_, StoreError>(())
                })
            });
            started.recv_timeout(SIGNAL).expect("first writer started");
            // Its deferred foreign key fails only at COMMIT, which it runs
            // for the batch as the last writer.
            let orphan = s.spawn(|| {
                store.write_conn(&mut |c| {
                    c.execute("INSERT INTO gc_child (parent) VALUES (42)", [])?;
                    Ok(())
                })
            });
            let first = first.join().expect("first");
            let orphan = orphan.join().expect("orphan");
            for res in [first, orphan] {
                let Err(StoreError::Backend(e)) = res else {
                    panic!("expected the COMMIT's error, got {res:?}");
                };
                assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
            }
        });
        // The store goes on with the next batch.
        super::super::write(&store, |tx| tx.set_meta("after", "ok")).expect("next write");
        drop(store);
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(meta_of(&store, "a"), None);
        assert_eq!(meta_of(&store, "after").as_deref(), Some("ok"));
        let orphans: i64 = lock(&store.writer)
            .conn
            .query_row("SELECT count(*) FROM gc_child", [], |r| r.get(0))
            .expect("count");
        assert_eq!(orphans, 0);
    }
}
