//! Command line, environment and config file.
//!
//! Precedence: command-line flag, then environment variable
//! (`FIELDSYNC_DATA`, `FIELDSYNC_BIND`), then the TOML file given with
//! `--config` (keys `data` and `bind`), then the defaults
//! (`./fieldsync-data`, `127.0.0.1:8080`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Default data directory.
pub const DEFAULT_DATA: &str = "./fieldsync-data";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// The fieldsync server: accounts, scopes and the sync endpoints.
#[derive(Debug, Parser)]
#[command(name = "fieldsync-server", version, about, long_about = None,
    after_help = "Examples:\n  fieldsync-server serve\n  fieldsync-server serve --data /var/lib/fieldsync --bind 0.0.0.0:8080\n  FIELDSYNC_ADMIN_PASSWORD=... fieldsync-server serve --config /etc/fieldsync/server.toml")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates and migrates `DATA/server.db`).
    Serve(ServeArgs),
}

/// `serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory (holds server.db) [default: ./fieldsync-data]
    #[arg(long, env = "FIELDSYNC_DATA")]
    pub data: Option<PathBuf>,
    /// Listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "FIELDSYNC_BIND")]
    pub bind: Option<String>,
    /// TOML config file with the keys `data` and `bind`.
    #[arg(long, env = "FIELDSYNC_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    bind: Option<String>,
}

/// How expensive password hashes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HashCost {
    /// argon2id with the crate's recommended parameters.
    #[default]
    Standard,
    /// Minimal parameters, for tests only.
    TestOnlyFast,
}

/// Everything the application needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address (`host:port`; port 0 picks a free one).
    pub bind: String,
    /// Password for the first `admin` account (generated when `None`).
    pub admin_password: Option<String>,
    /// Password hashing cost.
    pub hash_cost: HashCost,
    /// Actix worker threads (`None`: one per core).
    pub workers: Option<usize>,
}

impl Settings {
    /// Settings for a data directory and address with defaults elsewhere.
    pub fn new(data_dir: impl Into<PathBuf>, bind: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: bind.into(),
            admin_password: None,
            hash_cost: HashCost::Standard,
            workers: None,
        }
    }

    /// Resolve `serve` arguments (with the environment folded in by clap) and the config file.
    pub fn from_serve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let bind = args
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let mut s = Self::new(data, bind);
        s.admin_password = std::env::var("FIELDSYNC_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        Ok(s)
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("server.db")
    }
}

fn read_file(p: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_config_file_which_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.toml");
        std::fs::write(&f, "data = \"/srv/fs\"\nbind = \"0.0.0.0:9000\"\n").unwrap();
        let args = ServeArgs {
            data: None,
            bind: Some("127.0.0.1:1".into()),
            config: Some(f),
        };
        let s = Settings::from_serve(&args).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/fs"));
        assert_eq!(s.bind, "127.0.0.1:1");
        let d = Settings::from_serve(&ServeArgs {
            data: None,
            bind: None,
            config: None,
        })
        .unwrap();
        assert_eq!(d.bind, DEFAULT_BIND);
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.toml");
        std::fs::write(&f, "port = 1\n").unwrap();
        assert!(
            Settings::from_serve(&ServeArgs {
                data: None,
                bind: None,
                config: Some(f)
            })
            .is_err()
        );
    }
}
