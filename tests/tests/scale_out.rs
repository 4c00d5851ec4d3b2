//! End-to-end: several `fieldsync-server` processes over one PostgreSQL
//! database, and moving a SQLite server onto PostgreSQL.

use chrono::Utc;
use fieldsync_e2e::{ADMIN_PASSWORD, Device, StoreKind, TestServer, code, stderr};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::wire::{
    Change, LoginResponse, PullRequest, PullResponse, PushRequest, PushResponse,
};
use sync_protocol::{DeviceId, HlcClock, Op, OpId, OpKind, RecordId};

const PW: &str = "correct horse battery";

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A device speaking the wire protocol directly (for volume).
struct Wire {
    token: String,
    id: DeviceId,
    seq: u64,
    clock: HlcClock,
}

fn login(c: &Client, base: &str, user: &str, password: &str) -> Wire {
    let r = c
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"username": user, "password": password, "device_name": format!("{user}-laptop")}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 201, "login {user}: {:?}", r.text());
    let l: LoginResponse = r.json().expect("login json");
    let mut clock = HlcClock::new(l.device_id);
    clock.observe(&l.server_clock);
    Wire {
        token: l.token,
        id: l.device_id,
        seq: 0,
        clock,
    }
}

fn add_user(c: &Client, base: &str, admin: &Wire, name: &str, role: &str) {
    let r = c
        .post(format!("{base}/v1/admin/users"))
        .bearer_auth(&admin.token)
        .json(&json!({"username": name, "password": PW, "role": role}))
        .send()
        .expect("add user");
    assert!(r.status().is_success(), "add user {name}: {:?}", r.text());
}

impl Wire {
    fn create_customer(&mut self, name: &str) -> (RecordId, Op) {
        let now = Utc::now();
        let id = RecordId::new_v7(now);
        self.seq += 1;
        let fields = serde_json::from_value(json!({
            "name": name,
            "created_at": "2026-11-28T09:00:00.000Z",
            "location": {"lat": 31.2304, "lon": 121.4737}
        }))
        .expect("fields");
        let op = Op {
            op_id: OpId::new_v7(now),
            device_id: self.id,
            device_seq: self.seq,
            hlc: self.clock.now(now),
            schema_version: SCHEMA_VERSION,
            collection: "customers".into(),
            record_id: id,
            kind: OpKind::Create,
            fields,
            transition: None,
            base: None,
        };
        (id, op)
    }

    fn push(&mut self, c: &Client, base: &str, ops: Vec<Op>) -> PushResponse {
        let clock = self.clock.now(Utc::now());
        let r = c
            .post(format!("{base}/v1/sync/push"))
            .bearer_auth(&self.token)
            .json(&PushRequest { ops, clock })
            .send()
            .expect("push");
        assert_eq!(r.status().as_u16(), 200, "push: {:?}", r.text());
        let r: PushResponse = r.json().expect("push json");
        self.clock.observe(&r.server_clock);
        r
    }

    fn pull_page(&self, c: &Client, base: &str, cursor: u64) -> PullResponse {
        let r = c
            .post(format!("{base}/v1/sync/pull"))
            .bearer_auth(&self.token)
            .json(&PullRequest {
                cursor,
                limit: Some(50),
                checksums: false,
            })
            .send()
            .expect("pull");
        assert_eq!(r.status().as_u16(), 200, "pull: {:?}", r.text());
        r.json().expect("pull json")
    }
}

