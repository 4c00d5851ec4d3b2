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

mod accounts;
mod group_commit;
mod read;
mod reports;
mod rows;
#[cfg(test)]
mod tests;
mod write;

use crate::store::ReadTx;
use crate::store::turns::{Turn, Turns};
use crate::store::{PairFn, ReadFn, Store, StoreError, WriteFn};
use group_commit::{Ends, Writer};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection: every statement the store runs
/// fits, so a push or pull never re-parses SQL (parsing was the largest
/// cost of a push before statements were cached).
const STATEMENT_CACHE: usize = 128;

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
