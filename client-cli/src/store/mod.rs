//! The local store: one SQLite file per profile.
//!
//! * `server_records` — records as last pulled (canonical JSON);
//! * `outbox` — this device's ops not yet answered by the server;
//! * `records` — the local view: server state with pending ops re-applied;
//! * `conflicts`, `problems` — what sync reported;
//! * `meta` — clock, last `device_seq`, pull cursor, last sync.
//!
//! Every local write puts the op in the outbox and refreshes the view in
//! one transaction ([`Store::write`]). `backup.rs` copies the whole store
//! into one file and back (`fieldsync backup`, `fieldsync restore`).

mod backup;
mod columns;
mod issues;
mod outbox;
mod pulled;
mod resolve;
mod server;
mod view;

pub use backup::BackupFile;
pub use issues::{ConflictRow, ProblemRow};
pub use outbox::{Draft, NewDevice};
pub use server::PulledPage;
pub use view::Rec;

use crate::config::{Profile, WAIT_NOTICE_AFTER, set_mode};
use anyhow::{Context, Result};
use rusqlite::config::DbConfig;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::fs::OpenOptions;
use std::time::{Duration, Instant};
use sync_protocol::hlc::HlcClock;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, Hlc};

/// Meta keys.
pub(crate) mod key {
    pub const HLC: &str = "hlc";
    pub const LAST_SEQ: &str = "last_device_seq";
    pub const CURSOR: &str = "cursor";
    pub const LAST_SYNC: &str = "last_sync";
    pub const CLOCK_WARNING: &str = "clock_warning";
    /// The device this profile is becoming after its history diverged
    /// from the server's (JSON [`NewDevice`](super::NewDevice)); set
    /// before the device is registered, cleared once the outbox is its.
    pub const NEW_DEVICE: &str = "new_device";
    /// The last such change, once done (JSON [`NewDevice`](super::NewDevice)).
    pub const DEVICE_REPAIRED: &str = "device_repaired";
}

/// Who writes: the device, its user and their role.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    /// This profile's device.
    pub device: DeviceId,
    /// The logged-in user.
    pub user: sync_protocol::UserId,
    /// The logged-in user's role.
    pub role: Role,
}

/// Page size of a new store, in bytes.
const PAGE_SIZE: i64 = 8192;

/// Bytes the write-ahead log file keeps after it has been copied in.
const WAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

/// What a write that waits for the profile prints on stderr.
pub const WAITING: &str = "waiting for another fieldsync command on this profile…";

/// An open local store.
///
/// Several `fieldsync` processes may use one profile at once: readers never
/// wait (write-ahead log), and every write is an `IMMEDIATE` transaction
/// ([`Store::write_tx`]) that waits for the profile's one writer, at most
/// the profile's wait limit.
pub struct Store {
    conn: Connection,
    identity: Option<Identity>,
    wait: Duration,
}

impl Store {
    /// Open (creating and migrating if needed) the profile's store.
    pub fn open(profile: &Profile, identity: Option<Identity>) -> Result<Self> {
        profile.ensure_dir()?;
        let path = profile.db_path();
        {
            let mut opts = OpenOptions::new();
            opts.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            opts.open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            set_mode(&path, 0o600)?;
        }
        let mut conn = Connection::open(&path)
            .with_context(|| format!("cannot open the local store {}", path.display()))?;
        // Opening (a migration, switching a new file to WAL) waits like
        // any write; `write_tx` shortens this while it waits silently.
        let wait = profile.wait();
        conn.busy_timeout(wait)?;
        // Takes effect only while the file is new (before WAL is switched
        // on). A stored record is about 1.5 KB: a 4 KiB page holds two of
        // them and leaves a quarter empty.
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // A commit is durable when it returns: the write-ahead log is
        // synced at every commit (during a sync, at its end: see
        // `Store::prepare_for_sync`). So closing the last connection need not
        // copy the log into the database (a checkpoint with two syncs, and
        // deleting the log, which the next command created again): that
        // was a quarter of a `visit log`. The log stays beside the store
        // (`fieldsync.db-wal`; `fieldsync backup` copies both consistently) and
        // is copied in by the automatic checkpoints, every 1,000 pages, and
        // at the end of a sync; the size limit makes a log that grew in
        // one transaction shrink again once it has been copied.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        migrations::apply(&mut conn, migrations::CLIENT)
            .context("cannot bring the local store up to date")?;
        Ok(Self {
            conn,
            identity,
            wait,
        })
    }

