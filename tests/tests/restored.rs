//! A profile restored from a backup, or copied to a second laptop, sends a
//! history the server has another version of. `fieldsync sync` notices
//! (`device_diverged`), registers the laptop as a new device of the same
//! user, renumbers its pending changes for it and sends them: everything
//! arrives once, nothing is left behind, nothing is asked of the user.

use fieldsync_e2e::{
    ADMIN_PASSWORD, Device, FaultProxy, StoreKind, TestServer, code, on_both_stores,
    rep_with_customer, stderr, visit_log,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const PW: &str = "correct horse battery";

on_both_stores!(
    a_laptop_restored_from_a_backup_sends_its_new_visits_once_without_help,
    a_restored_backup_with_pending_work_and_a_new_customer_loses_and_doubles_nothing,
    one_profile_on_two_laptops_at_once_ends_as_two_devices_with_every_visit_once,
);

/// `visit log` to the customer matching `customer`, tagged `outcome`.
fn log_visit(d: &Device, customer: &str, outcome: &str) {
    d.ok(&visit_log(customer, outcome));
}

/// li.wei's laptop logs and syncs `before` visits, is backed up, then
/// logs and syncs `after` more: a backup the server has moved past.
struct MovedOn {
    server: TestServer,
    /// The original laptop.
    rep: Device,
    /// The backup file, in `_dir` (which deletes it when dropped).
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn backed_up_then_moved_on(store: StoreKind, before: u32, after: u32) -> MovedOn {
    let server = TestServer::start_on(store).unwrap();
    let rep = rep_with_customer(&server, PW);
    for i in 1..=before {
        log_visit(&rep, "acme", &format!("before the backup {i}"));
    }
    rep.ok(&["sync"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("li.wei.db");
    backup(&rep, &file);
    for i in 1..=after {
        log_visit(&rep, "acme", &format!("after the backup {i}"));
    }
    rep.ok(&["sync"]);
    MovedOn {
        server,
        rep,
        file,
        _dir: dir,
    }
}

/// Add customer "Beta Logistics" (pending).
fn add_beta(d: &Device) {
    d.ok(&[
        "customer",
        "add",
        "Beta Logistics",
        "--lat",
        "31.20",
        "--lon",
        "121.40",
    ]);
}

fn backup(d: &Device, file: &Path) {
    d.ok(&["backup", file.to_str().unwrap()]);
}

/// A new laptop holding the backup `file`.
fn restore(name: &str, file: &Path) -> Device {
    let laptop = Device::new(name).unwrap();
    laptop.ok(&["restore", file.to_str().unwrap()]);
    laptop
}

fn status(d: &Device) -> Value {
    d.json(&["status"])
}

/// How many times each visit outcome appears in a laptop's visit list.
fn outcomes(d: &Device) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for v in d.json(&["visit", "list"]).as_array().unwrap() {
        let o = v["outcome"].as_str().unwrap_or_default().to_owned();
        *seen.entry(o).or_insert(0) += 1;
    }
    seen
}

/// An administrator's laptop.
fn hq(server: &TestServer) -> Device {
    let admin = Device::new("hq").unwrap();
    admin.login(&server.url(), "admin", ADMIN_PASSWORD);
    admin
}

/// li.wei's devices as the server lists them.
fn devices(hq: &Device) -> Vec<Value> {
    hq.json(&["admin", "device", "list", "--user", "li.wei"])
        .as_array()
        .unwrap()
        .clone()
}

/// What the server holds for li.wei, seen from a fresh laptop of theirs.
fn server_outcomes(server: &TestServer) -> BTreeMap<String, usize> {
    let fresh = Device::new("fresh laptop").unwrap();
    fresh.login(&server.url(), "li.wei", PW);
    fresh.ok(&["sync"]);
    outcomes(&fresh)
}

fn problems(d: &Device) -> usize {
    d.json(&["problems", "list"]).as_array().unwrap().len()
}

/// Point a profile at another server address (a proxy in front of it).
fn point_at(d: &Device, url: &str) {
    let path = d.home().join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["server"] = Value::from(url);
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
}

fn a_laptop_restored_from_a_backup_sends_its_new_visits_once_without_help(store: StoreKind) {
    // Three visits before the backup; the old laptop syncs two more, then
    // its disk dies.
    let MovedOn {
        server,
        rep,
        file,
        _dir,
    } = backed_up_then_moved_on(store, 3, 2);
    let old_device = status(&rep)["device_id"].clone();
    drop(rep);

    let laptop = restore("replacement laptop", &file);
    log_visit(&laptop, "acme", "restored 1");
    log_visit(&laptop, "acme", "restored 2");
    let out = laptop.run(&["sync"]);
    let said = stderr(&out);
    assert_eq!(code(&out), 0, "{said}");
    assert!(
        said.contains(
            "this laptop was restored from a backup: registered as a new device, 2 changes sent"
        ),
        "{said}"
    );

    // The new device, and when it was repaired.
    let st = status(&laptop);
    assert_eq!(st["pending_ops"], 0, "{st}");
    assert_eq!(st["problems"], 0, "{st}");
    assert_ne!(st["device_id"], old_device, "{st}");
    assert_eq!(st["device_repaired"]["device_id"], st["device_id"], "{st}");
    assert_eq!(
        st["device_repaired"]["previous_device_id"], old_device,
        "{st}"
    );
    assert!(st["device_repaired"]["at"].is_string(), "{st}");
    assert!(st["device_repair_underway"].is_null(), "{st}");
    let shown = laptop.ok(&["status"]);
    assert!(shown.contains("divergence repaired"), "{shown}");

    // The laptop re-pulled what its backup lacked: all 7 visits, once.
    let here = outcomes(&laptop);
    assert_eq!(here.len(), 7, "{here:?}");
    assert!(here.values().all(|n| *n == 1), "{here:?}");
    let there = server_outcomes(&server);
    assert_eq!(there, here);
    assert_eq!(problems(&laptop), 0);

    // It carries on as the new device.
    log_visit(&laptop, "acme", "next day");
    let out = laptop.run(&["sync"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stderr(&out).contains("restored"), "{}", stderr(&out));
    assert_eq!(server_outcomes(&server).len(), 8);
}

fn a_restored_backup_with_pending_work_and_a_new_customer_loses_and_doubles_nothing(
    store: StoreKind,
) {
    let server = TestServer::start_on(store).unwrap();
    // The customer and three visits are still pending when the backup is taken.
    let rep = rep_with_customer(&server, PW);
    for i in 1..=3 {
        log_visit(&rep, "acme", &format!("pending in the backup {i}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("li.wei.db");
    backup(&rep, &file);
    log_visit(&rep, "acme", "after the backup");
    rep.ok(&["sync"]);
    drop(rep);

    // The restored laptop adds a customer and visits it: the customer's
    // creation is among the changes the server numbered differently.
    let laptop = restore("replacement laptop", &file);
    add_beta(&laptop);
    log_visit(&laptop, "beta", "new customer visited");
    log_visit(&laptop, "acme", "restored");
    let out = laptop.run(&["sync", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sum: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The customer and three visits the server had already, answered as
    // replays before the divergence; then the three new changes.
    assert_eq!(sum["pushed"], 7, "{sum}");
    assert_eq!(sum["new_device"]["sent"], 3, "{sum}");
    assert_eq!(sum["rejected"], 0, "{sum}");
    assert_eq!(sum["pending_ops"], 0, "{sum}");

    let there = server_outcomes(&server);
    assert_eq!(there.len(), 6, "{there:?}");
    assert!(there.values().all(|n| *n == 1), "{there:?}");
    assert_eq!(there.get("new customer visited"), Some(&1));
    assert_eq!(outcomes(&laptop), there);
    assert_eq!(problems(&laptop), 0);
}

fn one_profile_on_two_laptops_at_once_ends_as_two_devices_with_every_visit_once(store: StoreKind) {
    let server = TestServer::start_on(store).unwrap();
    let rep = rep_with_customer(&server, PW);
    rep.ok(&["sync"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    backup(&rep, &file);
    let copy = restore("second laptop", &file);

    // A day of visits on each, syncing as they go, in turns.
    for round in 0..4 {
        for (name, laptop) in [("first", &rep), ("second", &copy)] {
            log_visit(laptop, "acme", &format!("{name} {round}a"));
            log_visit(laptop, "acme", &format!("{name} {round}b"));
            let out = laptop.run(&["sync"]);
            assert_eq!(code(&out), 0, "{name} round {round}: {}", stderr(&out));
        }
    }
    for laptop in [&rep, &copy] {
        laptop.ok(&["sync"]);
        assert_eq!(status(laptop)["pending_ops"], 0);
        assert_eq!(problems(laptop), 0);
    }
    let (a, b) = (status(&rep), status(&copy));
    assert_ne!(a["device_id"], b["device_id"], "each is its own device");
    assert!(b["device_repaired"].is_object(), "{b}");
    let admin = hq(&server);
    let listed = devices(&admin);
    assert_eq!(listed.len(), 2, "{listed:?}");

    let there = server_outcomes(&server);
    assert_eq!(there.len(), 16, "{there:?}");
    assert!(there.values().all(|n| *n == 1), "{there:?}");
    assert_eq!(outcomes(&rep), there);
    assert_eq!(outcomes(&copy), there);
}

/// The restored `laptop` logs two visits and syncs through a proxy: the
/// server registers the new device, its answer never arrives, and the sync
/// is killed (SIGKILL) while waiting for it. The profile still points at
/// the proxy, which forwards everything from now on.
fn killed_while_registering(server: &TestServer, laptop: &Device) -> FaultProxy {
    log_visit(laptop, "acme", "restored 1");
    log_visit(laptop, "acme", "restored 2");
    let proxy = FaultProxy::start(server.port()).unwrap();
    point_at(laptop, &proxy.url());
    proxy.hold_answers("POST /v1/auth/devices", 1);
    let sync = laptop.spawn(&["sync"]);
    assert!(
        fieldsync_e2e::wait_until(Duration::from_mins(1), || proxy.holds_done() == 1),
        "the registration was never answered"
    );
    drop(sync);
    proxy
}

#[test]
fn a_sync_killed_while_registering_the_new_device_is_finished_by_the_next() {
    // (`_dir` holds the backup: bound, not dropped.)
    let MovedOn {
        server, file, _dir, ..
    } = backed_up_then_moved_on(StoreKind::Sqlite, 0, 1);

    let laptop = restore("replacement laptop", &file);
    let _proxy = killed_while_registering(&server, &laptop);
    let st = status(&laptop);
    let underway = st["device_repair_underway"]["device_id"].clone();
    assert!(underway.is_string(), "{st}");
    assert_eq!(st["pending_ops"], 2, "{st}");

    // The next sync registers the same device again and sends the visits.
    let out = laptop.run(&["sync"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("registered as a new device, 2 changes sent"),
        "{}",
        stderr(&out)
    );
    let st = status(&laptop);
    assert_eq!(st["device_id"], underway, "{st}");
    assert_eq!(st["device_repaired"]["device_id"], underway, "{st}");
    assert_eq!(st["pending_ops"], 0, "{st}");
    let listed = devices(&hq(&server));
    assert_eq!(
        listed.len(),
        2,
        "the retry registered the same device: {listed:?}"
    );
    let there = server_outcomes(&server);
    assert_eq!(there.len(), 3, "{there:?}");
    assert!(there.values().all(|n| *n == 1), "{there:?}");
}

#[test]
fn visits_refused_because_their_customer_was_held_up_are_sent_again_after_the_repair() {
    // (`_dir` holds the backup: bound, not dropped.)
    let MovedOn {
        server, file, _dir, ..
    } = backed_up_then_moved_on(StoreKind::Sqlite, 0, 1);

    let laptop = restore("replacement laptop", &file);
    add_beta(&laptop);
    log_visit(&laptop, "beta", "held up");
    // As a server before divergences were told apart answered: the visit
    // was refused `not_found`, its customer's creation stuck behind the
    // divergence. And a problem of its own, which stays.
    let db = rusqlite::Connection::open(laptop.home().join("fieldsync.db")).unwrap();
    let (seq, op_id, record, op): (i64, String, String, String) = db
        .query_row(
            "SELECT device_seq, op_id, record_id, op FROM outbox WHERE collection = 'visits'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let refuse = "INSERT INTO problems (op_id, collection, record_id, op, code, message, field, created_at)
                  VALUES (?1, 'visits', ?2, ?3, 'not_found', 'customer does not exist', 'customer_id', '2026-11-02T10:00:00.000Z')";
    db.execute(refuse, rusqlite::params![op_id, record, op])
        .unwrap();
    db.execute("DELETE FROM outbox WHERE device_seq = ?1", [seq])
        .unwrap();
    let mut stranger: Value = serde_json::from_str(&op).unwrap();
    let nowhere = uuid::Uuid::now_v7().to_string();
    stranger["fields"]["customer_id"] = Value::from(nowhere);
    stranger["record_id"] = Value::from(uuid::Uuid::now_v7().to_string());
    db.execute(
        refuse,
        rusqlite::params![
            uuid::Uuid::now_v7().to_string(),
            stranger["record_id"].as_str().unwrap(),
            stranger.to_string()
        ],
    )
    .unwrap();
    drop(db);
    assert_eq!(problems(&laptop), 2);

    let out = laptop.run(&["sync", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sum: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sum["new_device"]["retried_problems"], 1, "{sum}");
    assert_eq!(sum["new_device"]["sent"], 2, "{sum}");
    assert_eq!(sum["rejected"], 0, "{sum}");
    let open = laptop.json(&["problems", "list"]);
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open[0]["record_id"], stranger["record_id"], "{open}");
    let all = laptop.json(&["problems", "list", "--all"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|p| p["record_id"].as_str() == Some(record.as_str())
                && p["resolution"] == "retried"),
        "{all}"
    );
    let there = server_outcomes(&server);
    assert_eq!(there.get("held up"), Some(&1), "{there:?}");
    assert_eq!(there.len(), 2, "{there:?}");
}

#[test]
fn changes_sent_by_a_revoked_device_and_sent_again_after_a_new_login_apply_once() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server, PW);
    log_visit(&rep, "acme", "pending 1");
    log_visit(&rep, "acme", "pending 2");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("li.wei.db");
    backup(&rep, &file);
    // The laptop syncs, then is stolen; an administrator revokes it.
    rep.ok(&["sync"]);
    let old = status(&rep)["device_id"].as_str().unwrap().to_owned();
    drop(rep);
    let admin = hq(&server);
    admin.ok(&["admin", "device", "revoke", &old]);

    // The backup, restored, holds the three changes as pending: its token
    // is refused, and a login makes it a new device that sends them again.
    let laptop = restore("replacement laptop", &file);
    let out = laptop.run(&["sync"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    laptop.login(&server.url(), "li.wei", PW);
    let out = laptop.run(&["sync", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sum: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sum["pushed"], 3, "{sum}");
    assert_eq!(sum["rejected"], 0, "{sum}");
    let there = server_outcomes(&server);
    assert_eq!(there.len(), 2, "{there:?}");
    assert!(
        there.values().all(|n| *n == 1),
        "a change applied twice: {there:?}"
    );
    let customers = laptop.json(&["customer", "list"]);
    assert_eq!(customers.as_array().unwrap().len(), 1, "{customers}");
}

/// Import `n` visits to Acme, tagged `{tag} {i}` (pending, not synced).
fn import_visits(d: &Device, n: u32, tag: &str) {
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let body: Vec<String> = (0..n)
        .map(|i| {
            let at = base + chrono::Duration::minutes(7 * i64::from(i));
            format!(
                r#"{{"customer": "acme", "at": "{}", "minutes": 30, "purpose": "demo", "outcome": "{tag} {i}", "lat": 31.2305, "lon": 121.4738}}"#,
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .collect();
    let file = d.home().join("visits.jsonl");
    std::fs::write(&file, body.join("\n")).unwrap();
    assert_eq!(
        d.json(&["visit", "import", file.to_str().unwrap()])["imported"],
        n
    );
}

#[test]
fn syncs_killed_at_any_moment_of_the_recovery_end_with_one_new_device_and_every_visit_once() {
    // (`_dir` holds the backup: bound, not dropped.)
    let MovedOn {
        server, file, _dir, ..
    } = backed_up_then_moved_on(StoreKind::Sqlite, 0, 1);

    let laptop = restore("replacement laptop", &file);
    import_visits(&laptop, 500, "restored");
    // kill -9 at growing delays until a sync finishes by itself: before,
    // during and after the divergence, the registration, the renumbering
    // and the pushes that follow.
    let (mut kills, mut mid_recovery) = (0, 0);
    for step in 1..=80u64 {
        let mut sync = laptop.spawn(&["sync"]);
        std::thread::sleep(Duration::from_millis(6 * step));
        if !sync.is_running() {
            let out = sync.finish();
            assert_eq!(code(&out), 0, "{}", stderr(&out));
            break;
        }
        drop(sync);
        kills += 1;
        if status(&laptop)["device_repair_underway"].is_object() {
            mid_recovery += 1;
        }
    }
    eprintln!("{kills} syncs killed, {mid_recovery} of them in the middle of the recovery");
    let out = laptop.run(&["sync"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let st = status(&laptop);
    assert_eq!(st["pending_ops"], 0, "{st}");
    assert_eq!(st["problems"], 0, "{st}");
    assert!(st["device_repaired"].is_object(), "{st}");
    assert!(st["device_repair_underway"].is_null(), "{st}");
    let listed = devices(&hq(&server));
    assert_eq!(
        listed.len(),
        2,
        "one new device, however often killed: {listed:?}"
    );

    let there = server_outcomes(&server);
    assert_eq!(there.len(), 501, "{} visits", there.len());
    assert!(there.values().all(|n| *n == 1), "a visit doubled");
    assert_eq!(outcomes(&laptop), there);
}

#[test]
fn a_backup_taken_in_the_middle_of_a_recovery_recovers_as_a_device_of_its_own() {
    let MovedOn {
        server, file, _dir, ..
    } = backed_up_then_moved_on(StoreKind::Sqlite, 0, 1);
    let first = restore("first replacement", &file);
    // Backed up then: the backup notes a device about to be someone's.
    let _proxy = killed_while_registering(&server, &first);
    let mid = file.with_file_name("mid-recovery.db");
    backup(&first, &mid);
    point_at(&first, &server.url());
    first.ok(&["sync"]);
    let taken = status(&first)["device_id"].clone();

    // Restored elsewhere, it finds that device taken and registers another.
    let second = restore("second replacement", &mid);
    point_at(&second, &server.url());
    assert!(status(&second)["device_repair_underway"].is_object());
    log_visit(&second, "acme", "second laptop");
    let out = second.run(&["sync"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let st = status(&second);
    assert_ne!(st["device_id"], taken, "{st}");
    assert_eq!(st["pending_ops"], 0, "{st}");
    assert_eq!(st["problems"], 0, "{st}");
    assert_eq!(devices(&hq(&server)).len(), 3);
    let there = server_outcomes(&server);
    assert_eq!(there.len(), 4, "{there:?}");
    assert!(there.values().all(|n| *n == 1), "{there:?}");
}

#[test]
fn random_backups_restores_and_syncs_of_one_profile_deliver_every_visit_once() {
    // Deterministic for a seed (one command at a time): these seeds
    // include laptops that became new devices.
    let repaired: usize = (1..=8).map(random_history).sum();
    eprintln!("{repaired} laptops became new devices");
    assert!(
        repaired > 0,
        "no history diverged: the scenarios test nothing"
    );
}

/// One profile's life, chosen by `seed`: visits logged, syncs, backups
/// and restores onto new laptops (at most four), in a random order. All
/// the laptops stay in use; in the end each syncs until nothing is
/// pending, and every visit logged anywhere is on the server once, and on
/// every laptop. Returns how many laptops became new devices.
fn random_history(seed: u64) -> usize {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = TestServer::start().unwrap();
    // The customer is still pending: its creation travels in the backups.
    let mut laptops = vec![rep_with_customer(&server, PW)];
    let dir = tempfile::tempdir().unwrap();
    let mut backups = Vec::new();
    let mut logged = BTreeMap::new();
    let mut trace = Vec::new();
    for step in 0..40 {
        let k = rng.gen_range(0..laptops.len());
        match rng.gen_range(0..10) {
            0..=4 => {
                let tag = format!("seed {seed} step {step}");
                log_visit(&laptops[k], "acme", &tag);
                logged.insert(tag, 1);
                trace.push(format!("log on {k}"));
            }
            5..=7 => {
                let out = laptops[k].run(&["sync"]);
                trace.push(format!("sync {k}"));
                assert_eq!(code(&out), 0, "{}\n{trace:?}", stderr(&out));
            }
            8 => {
                let file = dir.path().join(format!("backup-{step}.db"));
                backup(&laptops[k], &file);
                backups.push(file);
                trace.push(format!("backup {k}"));
            }
            _ if !backups.is_empty() && laptops.len() < 4 => {
                let b = rng.gen_range(0..backups.len());
                trace.push(format!("restore backup {b} as {}", laptops.len()));
                laptops.push(restore(&format!("laptop {}", laptops.len()), &backups[b]));
            }
            _ => {}
        }
    }
    for round in 0..2 {
        for (k, laptop) in laptops.iter().enumerate() {
            let out = laptop.run(&["sync"]);
            assert_eq!(
                code(&out),
                0,
                "final sync {round} of {k}: {}\n{trace:?}",
                stderr(&out)
            );
        }
    }
    assert_eq!(server_outcomes(&server), logged, "seed {seed}: {trace:?}");
    for (k, laptop) in laptops.iter().enumerate() {
        let st = status(laptop);
        assert_eq!(st["pending_ops"], 0, "laptop {k}: {st}\n{trace:?}");
        assert_eq!(st["problems"], 0, "laptop {k}: {st}\n{trace:?}");
        assert_eq!(
            outcomes(laptop),
            logged,
            "laptop {k}, seed {seed}: {trace:?}"
        );
    }
    laptops
        .iter()
        .filter(|l| status(l)["device_repaired"].is_object())
        .count()
}
