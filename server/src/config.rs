//! Command line, environment and config file.
//!
//! Precedence: command-line flag, then environment variable
//! (`FIELDSYNC_DATA`, `FIELDSYNC_BIND`, `FIELDSYNC_DATABASE`,
//! `FIELDSYNC_TRUSTED_PROXIES`), then the TOML file given with `--config`
//! (keys `data`, `bind`, `database` and `trusted_proxies`), then the
//! defaults (`./fieldsync-data`, `127.0.0.1:8080`, the SQLite store in the
//! data directory).

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
    after_help = "Examples:\n  fieldsync-server serve\n  fieldsync-server serve --data /var/lib/fieldsync --bind 0.0.0.0:8080\n  FIELDSYNC_ADMIN_PASSWORD=... fieldsync-server serve --config /etc/fieldsync/server.toml\n  fieldsync-server serve --database postgres://fieldsync@db.internal/fieldsync\n  fieldsync-server migrate-store --from /var/lib/fieldsync --to postgres://fieldsync@db.internal/fieldsync")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (creates and migrates `DATA/server.db`, or the
    /// PostgreSQL database given with `--database`).
    Serve(ServeArgs),
    /// Copy a server's whole state into an empty PostgreSQL database and
    /// verify it (the source is only read).
    #[command(
        after_help = "Examples:\n  fieldsync-server migrate-store --from /var/lib/fieldsync --to postgres://postgres@127.0.0.1/fieldsync\n  fieldsync-server migrate-store --from ./fieldsync-data/server.db --to postgres://postgres@127.0.0.1/fieldsync\n\nStop the server first; afterwards start every instance with --database URL. Devices keep their login and their data."
    )]
    MigrateStore(MigrateStoreArgs),
}

/// `migrate-store` options.
#[derive(Debug, clap::Args)]
pub struct MigrateStoreArgs {
    /// The source: a SQLite `server.db`, a data directory holding one, or a `postgres://` URL.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub from: String,
    /// The target: a `postgres://` URL of an empty (or newly created) database.
    #[arg(long, value_name = "URL")]
    pub to: String,
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
    /// PostgreSQL URL (`postgres://user@host:port/db`): use the PostgreSQL
    /// store instead of the SQLite file in the data directory.
    #[arg(long, env = "FIELDSYNC_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// TOML config file with the keys `data`, `bind`, `database` and
    /// `trusted_proxies`.
    #[arg(long, env = "FIELDSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// A proxy (address or CIDR range, repeatable) whose `X-Forwarded-For`
    /// header names the client; without any, the socket's address is the
    /// client's.
    #[arg(long = "trusted-proxy", env = "FIELDSYNC_TRUSTED_PROXIES", value_name = "CIDR", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A CIDR range, or a single address (a /32 or /128).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or CIDR range (like 10.0.0.0/8)"))
}

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    bind: Option<String>,
    database: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
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
    /// PostgreSQL URL; `None` means the SQLite store in `data_dir`.
    pub database: Option<String>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
            database: None,
            trusted_proxies: Vec::new(),
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
        let database = args
            .database
            .clone()
            .or(file.database)
            .filter(|d| !d.trim().is_empty());
        if let Some(url) = &database
            && !crate::store::migrate::is_postgres_url(url)
        {
            anyhow::bail!(
                "--database must be a postgres:// URL, got {url:?}; leave it out to use the SQLite file in the data directory"
            );
        }
        let mut s = Self::new(data, bind);
        s.database = database;
        s.trusted_proxies = if args.trusted_proxies.is_empty() {
            file.trusted_proxies
                .iter()
                .map(|n| parse_net(n).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}")))
                .collect::<anyhow::Result<_>>()?
        } else {
            args.trusted_proxies.clone()
        };
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
            database: None,
            config: Some(f),
            trusted_proxies: Vec::new(),
        };
        let s = Settings::from_serve(&args).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/fs"));
        assert_eq!(s.bind, "127.0.0.1:1");
        let d = Settings::from_serve(&ServeArgs {
            data: None,
            bind: None,
            database: None,
            config: None,
            trusted_proxies: Vec::new(),
        })
        .unwrap();
        assert_eq!(d.bind, DEFAULT_BIND);
    }

    #[test]
    fn the_database_url_comes_from_flag_or_file_and_must_be_postgres() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.toml");
        std::fs::write(&f, "database = \"postgres://db.internal/fs\"\n").unwrap();
        let args = |database: Option<&str>, config: Option<PathBuf>| ServeArgs {
            data: None,
            bind: None,
            database: database.map(str::to_owned),
            config,
            trusted_proxies: Vec::new(),
        };
        let s = Settings::from_serve(&args(None, Some(f.clone()))).unwrap();
        assert_eq!(s.database.as_deref(), Some("postgres://db.internal/fs"));
        let s = Settings::from_serve(&args(Some("postgresql://other/x"), Some(f))).unwrap();
        assert_eq!(s.database.as_deref(), Some("postgresql://other/x"));
        assert_eq!(
            Settings::from_serve(&args(None, None)).unwrap().database,
            None
        );
        let err = Settings::from_serve(&args(Some("/var/lib/server.db"), None)).unwrap_err();
        assert!(err.to_string().contains("postgres:// URL"), "{err}");
    }

    #[test]
    fn trusted_proxies_come_from_flags_or_the_file_and_must_be_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.toml");
        std::fs::write(&f, "trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.5\"]\n").unwrap();
        let cli = Cli::try_parse_from([
            "fieldsync-server",
            "serve",
            "--trusted-proxy",
            "172.16.0.0/12",
            "--trusted-proxy",
            "::1",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        let s = Settings::from_serve(&args).unwrap();
        let shown: Vec<String> = s.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["172.16.0.0/12", "::1/128"]);
        let from_file = Settings::from_serve(&ServeArgs {
            data: None,
            bind: None,
            database: None,
            config: Some(f.clone()),
            trusted_proxies: Vec::new(),
        })
        .unwrap();
        let shown: Vec<String> = from_file
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.5/32"]);
        let bad = Cli::try_parse_from([
            "fieldsync-server",
            "serve",
            "--trusted-proxy",
            "proxy.internal",
        ])
        .unwrap_err();
        assert!(
            bad.to_string().contains("not an address or CIDR range"),
            "{bad}"
        );
        std::fs::write(&f, "trusted_proxies = [\"everyone\"]\n").unwrap();
        let err = Settings::from_serve(&ServeArgs {
            data: None,
            bind: None,
            database: None,
            config: Some(f),
            trusted_proxies: Vec::new(),
        })
        .unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
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
                database: None,
                config: Some(f),
                trusted_proxies: Vec::new(),
            })
            .is_err()
        );
    }
}