    /// Begin a write: an `IMMEDIATE` transaction, which takes the profile's
    /// write lock before it reads anything. (A deferred one that read first
    /// fails at its first write, without waiting, when another command
    /// committed meanwhile: SQLite cannot move its snapshot forward.) While
    /// another command holds the lock, it waits silently for about a second,
    /// then says on stderr that it is waiting, up to the profile's limit;
    /// past it, the [`Failure`](crate::error::Failure) says nothing was saved.
    pub fn write_tx(&mut self) -> Result<Transaction<'_>> {
        let start = Instant::now();
        let quiet = WAIT_NOTICE_AFTER.min(self.wait);
        let conn = &self.conn;
        conn.busy_timeout(quiet)?;
        let begun = match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Err(e) if is_busy(&e) && self.wait > quiet => {
                eprintln!("{WAITING}");
                conn.busy_timeout(self.wait.saturating_sub(start.elapsed()))?;
                Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            }
            other => other,
        };
        conn.busy_timeout(self.wait)?;
        match begun {
            Ok(tx) => Ok(tx),
            Err(e) if is_busy(&e) => Err(busy_failure(self.wait).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Number of ops waiting in the outbox.
    pub fn pending(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// From now on write as `device` (after it took over the outbox).
    fn set_device(&mut self, device: DeviceId) {
        if let Some(i) = &mut self.identity {
            i.device = device;
        }
    }

    /// A meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        get_meta(&self.conn, key)
    }

    /// The pull cursor.
    pub fn cursor(&self) -> Result<u64> {
        Ok(get_meta(&self.conn, key::CURSOR)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Record a meta value on its own.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        let tx = self.write_tx()?;
        set_meta(&tx, key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Take a remote clock reading into account: read, advance and save
    /// the clock in one write transaction, so that a write committed by
    /// another command meanwhile is never moved back.
    pub fn observe_clock(&mut self, remote: &Hlc) -> Result<()> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(crate::error::Failure::not_logged_in)?;
        let tx = self.write_tx()?;
        observe(&tx, device, remote)?;
        tx.commit()?;
        Ok(())
    }

    /// The device's clock right now (ticked and persisted), e.g. for a push.
    pub fn clock_now(&mut self) -> Result<Hlc> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(crate::error::Failure::not_logged_in)?;
        let tx = self.write_tx()?;
        let mut clock = load_clock(&tx, device)?;
        let now = clock.now(chrono::Utc::now());
        save_clock(&tx, &clock)?;
        tx.commit()?;
        Ok(now)
    }
}

/// Whether SQLite gave up waiting for another connection's lock.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// The failure of a command that waited `wait` for the profile in vain.
pub fn busy_failure(wait: Duration) -> crate::error::Failure {
    crate::error::Failure::exit(
        crate::error::Exit::Busy,
        format!(
            "another fieldsync command kept this profile busy for more than {} s; this change was not saved",
            wait.as_secs()
        ),
    )
    .code("profile_busy")
    .hint("run the command again when the other one has finished (fieldsync --wait SECONDS waits longer)")
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", params![key, value])?;
    Ok(())
}

/// The persisted clock of `device` (a clock restored from another device's
/// reading keeps its time but takes this device as its node).
pub(crate) fn load_clock(conn: &Connection, device: DeviceId) -> Result<HlcClock> {
    let last: Option<Hlc> = get_meta(conn, key::HLC)?.and_then(|s| s.parse().ok());
    Ok(match last {
        Some(h) => HlcClock::restore(Hlc { node: device, ..h }),
        None => HlcClock::new(device),
    })
}

pub(crate) fn save_clock(conn: &Connection, clock: &HlcClock) -> Result<()> {
    set_meta(conn, key::HLC, &clock.last().to_string())
}

/// Observe a remote clock reading.
pub(crate) fn observe(conn: &Connection, device: DeviceId, remote: &Hlc) -> Result<()> {
    let mut clock = load_clock(conn, device)?;
    clock.observe(remote);
    save_clock(conn, &clock)
}
