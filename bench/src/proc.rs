//! The real binaries: a `fieldsync-server` process on a loopback port with
//! its own data directory, and `fieldsync` device profiles.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The first admin's password on every benchmark server.
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// How long a server may take to print its address.
const START_LIMIT: Duration = Duration::from_mins(1);

/// Where the server keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStore {
    /// SQLite in a fresh temporary data directory (the default).
    Sqlite,
    /// A PostgreSQL server, given by an administrator URL: every server
    /// start gets a fresh database `fsbench_<unique>` on it, dropped
    /// afterwards.
    Postgres(String),
}

/// A database created on a PostgreSQL server for one benchmark server,
/// dropped (with any connections still on it) when this value goes.
struct FreshDb {
    admin: String,
    name: String,
    url: String,
}

/// Distinguishes the databases one benchmark process creates.
static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FreshDb {
    fn create(admin: &str) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "fsbench_{}_{nanos}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut url = reqwest::Url::parse(admin)
            .with_context(|| format!("reading the PostgreSQL URL {admin}"))?;
        url.set_path(&format!("/{name}"));
        let mut client = postgres::Client::connect(admin, postgres::NoTls)
            .with_context(|| format!("connecting to PostgreSQL at {admin}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            admin: admin.to_owned(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.admin, postgres::NoTls).and_then(|mut c| {
            c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(e) = dropped {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
    }
}

/// Whether a PostgreSQL server answers at this administrator URL.
pub fn postgres_reachable(admin: &str) -> bool {
    postgres::Client::connect(admin, postgres::NoTls)
        .and_then(|mut c| c.batch_execute("SELECT 1"))
        .is_ok()
}

impl ServerStore {
    /// Name for the results.
    pub fn label(&self) -> &'static str {
        match self {
            ServerStore::Sqlite => "sqlite",
            ServerStore::Postgres(_) => "postgres",
        }
    }
}

/// The directory holding `fieldsync` and `fieldsync-server`.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `fieldsync`.
    pub client: PathBuf,
    /// `fieldsync-server`.
    pub server: PathBuf,
}

impl Bins {
    /// The binaries in `dir`, which must both exist.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        let b = Self {
            client: dir.join(format!("fieldsync{}", std::env::consts::EXE_SUFFIX)),
            server: dir.join(format!("fieldsync-server{}", std::env::consts::EXE_SUFFIX)),
        };
        for p in [&b.client, &b.server] {
            if !p.is_file() {
                bail!(
                    "{} is missing; build the binaries first: cargo build --release --workspace --bins",
                    p.display()
                );
            }
        }
        Ok(b)
    }
}

/// A running `fieldsync-server`, killed when dropped (and its fresh
/// PostgreSQL database dropped after it).
pub struct ServerProc {
    child: Child,
    data: DataDir,
    url: String,
    server: PathBuf,
    database: Option<String>,
    // Declared last: dropped after the process is killed.
    db: Option<FreshDb>,
}

/// A server's data directory: fresh and removed afterwards, or kept.
pub enum DataDir {
    /// A temporary directory, removed when the server is dropped.
    Fresh(TempDir),
    /// A directory the caller keeps (a seeded workload reused across runs).
    Kept(PathBuf),
}

impl DataDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        match self {
            DataDir::Fresh(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }
}

/// A second `fieldsync-server` process on the same database as a
/// [`ServerProc`], killed when dropped (before that one).
pub struct Instance {
    child: Child,
    _data: TempDir,
    url: String,
}

impl Instance {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Peak resident memory of this process so far (VmHWM), in MiB.
    pub fn peak_mib(&self) -> Result<f64> {
        vm_hwm_mib(self.child.id())?.context("the second server has exited")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawn the server and wait for its `listening on` line.
fn spawn(
    server: &Path,
    database: Option<&str>,
    data: &Path,
    bind: &str,
) -> Result<(Child, String)> {
    let mut cmd = Command::new(server);
    cmd.args(["serve", "--bind", bind, "--data"])
        .arg(data)
        .env("FIELDSYNC_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = database {
        cmd.args(["--database", url]);
    }
    let mut child = cmd.spawn().context("starting fieldsync-server")?;
    let stderr = child.stderr.take().context("server stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keep reading so the server never blocks on a full pipe.
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(rest) = line.split_once("listening on ").map(|(_, r)| r) {
                let _ = tx.send(rest.trim().to_owned());
                sent = true;
            }
        }
    });
    if let Ok(url) = rx.recv_timeout(START_LIMIT) {
        return Ok((child, url));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("fieldsync-server did not print its address within {START_LIMIT:?}")
}

impl ServerProc {
    /// Start a server on `127.0.0.1:0` with a fresh data directory.
    pub fn start(bins: &Bins, store: &ServerStore) -> Result<Self> {
        let data = tempfile::tempdir().context("creating the server's data directory")?;
        Self::start_in(bins, store, DataDir::Fresh(data))
    }

