//! Several `fieldsync` commands on one profile at once: a write waits for
//! the profile's writer (saying so after about a second) and either saves
//! or exits 8 having saved nothing; reads never wait; one sync at a time.

use fieldsync_e2e::{Device, TestServer, code, rep_with_customer, stderr};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

/// What a write that waits for the profile prints.
const WAITING: &str = "waiting for another fieldsync command on this profile…";

/// Import `n` visits to Acme (pending, not synced).
fn import_visits(rep: &Device, n: u32) {
    let base = chrono::Utc::now() - chrono::Duration::days(90);
    let body: Vec<String> = (0..n)
        .map(|i| {
            let at = base + chrono::Duration::minutes(7 * i64::from(i));
            format!(
                r#"{{"customer": "acme", "at": "{}", "minutes": 30, "purpose": "demo", "outcome": "imported {i}", "lat": 31.2305, "lon": 121.4738}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .collect();
    let file = rep.home().join("visits.jsonl");
    std::fs::write(&file, body.join("\n")).unwrap();
    assert_eq!(
        rep.json(&["visit", "import", file.to_str().unwrap()])["imported"],
        n
    );
}

/// `visit log` to Acme with `outcome` as its tag.
fn log_visit(rep: &Device, extra: &[&str], outcome: &str) -> Output {
    let mut args = extra.to_vec();
    args.extend(fieldsync_e2e::visit_log("acme", outcome));
    rep.run(&args)
}

fn pending(d: &Device) -> u64 {
    d.json(&["status"])["pending_ops"].as_u64().unwrap()
}

/// How many times each outcome appears in a laptop's visit list.
fn outcomes(d: &Device) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for v in d.json(&["visit", "list"]).as_array().unwrap() {
        let o = v["outcome"].as_str().unwrap_or_default().to_owned();
        *seen.entry(o).or_insert(0) += 1;
    }
    seen
}

/// What the server holds for li.wei, seen from a fresh laptop.
fn server_outcomes(server: &TestServer) -> BTreeMap<String, usize> {
    let fresh = Device::new("fresh laptop").unwrap();
    fresh.login(&server.url(), "li.wei", PW);
    fresh.ok(&["sync"]);
    outcomes(&fresh)
}

#[test]
fn fifty_visit_logs_during_a_sync_of_ten_thousand_are_each_saved_and_delivered_once() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    import_visits(&rep, 10_000);
    let mut sync = rep.spawn(&["sync", "--json"]);
    let started = Instant::now();
    let logs = std::thread::scope(|s| {
        let workers: Vec<_> = (0..5)
            .map(|w| {
                let rep = &rep;
                s.spawn(move || {
                    (0..10)
                        .map(|i| {
                            let tag = format!("during sync {w}-{i}");
                            let start = Instant::now();
                            let out = log_visit(rep, &[], &tag);
                            (tag, out, start, start.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let logs: Vec<_> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        logs
    });
    let still_running = sync.is_running();
    let out = sync.finish();
    let sync_took = started.elapsed();
    assert_eq!(code(&out), 0, "the sync: {}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["pushed"].as_u64().unwrap() >= 10_001, "{summary}");
    let mut longest = Duration::ZERO;
    let mut during = 0;
    for (tag, out, start, took) in &logs {
        assert_eq!(code(out), 0, "{tag}: {}", stderr(out));
        longest = longest.max(*took);
        if still_running || *start - started < sync_took {
            during += 1;
        }
    }
    eprintln!(
        "50 visit logs, {during} of them started during a sync of 10,000 ops (which took {sync_took:?}): the longest took {longest:?}"
    );
    assert!(during > 0, "no visit log ran while the sync did");
    // Every one is pending locally once, and the next sync delivers it.
    let local = outcomes(&rep);
    for (tag, ..) in &logs {
        assert_eq!(local.get(tag), Some(&1), "{tag} on the laptop");
    }
    rep.ok(&["sync"]);
    assert_eq!(pending(&rep), 0);
    let remote = server_outcomes(&server);
    assert_eq!(remote.values().sum::<usize>(), 10_050);
    for (tag, ..) in &logs {
        assert_eq!(remote.get(tag), Some(&1), "{tag} on the server");
    }
}

#[test]
fn two_syncs_started_together_send_everything_exactly_once() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    import_visits(&rep, 2_000);
    let first = rep.spawn(&["sync"]);
    let second = rep.spawn(&["sync"]);
    for out in [first.finish(), second.finish()] {
        let err = stderr(&out);
        match code(&out) {
            0 => assert!(err.contains("Synced"), "{err}"),
            8 => assert!(
                err.contains("a sync is already running on this profile"),
                "{err}"
            ),
            other => panic!("exit {other}: {err}"),
        }
        assert!(!err.contains("report this"), "{err}");
    }
    assert_eq!(pending(&rep), 0);
    let again: Value = rep.json(&["sync"]);
    assert_eq!(
        (again["pushed"].as_u64(), again["pulled"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    let remote = server_outcomes(&server);
    assert_eq!(remote.len(), 2_000);
    assert!(remote.values().all(|n| *n == 1), "a visit doubled");
}

#[test]
fn a_sync_login_or_wipe_that_waits_too_long_for_a_running_sync_exits_8() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(rep.home().join("sync.lock"))
        .unwrap();
    lock.lock().unwrap();
    let t = Instant::now();
    let out = rep.run(&["--wait", "2", "sync"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 8, "{err}");
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(
        err.contains("waiting for the sync already running on this profile"),
        "{err}"
    );
    assert!(
        err.contains("error: a sync is already running on this profile"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    // Neither a login (which may re-stamp the outbox) nor a wipe runs
    // under a sync.
    let args = [
        "--wait",
        "1",
        "login",
        "--server",
        &server.url(),
        "--user",
        "li.wei",
        "--password-stdin",
    ];
    let out = rep.run_with_stdin(&args, Some(PW));
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    let out = rep.run(&["--wait", "1", "logout", "--wipe", "--force"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(rep.home().join("fieldsync.db").exists());
    // Unchanged: the customer is still waiting to be sent.
    assert_eq!(pending(&rep), 1);
    assert_eq!(rep.json(&["status"])["logged_in"], true);
    lock.unlock().unwrap();
    rep.ok(&["sync"]);
    assert_eq!(pending(&rep), 0);
}

#[test]
fn a_write_held_up_past_the_limit_saves_nothing_and_reads_never_wait() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    let before = pending(&rep);
    // Another process holds the profile's writer.
    let holder = rusqlite::Connection::open(rep.home().join("fieldsync.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let t = Instant::now();
    let list = rep.run(&["visit", "list", "--json"]);
    assert_eq!(code(&list), 0, "{}", stderr(&list));
    assert!(!stderr(&list).contains("waiting"), "{}", stderr(&list));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a read waited for the writer"
    );

    let t = Instant::now();
    let out = log_visit(&rep, &["--wait", "2"], "held up");
    let err = stderr(&out);
    assert_eq!(code(&out), 8, "{err}");
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert!(err.contains(WAITING), "{err}");
    assert!(err.contains("this change was not saved"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    let json = log_visit(&rep, &["--wait", "1", "--json"], "held up");
    assert_eq!(code(&json), 8);
    let body: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(body["error"]["code"], "profile_busy", "{body}");
    assert_eq!(body["error"]["exit"], 8, "{body}");

    // A sync that cannot store what it pushed or pulled stops, as a sync.
    let out = rep.run(&["--wait", "1", "sync"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 8, "{err}");
    assert!(
        err.contains("error: the sync stopped: another fieldsync command kept this profile busy"),
        "{err}"
    );
    assert_eq!(pending(&rep), before);

    // Released while a write waits: the write goes through.
    let waiting = rep.spawn(&[
        "visit",
        "log",
        "acme",
        "--at",
        "2026-11-02T10:00:00Z",
        "--minutes",
        "30",
        "--purpose",
        "drop-in",
        "--outcome",
        "after the wait",
        "--reason",
        "GPS off",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    holder.execute_batch("ROLLBACK").unwrap();
    let out = waiting.finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains(WAITING), "{}", stderr(&out));

    assert_eq!(pending(&rep), before + 1);
    let seen = outcomes(&rep);
    assert_eq!(seen.get("held up"), None, "{seen:?}");
    assert_eq!(seen.get("after the wait"), Some(&1), "{seen:?}");
}

#[test]
fn a_backup_taken_during_a_sync_holds_every_op_committed_before_it() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    import_visits(&rep, 10_000);
    assert_eq!(code(&log_visit(&rep, &[], "just before")), 0);
    let committed = pending(&rep);
    assert_eq!(committed, 10_002, "the customer and 10,001 visits");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("li.wei.db");

    // Back up once the sync has recorded its first push answer.
    let mut sync = rep.spawn(&["sync"]);
    assert!(fieldsync_e2e::wait_until(Duration::from_mins(1), || {
        pending(&rep) < committed
    }));
    assert!(sync.is_running(), "the sync ended before the backup began");
    let backup = rep.json(&["backup", file.to_str().unwrap()]);
    let out = sync.finish();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    eprintln!("backup during a sync: {backup}");

    // One intact, private file.
    let conn =
        rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    drop(conn);
    assert!(!dir.path().join("li.wei.db-wal").exists());
    assert!(!dir.path().join("li.wei.db.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the backup holds the login token");
    }

    // Restored on a new laptop it holds every op committed before the
    // backup: each visit pending or already in the server's state.
    let laptop = Device::new("replacement laptop").unwrap();
    let restored = laptop.json(&["restore", file.to_str().unwrap()]);
    assert_eq!(restored["user"], "li.wei");
    assert_eq!(restored["pending_ops"], backup["pending_ops"]);
    let pending_in_backup = backup["pending_ops"].as_u64().unwrap();
    assert!(
        pending_in_backup < committed,
        "taken mid-sync, some ops were already answered: {backup}"
    );
    assert_eq!(pending(&laptop), pending_in_backup);
    let seen = outcomes(&laptop);
    assert_eq!(seen.len(), 10_001, "{} visits", seen.len());
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(seen.get("just before"), Some(&1));
    assert_eq!(seen.get("imported 9999"), Some(&1));
    let status = laptop.json(&["status"]);
    assert_eq!(status["user"], "li.wei", "{status}");
    assert_eq!(status["logged_in"], true, "{status}");

    // Its sync sends what the server already has without doubling it.
    laptop.ok(&["sync"]);
    assert_eq!(pending(&laptop), 0);
    let remote = server_outcomes(&server);
    assert_eq!(remote.len(), 10_001);
    assert!(remote.values().all(|n| *n == 1), "a visit doubled");
}

#[test]
fn restore_refuses_what_is_not_a_backup_and_never_overwrites_a_profile() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let fails = |d: &Device, args: &[&str], exit: i32, says: &str| {
        let out = d.run(args);
        let err = stderr(&out);
        assert_eq!(code(&out), exit, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    };

    // Backing up: not into a directory, not onto the store itself, and
    // only a profile that has logged in.
    fails(
        &rep,
        &["backup", dir.path().to_str().unwrap()],
        1,
        "is a directory",
    );
    let own = rep.home().join("fieldsync.db");
    fails(
        &rep,
        &["backup", own.to_str().unwrap()],
        1,
        "this profile's own files",
    );
    let config = rep.home().join("config.json");
    fails(
        &rep,
        &["backup", config.to_str().unwrap()],
        1,
        "this profile's own files",
    );
    fails(
        &rep,
        &["backup", &path("no/such/dir/x.db")],
        1,
        "does not exist",
    );
    let stranger = Device::new("never logged in").unwrap();
    fails(&stranger, &["backup", &path("x.db")], 4, "not logged in");
    assert!(!dir.path().join("x.db").exists());

    // Restoring: only an intact backup, only into an empty profile.
    let good = path("good.db");
    rep.ok(&["backup", &good]);
    let empty = Device::new("empty").unwrap();
    fails(&empty, &["restore", &path("missing.db")], 1, "no such file");
    std::fs::write(path("text.db"), "hello, not a database").unwrap();
    fails(
        &empty,
        &["restore", &path("text.db")],
        1,
        "not a SQLite database",
    );
    fails(
        &empty,
        &["restore", own.to_str().unwrap()],
        1,
        "holds no profile settings",
    );
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(path("cut.db"), &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &empty,
        &["restore", &path("cut.db")],
        1,
        "is not a fieldsync backup",
    );
    assert!(
        std::fs::read_dir(empty.home()).unwrap().next().is_none(),
        "a refused restore wrote into the profile"
    );
    let config_before = std::fs::read(rep.home().join("config.json")).unwrap();
    fails(
        &rep,
        &["restore", &good],
        1,
        "already holds a profile; nothing was changed",
    );
    assert_eq!(
        std::fs::read(rep.home().join("config.json")).unwrap(),
        config_before
    );
    let out = empty.run(&["restore", &good]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Next: fieldsync sync"),
        "{}",
        stderr(&out)
    );
    assert_eq!(outcomes(&empty), outcomes(&rep));
}
