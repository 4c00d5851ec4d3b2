//! The profile directory and its `config.json`.
//!
//! One directory per profile (`--home`, `FIELDSYNC_HOME`, or the platform
//! data directory). It is created `0700`; `config.json` and `fieldsync.db`
//! are `0600`. Profiles never touch each other's files.

use crate::error::{Exit, Failure};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use sync_protocol::DeviceId;
use sync_protocol::wire::UserInfo;

/// The file name of the profile's settings.
pub const CONFIG_FILE: &str = "config.json";
/// The file name of the profile's SQLite store.
pub const DB_FILE: &str = "fieldsync.db";
/// File name of the lock a running sync holds.
pub const SYNC_LOCK_FILE: &str = "sync.lock";

/// How long a command waits for another before it says it is waiting.
pub const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// What a profile remembers between runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`.
    pub server: String,
    /// The device token; `None` after `logout` (the device id is kept so a
    /// later login carries on with the same outbox and `device_seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// This profile's device.
    pub device_id: DeviceId,
    /// Who logged in last.
    pub user: UserInfo,
}

/// How long a command waits for another one on the same profile, unless
/// `--wait` says otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_mins(1);

/// How often a sync waiting for another one tries its lock again.
const SYNC_LOCK_POLL: Duration = Duration::from_millis(50);

/// A profile directory, and how long this command waits for others on it.
#[derive(Clone, Debug)]
pub struct Profile {
    dir: PathBuf,
    wait: Duration,
}

impl Profile {
    /// The profile at `home`, or the platform default.
    pub fn locate(home: Option<PathBuf>) -> Result<Self> {
        let dir = match home {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "fieldsync")
                .map(|p| p.data_dir().to_path_buf())
                .context("cannot find a home directory for the profile; pass --home DIR or set FIELDSYNC_HOME")?,
        };
        Ok(Self {
            dir,
            wait: DEFAULT_WAIT,
        })
    }

    /// The same profile, waiting at most `wait` for other commands.
    #[must_use]
    pub fn waiting(self, wait: Duration) -> Self {
        Self { wait, ..self }
    }

    /// How long a command waits for another one on this profile.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Hold this profile's sync lock until the returned file is closed
    /// (also when the process dies: it is an advisory lock on
    /// `sync.lock`, which the OS releases with the process). A sync
    /// already running is waited for, with a line on stderr after about a
    /// second, at most [`Profile::wait`]; then the failure says so.
    pub fn lock_for_sync(&self) -> Result<fs::File> {
        self.ensure_dir()?;
        let path = self.dir.join(SYNC_LOCK_FILE);
        let mut opts = fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let start = Instant::now();
        let mut said = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            let waited = start.elapsed();
            if waited >= self.wait {
                return Err(Failure::exit(Exit::Busy, "a sync is already running on this profile")
                    .code("sync_running")
                    .hint("it carries on by itself; run this command again once it has finished (--wait SECONDS waits longer)")
                    .into());
            }
            if !said && waited >= WAIT_NOTICE_AFTER {
                eprintln!("waiting for the sync already running on this profile…");
                said = true;
            }
            std::thread::sleep(SYNC_LOCK_POLL.min(self.wait.saturating_sub(waited)));
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the directory (`0700`) if needed.
    pub fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| {
            format!("cannot create the profile directory {}", self.dir.display())
        })?;
        set_mode(&self.dir, 0o700)?;
        Ok(())
    }

    /// Path of `config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Path of `fieldsync.db`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The saved config, if this profile has logged in before.
    pub fn load(&self) -> Result<Option<Config>> {
        let path = self.config_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let cfg = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid fieldsync config", path.display()))?;
        Ok(Some(cfg))
    }

    /// Save the config atomically with mode `0600`.
    pub fn save(&self, cfg: &Config) -> Result<()> {
        self.ensure_dir()?;
        let path = self.config_path();
        let tmp = self.dir.join(format!("{CONFIG_FILE}.tmp"));
        let text = serde_json::to_string_pretty(cfg)?;
        {
            let mut f = create_private(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// The files that make up the profile: `config.json` and the store
    /// with its write-ahead log and shared-memory index (not the sync lock,
    /// which a waiting sync may hold open).
    pub fn profile_files(&self) -> [PathBuf; 4] {
        [
            CONFIG_FILE.to_owned(),
            DB_FILE.to_owned(),
            format!("{DB_FILE}-wal"),
            format!("{DB_FILE}-shm"),
        ]
        .map(|name| self.dir.join(name))
    }

    /// Delete the config and the store (`logout --wipe`).
    pub fn wipe(&self) -> Result<()> {
        for p in self.profile_files() {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot delete {}", p.display())),
            }
        }
        Ok(())
    }
}

/// Create (or truncate) a file readable only by its owner.
pub fn create_private(path: &Path) -> Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    set_mode(path, 0o600)?;
    Ok(f)
}

/// Set Unix permissions (no-op elsewhere).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}
