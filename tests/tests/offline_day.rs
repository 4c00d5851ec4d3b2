//! End-to-end: the real `fieldsync` CLI on several laptops against a real
//! `fieldsync-server`, including network faults and server crashes. Every
//! test runs twice, on the SQLite store and on the PostgreSQL store
//! (`<test>::sqlite`, `<test>::postgres`).

use fieldsync_e2e::{
    ADMIN_PASSWORD, Device, FaultProxy, StoreKind, TestServer, code, on_both_stores, stderr,
};
use serde_json::Value;

const PW: &str = "correct horse battery";

/// A company: one team with two reps and their supervisor, plus an admin laptop.
struct Company {
    server: TestServer,
    admin: Device,
}

impl Company {
    fn new(store: StoreKind) -> Self {
        let server = TestServer::start_on(store).expect("server");
        let admin = Device::new("admin").unwrap();
        admin.login(&server.url(), "admin", ADMIN_PASSWORD);
        admin.ok(&["admin", "team", "add", "north", "--region", "North"]);
        admin.ok(&["admin", "team", "add", "south", "--region", "South"]);
        Self { server, admin }
    }

    fn user(&self, name: &str, role: &str, team: &str, supervisor: Option<&str>) -> Device {
        self.admin
            .add_user(&self.server.url(), name, role, (Some(team), supervisor), PW)
    }
}

on_both_stores!(
    three_laptops_work_offline_and_converge_on_their_scopes,
    edits_on_two_laptops_merge_by_field_and_the_loser_sees_the_conflict,
    a_reassigned_customer_moves_with_its_history_and_late_work_becomes_a_problem,
    a_deactivated_reps_laptop_hands_over_what_was_written_before_the_deactivation,
    cut_connections_mid_push_and_mid_pull_never_lose_or_duplicate_work,
    a_dead_server_means_offline_work_is_kept_and_synced_later,
    revoked_devices_and_wrong_passwords_get_their_own_exit_codes,
    verify_repairs_a_local_store_that_diverged_from_the_server,
);

