//! A profile in one file (`fieldsync backup FILE`, `fieldsync restore FILE`).
//!
//! A backup is a SQLite database: the store as of one instant, copied with
//! SQLite's online backup API, plus the profile's `config.json` in its
//! `meta` table. It uses a rollback journal, so it is one self-contained
//! file (no `-wal` beside it), and it is written to a temporary name and
//! renamed: `FILE` is either what it was before or the whole backup.

use super::{get_meta, is_busy, set_meta};
use crate::config::{Profile, create_private};
use crate::error::Failure;
use anyhow::{Context, Result};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Meta key of the profile's `config.json` text inside a backup.
const BACKUP_CONFIG: &str = "backup_config";

/// How long a copy waits between tries when the destination is busy.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Copy the whole of `from` into `to` in one step: one read transaction on
/// `from`, so the copy is one consistent snapshot, which writers in WAL
/// mode go on beside. Gives up after `wait` of busy tries.
fn copy_all(from: &Connection, to: &mut Connection, wait: Duration) -> Result<()> {
    let start = Instant::now();
    let backup = Backup::new(from, to)?;
    loop {
        match backup.step(-1) {
            Ok(StepResult::Done) => return Ok(()),
            Ok(StepResult::More) => {}
            Ok(StepResult::Busy | StepResult::Locked) => {
                if start.elapsed() >= wait {
                    return Err(super::busy_failure(wait).into());
                }
                std::thread::sleep(RETRY_PAUSE);
            }
            Ok(_) => anyhow::bail!("the copy stopped for an unknown reason"),
            Err(e) if is_busy(&e) && start.elapsed() < wait => std::thread::sleep(RETRY_PAUSE),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A file beside `path` that is renamed onto it once complete.
fn partial_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Whether `conn`'s database passes `PRAGMA integrity_check`.
fn intact(conn: &Connection) -> Result<bool> {
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(verdict == "ok")
}

/// Write `partial` with `fill`, then make it `dest` (synced, mode `0600`);
/// on any failure remove `partial` and leave `dest` as it was.
fn write_then_rename(
    partial: &Path,
    dest: &Path,
    fill: impl FnOnce(&mut Connection) -> Result<()>,
) -> Result<()> {
    let result = (|| {
        create_private(partial)?;
        let mut conn = Connection::open(partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        fill(&mut conn)?;
        conn.close().map_err(|(_, e)| e)?;
        fs::File::open(partial)?.sync_all()?;
        fs::rename(partial, dest).with_context(|| format!("cannot write {}", dest.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(partial);
    }
    result
}

impl super::Store {
    /// Back this store up into `dest` with `config` (the profile's
    /// `config.json` text) in it; safe while other commands run on the
    /// profile. Returns the size of the file.
    pub fn backup_to(&self, dest: &Path, config: &str) -> Result<u64> {
        write_then_rename(&partial_of(dest), dest, |copy| {
            copy_all(&self.conn, copy, self.wait)?;
            copy.pragma_update(None, "journal_mode", "DELETE")?;
            set_meta(copy, BACKUP_CONFIG, config)?;
            if !intact(copy)? {
                anyhow::bail!("the copy does not pass SQLite's integrity check");
            }
            Ok(())
        })?;
        Ok(fs::metadata(dest)?.len())
    }
}

/// A backup file, opened read-only and checked.
pub struct BackupFile {
    conn: Connection,
    /// The profile's `config.json` text at the time of the backup.
    pub config: String,
}

impl BackupFile {
    /// Open `path` and check it is an intact fieldsync backup.
    pub fn open(path: &Path) -> Result<Self> {
        let not_backup = |why: &str| {
            Failure::new(format!(
                "{} is not a fieldsync backup ({why})",
                path.display()
            ))
            .hint("make one with: fieldsync backup FILE")
        };
        if !path.is_file() {
            return Err(not_backup("no such file").into());
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        match intact(&conn) {
            Ok(true) => {}
            Ok(false) => return Err(not_backup("it is damaged").into()),
            Err(_) => return Err(not_backup("not a SQLite database").into()),
        }
        let config = get_meta(&conn, BACKUP_CONFIG)
            .ok()
            .flatten()
            .ok_or_else(|| not_backup("it holds no profile settings"))?;
        Ok(Self { conn, config })
    }

    /// Unsynced changes in the backup.
    pub fn pending(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// Copy the store into `profile`'s directory as its `fieldsync.db`,
    /// brought up to this version's schema. The directory must hold no
    /// profile yet ([`Profile::profile_files`]; the caller checks).
    pub fn restore_store(&self, profile: &Profile) -> Result<()> {
        profile.ensure_dir()?;
        let dest = profile.db_path();
        write_then_rename(&partial_of(&dest), &dest, |store| {
            copy_all(&self.conn, store, profile.wait())?;
            store.execute("DELETE FROM meta WHERE key = ?1", [BACKUP_CONFIG])?;
            migrations::apply(store, migrations::CLIENT)
                .context("this backup cannot be brought up to this fieldsync's version")?;
            Ok(())
        })
    }
}
