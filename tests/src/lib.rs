//! End-to-end harness: the real `fieldsync-server` and `fieldsync` binaries
//! talking over loopback.
//!
//! * [`TestServer`] starts the server binary on a free 127.0.0.1 port with a
//!   temporary data directory and kills it when dropped. With
//!   [`StoreKind::Postgres`] it uses a fresh PostgreSQL database instead
//!   (created on the local service, dropped with the last server using it);
//!   [`TestServer::another_instance`] starts a second process on the same
//!   database.
//! * [`Device`] is one laptop: its own `FIELDSYNC_HOME`, `NO_COLOR=1`, `TZ=UTC`.
//! * [`FaultProxy`] sits between a device and the server and can cut a
//!   connection after the server has answered but before the client reads
//!   the answer.

mod proxy;

pub use proxy::FaultProxy;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Longest a `fieldsync` command run by [`Device::run`] may take (the
/// slowest, a sync of thousands of visits through the fault proxy, takes
/// a few seconds).
pub const CLI_LIMIT: Duration = Duration::from_secs(90);

/// The admin password every test server starts with.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// Path of a workspace binary, built by the same `cargo test` run.
pub fn bin(name: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(name)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Poll `check` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Which store a test server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `server.db` in a temporary data directory (the default).
    Sqlite,
    /// A fresh database on the local PostgreSQL service.
    Postgres,
}

/// The maintenance URL of the local PostgreSQL service (override with
/// `FIELDSYNC_TEST_POSTGRES`).
pub fn postgres_admin_url() -> String {
    std::env::var("FIELDSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A uniquely named PostgreSQL database, dropped (with `FORCE`) when the
/// last owner lets go of it.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    /// Create an empty database.
    pub fn create() -> Result<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let name = format!(
            "fs_e2e_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&postgres_admin_url(), postgres::NoTls).context(
            "PostgreSQL must answer at 127.0.0.1:5432 (start it with `pg_ctlcluster 15 main start`)",
        )?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(Self { name })
    }

    /// Its `postgres://` URL.
    pub fn url(&self) -> String {
        let admin = postgres_admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    /// A direct connection, for checks.
    pub fn connect(&self) -> Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.url(), postgres::NoTls)?)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&postgres_admin_url(), postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A running `fieldsync-server` process.
pub struct TestServer {
    child: Option<Child>,
    data: TempDir,
    port: u16,
    extra_env: Vec<(String, String)>,
    database: Option<Arc<PgDatabase>>,
}

impl TestServer {
    /// Start a server on a fresh data directory.
    pub fn start() -> Result<Self> {
        Self::start_with(Vec::new())
    }

    /// Start a server with extra environment variables.
    pub fn start_with(extra_env: Vec<(String, String)>) -> Result<Self> {
        Self::start_on_with(StoreKind::Sqlite, extra_env)
    }

    /// Start a server on a fresh store of the given kind.
    pub fn start_on(store: StoreKind) -> Result<Self> {
        Self::start_on_with(store, Vec::new())
    }

    /// Start a server on a fresh store of the given kind, with extra environment variables.
    pub fn start_on_with(store: StoreKind, extra_env: Vec<(String, String)>) -> Result<Self> {
        let database = match store {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => Some(Arc::new(PgDatabase::create()?)),
        };
        Self::start_inner(database, extra_env)
    }

    fn start_inner(
        database: Option<Arc<PgDatabase>>,
        extra_env: Vec<(String, String)>,
    ) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut s = Self {
            child: None,
            data,
            port: 0,
            extra_env,
            database,
        };
        s.spawn()?;
        Ok(s)
    }

    /// Start another server process on this one's PostgreSQL database (a
    /// second stateless instance on its own port).
    pub fn another_instance(&self) -> Result<Self> {
        let Some(db) = &self.database else {
            bail!("only a PostgreSQL test server can have a second instance");
        };
        Self::start_inner(Some(Arc::clone(db)), self.extra_env.clone())
    }

    /// Which store this server runs on.
    pub fn store(&self) -> StoreKind {
        if self.database.is_some() {
            StoreKind::Postgres
        } else {
            StoreKind::Sqlite
        }
    }

    /// The PostgreSQL database, when the server runs on one.
    pub fn database(&self) -> Option<&PgDatabase> {
        self.database.as_deref()
    }

    /// Stop this SQLite server, copy its state with `fieldsync-server
    /// migrate-store` into a fresh PostgreSQL database, and start it again on
    /// that database at the same address. Returns the tool's output.
    pub fn move_to_postgres(&mut self) -> Result<Output> {
        if self.database.is_some() {
            bail!("the server already runs on PostgreSQL");
        }
        self.kill();
        let db = PgDatabase::create()?;
        let out = Command::new(bin("fieldsync-server"))
            .args(["migrate-store", "--from"])
            .arg(self.data.path())
            .args(["--to", &db.url()])
            .env("RUST_LOG", "warn")
            .output()
            .context("running fieldsync-server migrate-store")?;
        if !out.status.success() {
            bail!(
                "migrate-store failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.database = Some(Arc::new(db));
        self.restart()?;
        Ok(out)
    }

    fn spawn(&mut self) -> Result<()> {
        for _attempt in 0..5 {
            let port = free_port()?;
            let mut child = self
                .command(port)
                .spawn()
                .context("spawning fieldsync-server")?;
            let url = format!("http://127.0.0.1:{port}/readyz");
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?;
            let mut exited = false;
            let ready = wait_until(Duration::from_secs(30), || {
                if let Ok(Some(_)) = child.try_wait() {
                    exited = true;
                    return true;
                }
                client
                    .get(&url)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            });
            if ready && !exited {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        bail!("fieldsync-server did not become ready")
    }

    /// The server command on `port`, with this server's data directory and environment.
    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(bin("fieldsync-server"));
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--data"])
            .arg(self.data.path())
            .env_remove("FIELDSYNC_DATABASE");
        if let Some(db) = &self.database {
            cmd.args(["--database", &db.url()]);
        }
        cmd.env("FIELDSYNC_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's peak resident memory so far, in bytes (`VmHWM` of
    /// `/proc/PID/status`); `None` when it is not running or not on Linux.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Kill the process (SIGKILL) without any chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Ask the process to stop (SIGTERM) and wait, at most 30 s, for it to
    /// exit; returns its exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the server is not running");
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let mut exit = None;
        wait_until(Duration::from_secs(30), || {
            exit = child.try_wait().ok().flatten();
            exit.is_some()
        });
        if let Some(exit) = exit {
            return Ok(exit);
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("fieldsync-server did not stop within 30 s of SIGTERM")
    }

    /// Start again on the same data directory and port (if it is still free).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let port = self.port;
        let child = self.command(port).spawn()?;
        self.child = Some(child);
        let url = format!("{}/readyz", self.url());
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        if !wait_until(Duration::from_secs(30), || {
            client
                .get(&url)
                .send()
                .is_ok_and(|r| r.status().is_success())
        }) {
            bail!("restarted server did not become ready");
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One laptop with its own profile directory.
pub struct Device {
    home: TempDir,
    /// Name for messages.
    pub name: String,
    /// How far this laptop's wall clock is off (faketime's form).
    clock: std::sync::Mutex<Option<String>>,
}

impl Device {
    /// A fresh profile.
    pub fn new(name: &str) -> Result<Self> {
        Ok(Self {
            home: tempfile::tempdir()?,
            name: name.to_owned(),
            clock: std::sync::Mutex::default(),
        })
    }

    /// Run this laptop's next commands with its wall clock off by `offset`
    /// (`faketime`'s form: `+3d`, `-72h`), or right again with `None`. The
    /// Debian package `faketime` provides it (`.ci/run` installs it);
    /// monotonic clocks stay real, so timeouts still hold.
    pub fn set_clock(&self, offset: Option<&str>) {
        if let Some(offset) = offset {
            let works = Command::new("faketime")
                .args(["-f", offset, "true"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                works,
                "faketime (Debian package faketime; .ci/run installs it) cannot run with {offset:?}"
            );
        }
        *self.clock.lock().expect("clock") = offset.map(str::to_owned);
    }

    /// The profile directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A `fieldsync` command for this device.
    pub fn cmd(&self) -> Command {
        let offset = self.clock.lock().expect("clock").clone();
        let mut c = match offset {
            Some(offset) => {
                let mut c = Command::new("faketime");
                c.args(["-f", &offset])
                    .arg(bin("fieldsync"))
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                c
            }
            None => Command::new(bin("fieldsync")),
        };
        c.env("FIELDSYNC_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env_remove("RUST_LOG");
        c
    }

    /// Run with arguments (and optional stdin); returns the output whatever
    /// the exit code. A command still running after [`CLI_LIMIT`] is
    /// killed and the test fails naming it.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args);
        if stdin.is_none() {
            c.stdin(Stdio::null());
        }
        let mut c = assert_cmd::Command::from_std(c);
        c.timeout(CLI_LIMIT);
        if let Some(input) = stdin {
            c.write_stdin(input);
        }
        let start = Instant::now();
        let out = c.output().expect("run fieldsync");
        assert!(
            out.status.code().is_some() || start.elapsed() < CLI_LIMIT,
            "{}: fieldsync {} was still running after {CLI_LIMIT:?} and was killed\nstdout: {}\nstderr: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Start a command in the background (stdout and stderr captured);
    /// [`Running::finish`] waits for it, and dropping it kills it.
    pub fn spawn(&self, args: &[&str]) -> Running {
        // Files rather than pipes: nobody reads while it runs, and a full
        // pipe would stop it.
        let outputs = tempfile::tempdir().expect("output directory");
        let file = |name: &str| std::fs::File::create(outputs.path().join(name)).expect(name);
        let child = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("start fieldsync");
        Running {
            child: Some(child),
            outputs,
            what: format!("{}: fieldsync {}", self.name, args.join(" ")),
        }
    }

    /// Run; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{}: fieldsync {} failed ({:?}):\nstdout: {}\nstderr: {}",
            self.name,
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run with `--json` and parse stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "{}: fieldsync {} printed invalid JSON ({e}): {text}",
                self.name,
                args.join(" ")
            )
        })
    }

    /// From an admin's profile: add user `name` (`role`, optionally in
    /// `team` and under `supervisor`) with `password`, and return a fresh
    /// profile of theirs logged in at `server_url`.
    pub fn add_user(
        &self,
        server_url: &str,
        name: &str,
        role: &str,
        (team, supervisor): (Option<&str>, Option<&str>),
        password: &str,
    ) -> Device {
        let mut args = vec![
            "admin",
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ];
        if let Some(t) = team {
            args.extend(["--team", t]);
        }
        if let Some(s) = supervisor {
            args.extend(["--supervisor", s]);
        }
        let out = self.run_with_stdin(&args, Some(password));
        assert!(out.status.success(), "user add {name}: {}", stderr(&out));
        let d = Device::new(name).expect("profile");
        d.login(server_url, name, password);
        d
    }

    /// Log in with a password on stdin.
    pub fn login(&self, server_url: &str, user: &str, password: &str) {
        let out = self.run_with_stdin(
            &[
                "login",
                "--server",
                server_url,
                "--user",
                user,
                "--password-stdin",
            ],
            Some(password),
        );
        assert!(
            out.status.success(),
            "{}: login as {user} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// On a fresh server: team `north`, rep `li.wei` (password `password`) in
/// it, logged in on a new laptop that has added customer "Acme Trading".
pub fn rep_with_customer(server: &TestServer, password: &str) -> Device {
    let admin = Device::new("admin").expect("profile");
    admin.login(&server.url(), "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north"]);
    let rep = admin.add_user(
        &server.url(),
        "li.wei",
        "rep",
        (Some("north"), None),
        password,
    );
    rep.ok(&[
        "customer",
        "add",
        "Acme Trading",
        "--lat",
        "31.2304",
        "--lon",
        "121.4737",
    ]);
    rep
}

/// The arguments of a `visit log` to the customer matching `customer`,
/// tagged with `outcome` (at a fixed time, without a position).
pub fn visit_log<'a>(customer: &'a str, outcome: &'a str) -> [&'a str; 13] {
    [
        "visit",
        "log",
        customer,
        "--at",
        "2026-11-02T09:00:00Z",
        "--minutes",
        "30",
        "--purpose",
        "drop-in",
        "--outcome",
        outcome,
        "--reason",
        "GPS off",
    ]
}

/// A `fieldsync` command running in the background ([`Device::spawn`]).
pub struct Running {
    child: Option<Child>,
    outputs: TempDir,
    what: String,
}

impl Running {
    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait for it to exit, at most [`CLI_LIMIT`] (then it is killed and
    /// the test fails naming it), and return its output.
    pub fn finish(mut self) -> Output {
        let mut child = self.child.take().expect("not finished yet");
        let exited = wait_until(CLI_LIMIT, || matches!(child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = child.kill();
        }
        let status = child.wait().expect("collect the exit status");
        let read = |name: &str| std::fs::read(self.outputs.path().join(name)).unwrap_or_default();
        let out = Output {
            status,
            stdout: read("stdout"),
            stderr: read("stderr"),
        };
        assert!(
            exited,
            "{} was still running after {CLI_LIMIT:?} and was killed\nstderr: {}",
            self.what,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Exit code of an output (-1 when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run each test `fn name(store: StoreKind)` once per store, as
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::StoreKind::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$name($crate::StoreKind::Postgres);
            }
        }
    )*};
}
