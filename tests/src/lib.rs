//! End-to-end harness: the real `fieldsync-server` and `fieldsync` binaries
//! talking over loopback.
//!
//! * [`TestServer`] starts the server binary on a free 127.0.0.1 port with a
//!   temporary data directory and kills it when dropped.
//! * [`Device`] is one laptop: its own `FIELDSYNC_HOME`, `NO_COLOR=1`, `TZ=UTC`.
//! * [`FaultProxy`] sits between a device and the server and can cut a
//!   connection after the server has answered but before the client reads
//!   the answer.

mod proxy;

pub use proxy::FaultProxy;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

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

/// A running `fieldsync-server` process.
pub struct TestServer {
    child: Option<Child>,
    data: TempDir,
    port: u16,
    extra_env: Vec<(String, String)>,
}

impl TestServer {
    /// Start a server on a fresh data directory.
    pub fn start() -> Result<Self> {
        Self::start_with(Vec::new())
    }

    /// Start a server with extra environment variables.
    pub fn start_with(extra_env: Vec<(String, String)>) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let mut s = Self {
            child: None,
            data,
            port: 0,
            extra_env,
        };
        s.spawn()?;
        Ok(s)
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
            .env("FIELDSYNC_ADMIN_PASSWORD", ADMIN_PASSWORD)
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
}

impl Device {
    /// A fresh profile.
    pub fn new(name: &str) -> Result<Self> {
        Ok(Self {
            home: tempfile::tempdir()?,
            name: name.to_owned(),
        })
    }

    /// The profile directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A `fieldsync` command for this device.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("fieldsync"));
        c.env("FIELDSYNC_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env_remove("RUST_LOG");
        c
    }

    /// Run with arguments (and optional stdin); returns the output whatever the exit code.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c.spawn().expect("spawn fieldsync");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("wait fieldsync")
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

/// Exit code of an output (-1 when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