/// `visit end` without a visit ends the user's own open visit: a
/// supervisor's laptop also holds the team's open visits, which it leaves
/// alone; a visit replaced by a correction is not open any more; `visit
/// list --since` and `--customer` pick by the visit's start.
#[test]
fn visit_end_finds_the_users_own_open_visit_and_list_filters_by_start() {
    let co = Company::new(StoreKind::Sqlite);
    let sup = co.user("wang.sup", "supervisor", "north", None);
    let li = co.user("li.rep", "rep", "north", Some("wang.sup"));
    li.ok(&[
        "customer",
        "add",
        "Acme Trading",
        "--lat",
        "31.2304",
        "--lon",
        "121.4737",
    ]);
    li.ok(&[
        "customer", "add", "Globex", "--lat", "31.3", "--lon", "121.5",
    ]);
    log_visit(&li, "Acme", "2026-01-10T09:00:00Z", "january review");
    log_visit(&li, "Globex", "2026-01-11T09:00:00Z", "intro");
    li.ok(&[
        "visit", "start", "Acme", "--lat", "31.2305", "--lon", "121.4738",
    ]);
    // Each command's writes were synced into the store's write-ahead log
    // at commit and stay there when it exits; a sync copies the log into
    // the database and empties it.
    let wal = li.home().join("fieldsync.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_len() > 0, "the log was copied in when a command exited");
    li.ok(&["sync"]);
    assert_eq!(wal_len(), 0, "a sync left its log behind");
    sup.ok(&["sync"]);

    // The supervisor sees the rep's open visit but has none of their own.
    let out = sup.run(&["visit", "end", "--outcome", "not mine"]);
    assert_ne!(code(&out), 0, "the supervisor ended someone's visit");
    assert!(stderr(&out).contains("no open visit"), "{}", stderr(&out));
    sup.ok(&[
        "visit", "start", "Acme", "--lat", "31.2304", "--lon", "121.4737",
    ]);
    sup.ok(&["visit", "end", "--outcome", "joint call done"]);
    sup.ok(&["sync"]);

    // The rep's own visit, corrected while open: the correction is the open one.
    let open: Vec<Value> = li
        .json(&["visit", "list", "--since", "2026-06-01"])
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(open.len(), 1, "{open:?}");
    let original = open[0]["id"].as_str().unwrap().to_owned();
    li.ok(&[
        "visit",
        "amend",
        &original,
        "--purpose",
        "5G upgrade",
        "--reason",
        "typo",
    ]);
    li.ok(&["visit", "end", "--outcome", "pilot agreed"]);
    li.ok(&["sync"]);
    sup.ok(&["sync"]);

    let recent = sup.json(&["visit", "list", "--since", "2026-06-01"]);
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 3, "{recent:?}");
    let outcomes: Vec<&str> = recent
        .iter()
        .map(|v| v["outcome"].as_str().unwrap_or(""))
        .collect();
    assert!(
        outcomes.contains(&"joint call done") && outcomes.contains(&"pilot agreed"),
        "{outcomes:?}"
    );
    let orig = recent
        .iter()
        .find(|v| v["id"] == original.as_str())
        .unwrap();
    assert!(
        orig["outcome"].is_null(),
        "the replaced visit was ended too: {orig}"
    );
    assert_eq!(count(&sup, &["visit", "list"]), 5);
    assert_eq!(count(&sup, &["visit", "list", "--customer", "Globex"]), 1);
    assert_eq!(
        count(
            &sup,
            &[
                "visit",
                "list",
                "--customer",
                "Acme",
                "--since",
                "2026-01-11"
            ]
        ),
        3
    );
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

/// Record a visit after the fact, without a position.
fn log_visit(d: &Device, customer: &str, at: &str, purpose: &str) {
    d.ok(&[
        "visit",
        "log",
        customer,
        "--at",
        at,
        "--minutes",
        "30",
        "--purpose",
        purpose,
        "--outcome",
        "ok",
        "--reason",
        "indoors",
    ]);
}

fn customer_names(d: &Device) -> Vec<String> {
    names(&d.json(&["customer", "list"]))
}

fn count(d: &Device, args: &[&str]) -> usize {
    d.json(args).as_array().expect("a JSON list").len()
}

fn pending(d: &Device) -> u64 {
    d.json(&["status"])["pending_ops"]
        .as_u64()
        .expect("status.pending_ops")
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

fn three_laptops_work_offline_and_converge_on_their_scopes(store: StoreKind) {
    let co = Company::new(store);
    let sup = co.user("wang.sup", "supervisor", "north", None);
    let li = co.user("li.rep", "rep", "north", Some("wang.sup"));
    let zhao = co.user("zhao.rep", "rep", "north", Some("wang.sup"));
    let other = co.user("sun.rep", "rep", "south", None);

    // Offline work on every laptop (no sync yet).
    li.ok(&[
        "customer",
        "add",
        "Acme Trading",
        "--lat",
        "31.2304",
        "--lon",
        "121.4737",
        "--segment",
        "enterprise",
    ]);
    li.ok(&[
        "visit",
        "start",
        "Acme",
        "--lat",
        "31.2305",
        "--lon",
        "121.4738",
        "--accuracy",
        "10",
        "--purpose",
        "demo",
    ]);
    li.ok(&["visit", "end", "--outcome", "pilot agreed"]);
    li.ok(&[
        "feedback",
        "add",
        "Acme",
        "--kind",
        "survey",
        "--csat",
        "2",
        "--nps",
        "4",
        "--text",
        "slow support",
    ]);
    li.ok(&[
        "sale",
        "add",
        "Acme",
        "--amount",
        "1234.56",
        "--product",
        "5G plan",
    ]);
    zhao.ok(&["customer", "add", "北京电子, \"Beijing\" Ltd"]);
    log_visit(&zhao, "北京电子", "2026-11-27T09:00:00Z", "intro");
    sup.ok(&["customer", "add", "Key Account Co"]);
    other.ok(&["customer", "add", "Southern Steel"]);

    // Sync in a shuffled order, twice round.
    for d in [&zhao, &sup, &li, &other, &sup, &zhao, &li, &other] {
        d.ok(&["sync"]);
    }

    assert_eq!(customer_names(&li), ["Acme Trading"]);
    assert_eq!(customer_names(&zhao), ["北京电子, \"Beijing\" Ltd"]);
    assert_eq!(
        customer_names(&sup),
        [
            "Acme Trading",
            "Key Account Co",
            "北京电子, \"Beijing\" Ltd"
        ]
    );
    assert_eq!(customer_names(&other), ["Southern Steel"]);
    // The low survey opened a follow-up complaint, and the supervisor sees both.
    assert_eq!(count(&li, &["feedback", "list"]), 2);
    assert_eq!(count(&sup, &["feedback", "list"]), 2);
    assert_eq!(count(&sup, &["visit", "list"]), 2);
    assert_eq!(count(&sup, &["sale", "list"]), 1);
    assert_eq!(count(&other, &["visit", "list"]), 0);
    for d in [&li, &zhao, &sup, &other] {
        assert_eq!(pending(d), 0, "{} has pending ops", d.name);
        assert_verified(d);
    }
}

fn edits_on_two_laptops_merge_by_field_and_the_loser_sees_the_conflict(store: StoreKind) {
    let co = Company::new(store);
    let sup = co.user("wang.sup", "supervisor", "north", None);
    let li = co.user("li.rep", "rep", "north", Some("wang.sup"));
    li.ok(&["customer", "add", "Acme", "--phone", "100"]);
    li.ok(&["sync"]);
    sup.ok(&["sync"]);

    // Different fields: both survive.
    li.ok(&["customer", "edit", "Acme", "--phone", "200"]);
    sup.ok(&["customer", "edit", "Acme", "--address", "1 Bund Road"]);
    li.ok(&["sync"]);
    sup.ok(&["sync"]);
    li.ok(&["sync"]);
    for d in [&li, &sup] {
        let c = d.json(&["customer", "show", "Acme"]);
        assert_eq!(c["customer"]["phone"], "200", "{}: {c}", d.name);
        assert_eq!(c["customer"]["address"], "1 Bund Road", "{}: {c}", d.name);
    }

    // Same field: the later edit wins; the earlier one is reported to its author.
    li.ok(&["customer", "edit", "Acme", "--contact", "Ms Li"]);
    sup.ok(&["customer", "edit", "Acme", "--contact", "Mr Wang"]);
    sup.ok(&["sync"]);
    li.ok(&["sync"]);
    sup.ok(&["sync"]);
    let conflicts = li.json(&["conflicts", "list"]);
    let list = conflicts.as_array().unwrap();
    assert_eq!(list.len(), 1, "{conflicts}");
    assert_eq!(list[0]["field"], "contact");
    // li's edit was made first, so the supervisor's later edit wins.
    assert_eq!(
        li.json(&["customer", "show", "Acme"])["customer"]["contact"],
        "Mr Wang"
    );
    // li keeps theirs: a new op that now wins everywhere.
    let id = list[0]["id"].to_string().trim_matches('"').to_owned();
    li.ok(&["conflicts", "resolve", &id, "--keep", "mine"]);
    li.ok(&["sync"]);
    sup.ok(&["sync"]);
    assert_eq!(
        sup.json(&["customer", "show", "Acme"])["customer"]["contact"],
        "Ms Li"
    );
    assert_eq!(count(&li, &["conflicts", "list"]), 0);
    assert_verified(&li);
    assert_verified(&sup);
}

fn a_reassigned_customer_moves_with_its_history_and_late_work_becomes_a_problem(store: StoreKind) {
    let co = Company::new(store);
    let sup = co.user("wang.sup", "supervisor", "north", None);
    let li = co.user("li.rep", "rep", "north", Some("wang.sup"));
    let zhao = co.user("zhao.rep", "rep", "north", Some("wang.sup"));
    li.ok(&["customer", "add", "Acme"]);
    log_visit(&li, "Acme", "2026-11-20T09:00:00Z", "p");
    li.ok(&[
        "sale",
        "add",
        "Acme",
        "--amount",
        "99",
        "--product",
        "SIM",
        "--at",
        "2026-11-20",
    ]);
    sup.ok(&["sync"]);
    for metric in ["visits", "sales"] {
        sup.ok(&[
            "goal", "set", "li.rep", "--metric", metric, "--target", "10", "--period", "2026-11",
        ]);
    }
    sup.ok(&["sync"]);
    li.ok(&["sync"]);
    co.admin.ok(&["sync"]);

    // li works offline; meanwhile the admin reassigns Acme to zhao, and li,
    // still offline, goes on working on it.
    log_visit(&li, "Acme", "2026-11-21T09:00:00Z", "before");
    log_visit(&li, "Acme", "2026-11-22T09:00:00Z", "before too");
    co.admin
        .ok(&["admin", "customer", "assign", "Acme", "--to", "zhao.rep"]);
    log_visit(&li, "Acme", "2026-11-23T09:00:00Z", "after");
    log_visit(&li, "Acme", "2026-11-24T09:00:00Z", "after too");

    zhao.ok(&["sync"]);
    assert_eq!(customer_names(&zhao), ["Acme"]);
    assert_eq!(
        count(&zhao, &["visit", "list"]),
        1,
        "the history came along"
    );
    assert_eq!(count(&zhao, &["sale", "list"]), 1);

    // li's laptop pushes what it has, then drops the customer but keeps
    // li's own work on it: it still counts for her.
    let out = li.run(&["sync", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        customer_names(&li).is_empty(),
        "evicted from the old owner's laptop"
    );
    assert_eq!(count(&li, &["visit", "list"]), 3);
    assert_eq!(count(&li, &["sale", "list"]), 1);
    assert_eq!(pending(&li), 0);
    assert_eq!(own_figures(&li), (3.0, 99.0), "li's laptop");
    // Kept, not hers to change any more: refused on the laptop already.
    let sales = li.json(&["sale", "list"]);
    let sale = sales[0]["id"].as_str().expect("a sale id");
    let out = li.run(&["sale", "void", sale, "--reason", "typo"]);
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).contains("no longer in your care"),
        "{}",
        stderr(&out)
    );
    assert_eq!(pending(&li), 0);
    // The work li did before the reassignment is Acme's history: it reaches
    // zhao and the reports.
    zhao.ok(&["sync"]);
    let visits = zhao.json(&["visit", "list"]);
    let visits = visits.as_array().expect("visits");
    assert!(
        visits.iter().all(|v| v["rep"] == "li.rep"),
        "li's work stays li's: {visits:?}"
    );
    let purposes: Vec<String> = visits
        .iter()
        .filter_map(|v| v["purpose"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(purposes.len(), 3, "{purposes:?}");
    for p in ["p", "before", "before too"] {
        assert!(purposes.iter().any(|x| x == p), "{p} missing: {purposes:?}");
    }
    let card = co.admin.json(&["hq", "scorecard", "--period", "2026-11"]);
    assert_eq!(scorecard_total(&card, "visits"), Some(3.0), "{card}");
    // Per rep it is li's, as on her laptop; zhao has the customer.
    for (rep, column, figure) in [
        ("li.rep", "visits", 3.0),
        ("li.rep", "sales", 99.0),
        ("zhao.rep", "visits", 0.0),
        ("zhao.rep", "coverage", 0.0),
    ] {
        assert_eq!(
            scorecard_cell(&card, rep, column),
            Some(figure),
            "{rep} {column}: {card}"
        );
    }
    // Nothing is lost: the visits li made after it are problems, on the
    // server and on the laptop, until their supervisor decides them.
    assert_eq!(count(&li, &["problems", "list"]), 2);
    let problems = sup.json(&["admin", "problems"]);
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 2);
    assert!(problems.iter().all(|p| p["code"] == "out_of_scope"));
    let number = |purpose: &str| {
        problems
            .iter()
            .find(|p| p["op"]["fields"]["purpose"] == purpose)
            .and_then(|p| p["id"].as_i64())
            .expect("a problem")
            .to_string()
    };
    sup.ok(&["admin", "problems", "apply", &number("after")]);
    sup.ok(&[
        "admin",
        "problems",
        "discard",
        &number("after too"),
        "--reason",
        "logged twice",
    ]);
    let out = sup.run(&["admin", "problems", "apply", &number("after")]);
    assert_ne!(code(&out), 0, "a decision is made once");
    assert!(
        stderr(&out).contains("already applied by wang.sup"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&sup, &["admin", "problems"]), 0);
    assert_eq!(count(&sup, &["admin", "problems", "--all"]), 2);

    // The applied visit reaches zhao and the report; li's laptop shows
    // both decisions.
    zhao.ok(&["sync"]);
    assert_eq!(count(&zhao, &["visit", "list"]), 4);
    let card = co.admin.json(&["hq", "scorecard", "--period", "2026-11"]);
    assert_eq!(scorecard_total(&card, "visits"), Some(4.0), "{card}");
    assert_eq!(
        scorecard_cell(&card, "li.rep", "visits"),
        Some(4.0),
        "{card}"
    );
    let out = li.run(&["sync"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        own_figures(&li),
        (4.0, 99.0),
        "the applied visit is li's work"
    );
    assert!(
        stderr(&out).contains("2 problems were decided by a reviewer"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&li, &["problems", "list"]), 0);
    let mine = li.json(&["problems", "list", "--all"]);
    let decided = |purpose: &str| {
        mine.as_array()
            .unwrap()
            .iter()
            .find(|p| p["op"]["fields"]["purpose"] == purpose)
            .map(|p| {
                (
                    p["resolution"].as_str().unwrap_or_default().to_owned(),
                    p["decided_by"].as_str().unwrap_or_default().to_owned(),
                    p["reason"].as_str().unwrap_or_default().to_owned(),
                )
            })
    };
    assert_eq!(
        decided("after"),
        Some(("applied".into(), "wang.sup".into(), String::new()))
    );
    assert_eq!(
        decided("after too"),
        Some(("discarded".into(), "wang.sup".into(), "logged twice".into()))
    );
    let table = li.ok(&["problems", "list", "--all"]);
    assert!(
        table.contains("discarded by wang.sup: logged twice"),
        "{table}"
    );
    assert_verified(&li);
    assert_verified(&zhao);
}

fn a_deactivated_reps_laptop_hands_over_what_was_written_before_the_deactivation(store: StoreKind) {
    let co = Company::new(store);
    let li = co.user("li.rep", "rep", "north", None);
    let zhao = co.user("zhao.rep", "rep", "north", None);
    li.ok(&["customer", "add", "Acme"]);
    li.ok(&["sync"]);
    // A week offline; meanwhile li leaves the company, and the laptop
    // records one more visit before it is handed in.
    for i in 0..7 {
        log_visit(
            &li,
            "Acme",
            &format!("2026-11-{:02}T09:00:00Z", 10 + i),
            &format!("v{i}"),
        );
    }
    co.admin.ok(&["admin", "user", "deactivate", "li.rep"]);
    log_visit(&li, "Acme", "2026-11-20T09:00:00Z", "after");

    let out = li.run(&["sync"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "this account is deactivated: 7 changes handed over; nothing more can be synced"
        ),
        "{err}"
    );
    assert!(
        err.contains("1 change was refused (see fieldsync problems list)"),
        "{err}"
    );
    assert_eq!(pending(&li), 0, "nothing is left waiting");
    assert_eq!(count(&li, &["problems", "list"]), 1);
    // Nothing more: a second sync is refused outright.
    let out = li.run(&["sync"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert!(stderr(&out).contains("deactivated"), "{}", stderr(&out));

    // The administrator sees the refused visit and moves li's customers,
    // with what li handed over, to zhao in one command.
    let problems = co.admin.json(&["admin", "problems"]);
    let problems = problems.as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "user_deactivated");
    assert_eq!(problems[0]["op"]["fields"]["purpose"], "after");
    co.admin.ok(&[
        "admin", "customer", "assign", "--from", "li.rep", "--to", "zhao.rep",
    ]);
    zhao.ok(&["sync"]);
    assert_eq!(customer_names(&zhao), ["Acme"]);
    assert_eq!(count(&zhao, &["visit", "list"]), 7);

    // Reactivated, li syncs again (Acme is zhao's now).
    co.admin.ok(&["admin", "user", "reactivate", "li.rep"]);
    li.ok(&["sync"]);
    assert!(customer_names(&li).is_empty());
    li.ok(&["customer", "add", "Bolt"]);
    li.ok(&["sync"]);
    assert_eq!(pending(&li), 0);
    assert_verified(&li);
    assert_verified(&zhao);
}

/// The visits and sales a rep's laptop counts for the rep in 2026-11 (the
/// actuals of their goals).
fn own_figures(rep: &Device) -> (f64, f64) {
    let goals = rep.json(&["goal", "list", "--period", "2026-11"]);
    let actual = |metric: &str| {
        goals
            .as_array()
            .and_then(|g| g.iter().find(|g| g["metric"] == metric))
            .and_then(|g| g["actual"].as_f64())
            .unwrap_or_else(|| panic!("no {metric} goal: {goals}"))
    };
    (actual("visits"), actual("sales"))
}

/// A column of the scorecard's row of `rep` (`total`: the totals row).
fn scorecard_cell(report: &Value, rep: &str, column: &str) -> Option<f64> {
    let table = report["tables"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == "rows")?;
    let at = table["columns"]
        .as_array()?
        .iter()
        .position(|c| c == column)?;
    let row = if rep == "total" {
        &table["totals"]
    } else {
        table["rows"].as_array()?.iter().find(|r| r[0] == rep)?
    };
    row.get(at)?.as_f64()
}

/// A column of a report's totals row.
fn scorecard_total(report: &Value, column: &str) -> Option<f64> {
    scorecard_cell(report, "total", column)
}

fn cut_connections_mid_push_and_mid_pull_never_lose_or_duplicate_work(store: StoreKind) {
    let co = Company::new(store);
    let proxy = FaultProxy::start(co.server.port()).unwrap();
    let li = Device::new("li").unwrap();
    let out = co.admin.run_with_stdin(
        &[
            "admin",
            "user",
            "add",
            "li.rep",
            "--role",
            "rep",
            "--team",
            "north",
            "--password-stdin",
        ],
        Some(PW),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    li.login(&proxy.url(), "li.rep", PW);
    li.ok(&["customer", "add", "Acme"]);
    for i in 0..30 {
        log_visit(
            &li,
            "Acme",
            &format!("2026-11-{:02}T09:00:00Z", 1 + i % 28),
            &format!("v{i}"),
        );
    }

    // The server commits the push but the answer never arrives.
    proxy.cut_answers("/v1/sync/push", 1);
    let out = li.run(&["sync"]);
    assert_ne!(code(&out), 0, "a cut connection is reported");
    assert_eq!(proxy.cuts_done(), 1);
    assert_eq!(pending(&li), 31, "unacknowledged ops stay in the outbox");

    // The pull answer is lost too.
    proxy.cut_answers("/v1/sync/pull", 1);
    let out = li.run(&["sync"]);
    assert_ne!(code(&out), 0);
    assert_eq!(
        pending(&li),
        0,
        "the replayed push was answered from stored outcomes"
    );

    li.ok(&["sync"]);
    assert_eq!(count(&li, &["visit", "list"]), 30);
    // The server holds every visit exactly once.
    co.admin.ok(&["sync"]);
    assert_eq!(count(&co.admin, &["visit", "list"]), 30);
    assert_verified(&li);
}

fn a_dead_server_means_offline_work_is_kept_and_synced_later(store: StoreKind) {
    let mut co = Company::new(store);
    let li = co.user("li.rep", "rep", "north", None);
    li.ok(&["customer", "add", "Acme"]);
    co.server.kill();
    let out = li.run(&["sync"]);
    assert_eq!(code(&out), 3, "offline exit code; stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("offline"), "{}", stderr(&out));
    log_visit(&li, "Acme", "2026-11-27T09:00:00Z", "p");
    assert_eq!(pending(&li), 2);
    co.server.restart().unwrap();
    li.ok(&["sync"]);
    assert_eq!(pending(&li), 0);
    co.admin.ok(&["sync"]);
    assert_eq!(customer_names(&co.admin), ["Acme"]);
}

/// Another process holding the server's SQLite file (a backup, an
/// operator's `sqlite3`) for longer than a sync keeps asking: each push
/// waits only for the server's busy timeout, the sync gives up after its
/// retries, tells the user the server is busy, keeps the work, and the
/// next sync delivers it exactly once.
#[test]
fn a_sync_while_the_server_database_stays_locked_is_kept_and_delivered_once_later() {
    let (co, li, lock) = locked_server_and_two_changes();
    let start = std::time::Instant::now();
    let out = li.run(&["sync"]);
    let waited = start.elapsed();
    assert_eq!(code(&out), 3, "offline exit code; stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("2 changes are saved")
            && err.contains("hint: try again shortly")
            && err.contains("the server is busy"),
        "{err}"
    );
    // Two pushes of 10 s each (the server's busy timeout), then it stops.
    assert!(waited < std::time::Duration::from_mins(1), "{waited:?}");
    assert_eq!(pushes_answered(&co.server, 503), 2);
    assert_eq!(pending(&li), 2);
    lock.execute_batch("ROLLBACK").unwrap();
    li.ok(&["sync"]);
    assert_eq!(pending(&li), 0);
    assert_delivered_once(&co, &li);
}

/// A server busy for a moment costs a sync nothing: the push it answered
/// with a 503 is sent again, and the one sync delivers everything once.
#[test]
fn a_sync_rides_out_a_busy_moment_and_delivers_once() {
    let (co, li, lock) = locked_server_and_two_changes();
    let out = std::thread::scope(|s| {
        let sync = s.spawn(|| li.run(&["sync"]));
        // Let go once the server has answered one push that it is busy.
        let busy = fieldsync_e2e::wait_until(std::time::Duration::from_mins(1), || {
            pushes_answered(&co.server, 503) >= 1
        });
        lock.execute_batch("ROLLBACK").unwrap();
        assert!(busy, "the server never answered a push with 503");
        sync.join().unwrap()
    });
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    assert_eq!(pending(&li), 0);
    assert_eq!(pushes_answered(&co.server, 503), 1);
    assert_delivered_once(&co, &li);
}

/// A SQLite server whose file another connection holds (`BEGIN
/// IMMEDIATE`, returned), and a rep's laptop with two unsynced changes: a
/// customer and a visit.
fn locked_server_and_two_changes() -> (Company, Device, rusqlite::Connection) {
    let co = Company::new(StoreKind::Sqlite);
    let li = co.user("li.rep", "rep", "north", None);
    li.ok(&["customer", "add", "Acme"]);
    log_visit(&li, "Acme", "2026-11-27T09:00:00Z", "p");
    let lock = rusqlite::Connection::open(co.server.data_dir().join("server.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    (co, li, lock)
}

/// The customer and the visit of [`locked_server_and_two_changes`] reached
/// the server once each, and the laptop matches it.
fn assert_delivered_once(co: &Company, li: &Device) {
    co.admin.ok(&["sync"]);
    assert_eq!(customer_names(&co.admin), ["Acme"]);
    assert_eq!(count(&co.admin, &["visit", "list"]), 1);
    assert_verified(li);
}

/// How many pushes the server answered with `status`, from its metrics.
fn pushes_answered(server: &TestServer, status: u16) -> u64 {
    let text = reqwest::blocking::get(format!("{}/metrics", server.url()))
        .and_then(reqwest::blocking::Response::text)
        .unwrap_or_default();
    let series =
        format!("fieldsync_http_requests_total{{route=\"/v1/sync/push\",status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn revoked_devices_and_wrong_passwords_get_their_own_exit_codes(store: StoreKind) {
    let co = Company::new(store);
    let li = co.user("li.rep", "rep", "north", None);
    li.ok(&["customer", "add", "Acme"]);

    let stranger = Device::new("stranger").unwrap();
    let out = stranger.run_with_stdin(
        &[
            "login",
            "--server",
            &co.server.url(),
            "--user",
            "li.rep",
            "--password-stdin",
        ],
        Some("wrong password"),
    );
    assert_eq!(code(&out), 4, "{}", stderr(&out));

    let devices = co
        .admin
        .json(&["admin", "device", "list", "--user", "li.rep"]);
    let id = devices.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    co.admin.ok(&["admin", "device", "revoke", &id]);
    let out = li.run(&["sync"]);
    assert_eq!(code(&out), 5, "{}", stderr(&out));
    assert_eq!(pending(&li), 1, "nothing typed is lost");
}

fn verify_repairs_a_local_store_that_diverged_from_the_server(store: StoreKind) {
    let co = Company::new(store);
    let li = co.user("li.rep", "rep", "north", None);
    li.ok(&["customer", "add", "Acme"]);
    li.ok(&["customer", "add", "Globex"]);
    log_visit(&li, "Acme", "2026-11-27T09:00:00Z", "p");
    li.ok(&["sync"]);
    assert_verified(&li);

    // Damage the local copy behind the CLI's back: lose one pulled record
    // and alter another.
    let db = rusqlite::Connection::open(li.home().join("fieldsync.db")).unwrap();
    db.execute("DELETE FROM server_records WHERE collection = 'visits'", [])
        .unwrap();
    db.execute("UPDATE server_records SET state = replace(state, 'Globex', 'Globox') WHERE collection = 'customers'", []).unwrap();
    drop(db);

    let v = li.json(&["sync", "--verify"]);
    assert_eq!(v["verify"]["matched"], Value::Bool(false), "{v}");
    assert_eq!(v["verify"]["repaired"], Value::Bool(true), "{v}");
    assert_eq!(v["verify"]["matches_now"], Value::Bool(true), "{v}");
    assert_verified(&li);
    assert_eq!(count(&li, &["visit", "list"]), 1);
    assert_eq!(customer_names(&li), ["Acme", "Globex"]);
}
