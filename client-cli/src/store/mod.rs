//! The local store: one SQLite file per profile.
//!
//! * `server_records` — records as last pulled (canonical JSON);
//! * `outbox` — this device's ops not yet answered by the server;
//! * `records` — the local view: server state with pending ops re-applied;
//! * `conflicts`, `problems` — what sync reported;
//! * `meta` — clock, last `device_seq`, pull cursor, last sync.
//!
//! Every local write puts the op in the outbox and refreshes the view in
//! one transaction ([`Store::write`]).

mod columns;
mod issues;
mod outbox;
mod pulled;
mod resolve;
mod server;
mod view;

pub use issues::{ConflictRow, ProblemRow};
pub use outbox::Draft;
pub use server::PulledPage;
pub use view::Rec;

use crate::config::{Profile, set_mode};
use anyhow::{Context, Result};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};
use std::fs::OpenOptions;
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

/// An open local store.
pub struct Store {
    conn: Connection,
    identity: Option<Identity>,
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
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
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
        // (`fieldsync.db-wal`; copy the profile directory as a whole) and
        // is copied in by the automatic checkpoints, every 1,000 pages, and
        // at the end of a sync; the size limit makes a log that grew in
        // one transaction shrink again once it has been copied.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        migrations::apply(&mut conn, migrations::CLIENT)
            .context("cannot bring the local store up to date")?;
        Ok(Self { conn, identity })
    }

    /// Number of ops waiting in the outbox.
    pub fn pending(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as u64)
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
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        set_meta(&self.conn, key, value)
    }

    /// Take a remote clock reading into account.
    pub fn observe_clock(&self, remote: &Hlc) -> Result<()> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(crate::error::Failure::not_logged_in)?;
        observe(&self.conn, device, remote)
    }

    /// The device's clock right now (ticked and persisted), e.g. for a push.
    pub fn clock_now(&mut self) -> Result<Hlc> {
        let device = self
            .identity
            .map(|i| i.device)
            .ok_or_else(crate::error::Failure::not_logged_in)?;
        let tx = self.conn.transaction()?;
        let mut clock = load_clock(&tx, device)?;
        let now = clock.now(chrono::Utc::now());
        save_clock(&tx, &clock)?;
        tx.commit()?;
        Ok(now)
    }
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