/// Many reps push through two instances at once while an admin pulls
/// continuously from both in turn; the puller must end with every record
/// exactly once, its cursor never passing a change it has not seen.
#[test]
fn concurrent_pushers_on_two_instances_never_make_a_puller_skip_a_change() {
    const REPS: usize = 8;
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 3;
    let a = TestServer::start_on(StoreKind::Postgres).expect("instance a");
    let b = a.another_instance().expect("instance b");
    let bases = [a.url(), b.url()];
    let c = http();
    let admin = login(&c, &bases[0], "admin", ADMIN_PASSWORD);
    for i in 0..REPS {
        add_user(&c, &bases[i % 2], &admin, &format!("rep{i}"), "rep");
    }
    let finished = AtomicUsize::new(0);
    let (pushed, pulled) = std::thread::scope(|s| {
        let pushers: Vec<_> = (0..REPS)
            .map(|i| {
                let (bases, finished) = (&bases, &finished);
                s.spawn(move || {
                    let c = http();
                    let mut dev = login(&c, &bases[i % 2], &format!("rep{i}"), PW);
                    let mut ids = Vec::new();
                    for batch in 0..BATCHES {
                        let ops: Vec<Op> = (0..PER_BATCH)
                            .map(|k| {
                                let (id, op) = dev.create_customer(&format!("c-{i}-{batch}-{k}"));
                                ids.push(id);
                                op
                            })
                            .collect();
                        // Each push goes to the other instance than the last.
                        let r = dev.push(&c, &bases[(i + batch) % 2], ops);
                        assert_eq!(r.outcomes.len(), PER_BATCH);
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    ids
                })
            })
            .collect();
        let puller = s.spawn(|| {
            let c = http();
            let mut cursor = 0;
            let mut got: Vec<(u64, String, RecordId)> = Vec::new();
            let mut turn = 0;
            loop {
                let done = finished.load(Ordering::SeqCst) == REPS;
                let page = admin.pull_page(&c, &bases[turn % 2], cursor);
                turn += 1;
                for ch in &page.changes {
                    assert!(ch.seq() > cursor, "changes come in sequence order");
                    if let Change::Upsert { seq, record } = ch {
                        got.push((*seq, record.collection.clone(), record.id));
                    }
                }
                assert!(page.cursor >= cursor, "the cursor never goes back");
                cursor = page.cursor;
                if done && !page.more && page.changes.is_empty() {
                    return (got, cursor);
                }
            }
        });
        let pushed: Vec<RecordId> = pushers
            .into_iter()
            .flat_map(|h| h.join().expect("pusher"))
            .collect();
        (pushed, puller.join().expect("puller"))
    });
    let (got, cursor) = pulled;
    let mut customers: BTreeMap<RecordId, usize> = BTreeMap::new();
    for (_, collection, id) in &got {
        if collection == "customers" {
            *customers.entry(*id).or_default() += 1;
        }
    }
    let want: BTreeSet<RecordId> = pushed.iter().copied().collect();
    assert_eq!(want.len(), REPS * BATCHES * PER_BATCH);
    let have: BTreeSet<RecordId> = customers.keys().copied().collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "the puller skipped {} records",
        missing.len()
    );
    assert_eq!(have, want);
    assert!(
        customers.values().all(|n| *n == 1),
        "every record arrives exactly once"
    );
    // Every change number up to the final cursor was seen exactly once.
    let seqs: BTreeSet<u64> = got.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(seqs.len(), got.len());
    assert_eq!(seqs.last().copied(), Some(cursor));
}

/// Point a device's profile at another server address, as a load balancer would.
fn point_at(d: &Device, base: &str) {
    let path = d.home().join("config.json");
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config.json")).expect("json");
    cfg["server"] = Value::String(base.to_owned());
    std::fs::write(&path, serde_json::to_string_pretty(&cfg).expect("json")).expect("write");
}

fn token_of(d: &Device) -> String {
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(d.home().join("config.json")).expect("config.json"),
    )
    .expect("json");
    cfg["token"].as_str().expect("token").to_owned()
}