    /// Start a server on `127.0.0.1:0` on the data directory `data` (for
    /// SQLite, one whose `server.db` the caller may have filled already).
    pub fn start_in(bins: &Bins, store: &ServerStore, data: DataDir) -> Result<Self> {
        let db = match store {
            ServerStore::Sqlite => None,
            ServerStore::Postgres(admin) => Some(FreshDb::create(admin)?),
        };
        let database = db.as_ref().map(|d| d.url.clone());
        let (child, url) = spawn(
            &bins.server,
            database.as_deref(),
            data.path(),
            "127.0.0.1:0",
        )?;
        Ok(Self {
            child,
            data,
            url,
            server: bins.server.clone(),
            database,
            db,
        })
    }

    /// Start another server process on this one's PostgreSQL database
    /// (`None` on SQLite, whose file belongs to one process).
    pub fn second_instance(&self) -> Result<Option<Instance>> {
        let Some(database) = &self.database else {
            return Ok(None);
        };
        let data = tempfile::tempdir().context("creating the server's data directory")?;
        let (child, url) = spawn(&self.server, Some(database), data.path(), "127.0.0.1:0")?;
        Ok(Some(Instance {
            child,
            _data: data,
            url,
        }))
    }

    /// Whether this server runs on a fresh PostgreSQL database.
    pub fn on_postgres(&self) -> bool {
        self.db.is_some()
    }

    /// Stop the server and start it again on the same data and address
    /// (a fresh process: its memory marks start over; tokens stay valid).
    pub fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bind = self
            .url
            .strip_prefix("http://")
            .context("server address")?
            .to_owned();
        let (child, url) = spawn(
            &self.server,
            self.database.as_deref(),
            self.data.path(),
            &bind,
        )?;
        self.child = child;
        self.url = url;
        Ok(())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Peak resident memory of the server so far (VmHWM), in MiB.
    pub fn peak_mib(&self) -> Result<f64> {
        vm_hwm_mib(self.child.id())?.context("the server has exited")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmHWM of a live process in MiB (`None` once it has gone).
pub fn vm_hwm_mib(pid: u32) -> Result<Option<f64>> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Ok(None);
    };
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>())
        .transpose()
        .context("reading VmHWM")?;
    Ok(kb.map(|kb| kb / 1024.0))
}

/// One laptop: a `fieldsync` profile directory.
pub struct Device {
    home: TempDir,
    bin: PathBuf,
}

/// A finished `fieldsync` run: output, wall time, sampled peak memory.
pub struct Timed {
    /// What it printed.
    pub output: Output,
    /// Spawn to exit.
    pub wall: Duration,
    /// Highest VmHWM seen while it ran, in MiB (sampled every 2 ms).
    pub peak_mib: f64,
}

impl Device {
    /// A fresh profile.
    pub fn new(bins: &Bins) -> Result<Self> {
        Ok(Self {
            home: tempfile::tempdir()?,
            bin: bins.client.clone(),
        })
    }

    /// The profile directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("FIELDSYNC_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cmd(args).output().context("running fieldsync")?;
        require_success(args, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run with `--json` and parse stdout.
    pub fn json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a)?;
        serde_json::from_str(&text)
            .with_context(|| format!("fieldsync {} printed invalid JSON: {text}", args.join(" ")))
    }

    /// Log in with the password on stdin.
    pub fn login(&self, server: &str, user: &str, password: &str) -> Result<()> {
        let args = [
            "login",
            "--server",
            server,
            "--user",
            user,
            "--password-stdin",
        ];
        let mut c = self.cmd(&args);
        c.stdin(Stdio::piped());
        let mut child = c.spawn().context("running fieldsync login")?;
        child
            .stdin
            .take()
            .context("login stdin")?
            .write_all(password.as_bytes())?;
        let out = child.wait_with_output()?;
        require_success(&args, &out)
    }

    /// Run as a whole process, timing it and sampling its peak memory.
    pub fn timed(&self, args: &[&str]) -> Result<Timed> {
        let start = Instant::now();
        let mut child = self.cmd(args).spawn().context("running fieldsync")?;
        let pid = child.id();
        let mut stdout = child.stdout.take().context("stdout")?;
        let mut stderr = child.stderr.take().context("stderr")?;
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
            buf
        });
        let mut peak: f64 = 0.0;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if let Some(m) = vm_hwm_mib(pid)? {
                peak = peak.max(m);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let wall = start.elapsed();
        let output = Output {
            status,
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        };
        require_success(args, &output)?;
        Ok(Timed {
            output,
            wall,
            peak_mib: peak,
        })
    }

    /// Time a whole process only (no memory sampling, nothing else running).
    pub fn time_only(&self, args: &[&str]) -> Result<Duration> {
        let mut c = self.cmd(args);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let out = c.output().context("running fieldsync")?;
        let wall = start.elapsed();
        require_success(args, &out)?;
        Ok(wall)
    }
}

fn require_success(args: &[&str], out: &Output) -> Result<()> {
    if !out.status.success() {
        bail!(
            "fieldsync {} failed ({:?}): {}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
