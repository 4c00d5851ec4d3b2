//! Crash safety: SIGKILL the real binary in the middle of a stream of
//! pushes, restart it on the same data directory, and find every
//! acknowledged op there exactly once.

use crate::helpers::{customer_fields, eventually, json_of, login_at, upserts};
use chrono::Utc;
use reqwest::blocking::Client;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use sync_protocol::wire::{PushRequest, PushResponse};

/// The server process, killed when dropped.
struct ServerProcess {
    child: Child,
    base: String,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path) -> ServerProcess {
    start_with(data, Some("admin-password-1"), &mpsc::channel().0)
}

/// Start the binary; every stderr line is also sent to `lines`.
fn start_with(
    data: &std::path::Path,
    admin_password: Option<&str>,
    lines: &mpsc::Sender<String>,
) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"));
    cmd.env_remove("FIELDSYNC_ADMIN_PASSWORD");
    if let Some(pw) = admin_password {
        cmd.env("FIELDSYNC_ADMIN_PASSWORD", pw);
    }
    let lines = lines.clone();
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fieldsync-server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Read every line so the server never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            if let Some(url) = line.strip_prefix("fieldsync-server listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server announced its address");
    ServerProcess { child, base }
}

#[test]
fn every_acknowledged_op_survives_a_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start(&data);
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let admin = login_at(&client, &server.base, "admin", "admin-password-1", None);
    let r = client
        .post(format!("{}/v1/admin/users", server.base))
        .bearer_auth(&admin.token)
        .json(&serde_json::json!({"username": "ann", "password": "ann-password", "role": "rep"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut rep = login_at(&client, &server.base, "ann", "ann-password", None);
    let ops: Vec<_> = (0..400)
        .map(|i| rep.create("customers", customer_fields(&format!("C{i}"))).1)
        .collect();

    // Stream pushes of 2 ops from a thread, reporting each acknowledgement.
    let (acks_tx, acks_rx) = mpsc::channel::<u64>();
    let (base, token, clock) = (
        server.base.clone(),
        rep.token.clone(),
        rep.clock.now(Utc::now()),
    );
    let stream_ops = ops.clone();
    let pusher = std::thread::spawn(move || {
        let client = Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        for chunk in stream_ops.chunks(2) {
            let Ok(r) = client
                .post(format!("{base}/v1/sync/push"))
                .bearer_auth(&token)
                .json(&PushRequest {
                    ops: chunk.to_vec(),
                    clock,
                })
                .send()
            else {
                return;
            };
            let Ok(r) = r.json::<PushResponse>() else {
                return;
            };
            if acks_tx.send(r.acked_through).is_err() {
                return;
            }
        }
    });
    let mut acked = 0;
    eventually(Duration::from_secs(30), || {
        while let Ok(a) = acks_rx.try_recv() {
            acked = acked.max(a);
        }
        (acked >= 20).then_some(())
    });
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    let _ = pusher.join();
    while let Ok(a) = acks_rx.try_recv() {
        acked = acked.max(a);
    }
    drop(server);

    let server = start(&data);
    let mut admin = login_at(&client, &server.base, "admin", "admin-password-1", None);
    let mut rep = login_at(&client, &server.base, "ann", "ann-password", Some(rep.id));
    let r: PushResponse = json_of(
        client
            .post(format!("{}/v1/sync/push", server.base))
            .bearer_auth(&rep.token)
            .json(&PushRequest {
                ops: vec![],
                clock: rep.clock.now(Utc::now()),
            })
            .send()
            .unwrap(),
        200,
    );
    assert!(
        r.acked_through >= acked,
        "server lost acknowledged ops: has {}, acknowledged {acked}",
        r.acked_through
    );
    let stored = r.acked_through as usize;

    let app_view = |admin: &mut crate::helpers::Device| {
        let mut all = Vec::new();
        loop {
            let page: sync_protocol::wire::PullResponse = json_of(
                client
                    .post(format!("{}/v1/sync/pull", server.base))
                    .bearer_auth(&admin.token)
                    .json(&serde_json::json!({"cursor": admin.cursor}))
                    .send()
                    .unwrap(),
                200,
            );
            admin.cursor = page.cursor;
            all.extend(page.changes);
            if !page.more {
                return all;
            }
        }
    };
    let changes = app_view(&mut admin);
    let customers: Vec<_> = upserts(&changes)
        .into_iter()
        .filter(|r| r.collection == "customers")
        .map(|r| r.id)
        .collect();
    assert_eq!(
        customers.len(),
        stored,
        "every stored op is there exactly once"
    );
    for op in &ops[..stored] {
        assert!(customers.contains(&op.record_id));
    }
    // Resending everything applies only what was missing.
    for chunk in ops.chunks(100) {
        let clock = rep.clock.now(Utc::now());
        let _: PushResponse = json_of(
            client
                .post(format!("{}/v1/sync/push", server.base))
                .bearer_auth(&rep.token)
                .json(&PushRequest {
                    ops: chunk.to_vec(),
                    clock,
                })
                .send()
                .unwrap(),
            200,
        );
    }
    admin.cursor = 0;
    let changes = app_view(&mut admin);
    assert_eq!(
        upserts(&changes)
            .into_iter()
            .filter(|r| r.collection == "customers")
            .count(),
        ops.len()
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(&dir.path().join("data"));
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(
        client
            .get(format!("{}/healthz", server.base))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = eventually(Duration::from_secs(30), || server.child.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_database_from_a_newer_server_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let conn = rusqlite::Connection::open(data.join("server.db")).unwrap();
    conn.execute_batch("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT ''); INSERT INTO schema_migrations (version, name) VALUES (999, 'future');")
        .unwrap();
    drop(conn);
    let out = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this program knows"), "{err}");
}

#[test]
fn help_and_version_work() {
    let help = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--data") && text.contains("--bind") && text.contains("--config"),
        "{text}"
    );
    let version = Command::new(env!("CARGO_BIN_EXE_fieldsync-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("fieldsync-server "));
}

#[test]
fn the_first_start_prints_a_generated_admin_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tx, rx) = mpsc::channel();
    let server = start_with(&data, None, &tx);
    let line = eventually(Duration::from_secs(10), || {
        rx.try_iter()
            .find(|l| l.starts_with("created user admin with password "))
    });
    assert!(line.ends_with(" (shown once)"), "{line}");
    let password = line
        .trim_start_matches("created user admin with password ")
        .trim_end_matches(" (shown once)")
        .to_owned();
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    login_at(&client, &server.base, "admin", &password, None);
    drop(server);
    let (tx, rx) = mpsc::channel();
    let server = start_with(&data, None, &tx);
    login_at(&client, &server.base, "admin", &password, None);
    drop(server);
    assert!(
        rx.try_iter().all(|l| !l.contains("created user admin")),
        "shown only on the first start"
    );
}