fn names(d: &Device, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = d
        .json(args)
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

fn count(d: &Device, args: &[&str]) -> usize {
    d.json(args).as_array().expect("a JSON list").len()
}

fn log_visit(d: &Device, customer: &str, at: &str) {
    d.ok(&[
        "visit",
        "log",
        customer,
        "--at",
        at,
        "--minutes",
        "30",
        "--purpose",
        "check stock",
        "--outcome",
        "ok",
        "--reason",
        "indoors",
    ]);
}

fn assert_verified(d: &Device) {
    let v = d.json(&["sync", "--verify"]);
    assert_eq!(
        v["verify"]["matched"],
        Value::Bool(true),
        "{}: verify found a difference: {v}",
        d.name
    );
}

/// Two server processes on one database; every laptop alternates between
/// them through a day of offline work, a reassignment and a report, and
/// logins, rate limits and tokens hold whichever instance answers.
#[test]
fn two_instances_serve_one_fleet_through_an_offline_day_a_reassignment_and_a_report() {
    let first = TestServer::start_on(StoreKind::Postgres).expect("instance a");
    let second = first.another_instance().expect("instance b");
    let (ua, ub) = (first.url(), second.url());
    let admin = Device::new("admin").unwrap();
    admin.login(&ua, "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north", "--region", "North"]);
    let mk = |name: &str, role: &str, sup: Option<&str>, at: &str| {
        admin.add_user(at, name, role, (Some("north"), sup), PW)
    };
    // Users created through one instance log in through the other.
    point_at(&admin, &ub);
    let sup = mk("wang.sup", "supervisor", None, &ua);
    let li = mk("li.rep", "rep", Some("wang.sup"), &ub);
    let zhao = mk("zhao.rep", "rep", Some("wang.sup"), &ua);

    // Morning: offline work, synced through alternating instances.
    li.ok(&["customer", "add", "Acme"]);
    li.ok(&["customer", "add", "Bolt"]);
    log_visit(&li, "Acme", "2026-11-20T09:00:00Z");
    zhao.ok(&["customer", "add", "Cobalt"]);
    log_visit(&zhao, "Cobalt", "2026-11-20T10:00:00Z");
    li.ok(&["sync"]);
    point_at(&zhao, &ub);
    zhao.ok(&["sync"]);
    point_at(&li, &ua);
    li.ok(&["sale", "add", "Acme", "--amount", "120", "--product", "SIM"]);
    li.ok(&["sync"]);
    zhao.ok(&["sync"]);
    for (d, base) in [(&sup, &ub), (&sup, &ua)] {
        point_at(d, base);
        d.ok(&["sync"]);
    }
    assert_eq!(
        names(&sup, &["customer", "list"]),
        ["Acme", "Bolt", "Cobalt"]
    );
    assert_eq!(names(&li, &["customer", "list"]), ["Acme", "Bolt"]);
    assert_eq!(names(&zhao, &["customer", "list"]), ["Cobalt"]);

    // Afternoon: Acme moves to zhao (through instance b) while li works
    // offline, before and after the move.
    log_visit(&li, "Acme", "2026-11-21T09:00:00Z");
    admin.ok(&["sync"]);
    admin.ok(&["admin", "customer", "assign", "Acme", "--to", "zhao.rep"]);
    log_visit(&li, "Acme", "2026-11-22T09:00:00Z");
    point_at(&zhao, &ua);
    zhao.ok(&["sync"]);
    assert_eq!(names(&zhao, &["customer", "list"]), ["Acme", "Cobalt"]);
    assert_eq!(count(&zhao, &["sale", "list"]), 1, "the history came along");
    point_at(&li, &ub);
    li.ok(&["sync"]);
    assert_eq!(names(&li, &["customer", "list"]), ["Bolt"]);
    assert_eq!(
        count(&li, &["problems", "list"]),
        1,
        "work after the move is a problem"
    );
    zhao.ok(&["sync"]);
    assert_eq!(
        count(&zhao, &["visit", "list"]),
        3,
        "work before the move is Acme's history"
    );

    // Both instances agree on everything, as every laptop can verify on either.
    for d in [&li, &zhao, &sup] {
        assert_verified(d);
        point_at(d, &ua);
        assert_verified(d);
    }
    admin.ok(&["sync"]);
    let problems = admin.json(&["admin", "problems"]);
    assert_eq!(problems.as_array().map(Vec::len), Some(1));

    // The same report from either instance.
    let c = http();
    let token = token_of(&admin);
    let report = |base: &str| -> Value {
        let r = c
            .get(format!("{base}/v1/reports/visits?period=2026-11"))
            .bearer_auth(&token)
            .send()
            .expect("report");
        assert!(r.status().is_success(), "report: {:?}", r.text());
        let mut v: Value = r.json().expect("report json");
        v.as_object_mut().map(|o| o.remove("generated_at"));
        v
    };
    let (ra, rb) = (report(&ua), report(&ub));
    assert_eq!(ra, rb, "both instances give the same report");
    assert!(
        ra.to_string().contains("li.rep"),
        "the report sees the day's visits: {ra}"
    );

    // Failed logins count across instances: three wrong passwords spread
    // over both hold the next attempt from this address on both.
    for i in 0..3 {
        let base = if i % 2 == 0 { &ua } else { &ub };
        let r = c
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "li.rep", "password": "wrong", "device_name": "x"}))
            .send()
            .expect("login");
        assert_eq!(r.status().as_u16(), 401, "attempt {i}");
    }
    for base in [&ua, &ub] {
        let r = c
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "li.rep", "password": PW, "device_name": "x"}))
            .send()
            .expect("login");
        assert_eq!(r.status().as_u16(), 429, "rate limited on {base}");
    }

    // A revocation through one instance is refused by the other at once.
    let devices = admin.json(&["admin", "device", "list", "--user", "zhao.rep"]);
    let id = devices.as_array().expect("devices")[0]["id"]
        .as_str()
        .expect("device id")
        .to_owned();
    point_at(&admin, &ua);
    admin.ok(&["admin", "device", "revoke", &id]);
    point_at(&zhao, &ub);
    let out = zhao.run(&["sync"]);
    assert_eq!(
        code(&out),
        5,
        "a revoked device is refused by every instance: {}",
        stderr(&out)
    );
}

/// A SQLite server moved onto PostgreSQL with `migrate-store`: devices go
/// on syncing without logging in again and without downloading again.
#[test]
fn a_server_moved_from_sqlite_to_postgres_keeps_its_devices_syncing() {
    let mut server = TestServer::start_on(StoreKind::Sqlite).expect("server");
    let url = server.url();
    let admin = Device::new("admin").unwrap();
    admin.login(&url, "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north", "--region", "North"]);
    for name in ["li.rep", "zhao.rep"] {
        let out = admin.run_with_stdin(
            &[
                "admin",
                "user",
                "add",
                name,
                "--role",
                "rep",
                "--team",
                "north",
                "--password-stdin",
            ],
            Some(PW),
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let li = Device::new("li").unwrap();
    li.login(&url, "li.rep", PW);
    let zhao = Device::new("zhao").unwrap();
    zhao.login(&url, "zhao.rep", PW);
    for i in 0..30 {
        li.ok(&["customer", "add", &format!("Shop {i:02}")]);
    }
    log_visit(&li, "Shop 00", "2026-11-20T09:00:00Z");
    li.ok(&["sync"]);
    admin.ok(&["sync"]);
    // A conflict and a problem, so every table has rows to copy.
    admin.ok(&["admin", "customer", "assign", "Shop 01", "--to", "zhao.rep"]);
    log_visit(&li, "Shop 01", "2026-11-21T09:00:00Z");
    li.ok(&["sync"]);
    zhao.ok(&["sync"]);
    let wrong = li.run_with_stdin(
        &[
            "login",
            "--server",
            &url,
            "--user",
            "nobody",
            "--password-stdin",
        ],
        Some("nope"),
    );
    assert_ne!(code(&wrong), 0);

    let db_file = server.data_dir().join("server.db");
    let before = std::fs::read(&db_file).expect("read server.db");
    let out = server.move_to_postgres().expect("migrate-store");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("records"), "{printed}");
    assert!(printed.contains("sha256:"), "{printed}");
    assert_eq!(
        std::fs::read(&db_file).expect("read server.db"),
        before,
        "the source is left untouched"
    );

    // Same address, now PostgreSQL: no login, and nothing downloaded again.
    let li_sync = li.json(&["sync"]);
    assert_eq!(
        li_sync["pulled"],
        json!(0),
        "nothing is downloaded again: {li_sync}"
    );
    li.ok(&["customer", "add", "After the move"]);
    li.ok(&["sync"]);
    let z = zhao.json(&["sync"]);
    assert_eq!(z["pulled"], json!(0), "{z}");
    admin.ok(&["sync"]);
    assert_eq!(count(&admin, &["customer", "list"]), 31);
    assert_eq!(count(&li, &["customer", "list"]), 30);
    assert_eq!(count(&li, &["problems", "list"]), 1);
    assert_verified(&li);
    assert_verified(&zhao);
    assert_verified(&admin);

    // A second copy into the now non-empty database is refused.
    let db = server.database().expect("postgres").url();
    let again = std::process::Command::new(fieldsync_e2e::bin("fieldsync-server"))
        .args(["migrate-store", "--from"])
        .arg(server.data_dir())
        .args(["--to", &db])
        .output()
        .expect("run migrate-store");
    assert_ne!(code(&again), 0);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

/// SIGTERM drains and exits cleanly on either store (closing the
/// PostgreSQL connections must not trip over the async runtime).
#[test]
fn a_server_stops_cleanly_on_sigterm_on_either_store() {
    for store in [StoreKind::Sqlite, StoreKind::Postgres] {
        let mut server = TestServer::start_on(store).expect("server");
        let admin = Device::new("admin").unwrap();
        admin.login(&server.url(), "admin", ADMIN_PASSWORD);
        admin.ok(&["sync"]);
        let status = server.terminate().expect("terminate");
        assert!(status.success(), "{store:?}: exit status {status}");
    }
}
