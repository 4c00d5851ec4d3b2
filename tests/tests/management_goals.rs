//! End-to-end: goals, training, work reports and one-on-ones with the real
//! `fieldsync` CLI on several laptops against a real `fieldsync-server`.
//! The supervisor sets goals and the rep writes a report and completes
//! training while the server is down; after syncing, every party sees the
//! same numbers, and they equal an independent calculation over the
//! generated data. Every test runs on the SQLite and the PostgreSQL store.

use chrono::{DateTime, Datelike, Duration, NaiveDate, SecondsFormat, Utc};
use fieldsync_e2e::{ADMIN_PASSWORD, Device, StoreKind, TestServer, code, on_both_stores, stderr};
use serde_json::Value;
use std::collections::BTreeMap;

const PW: &str = "correct horse battery";

on_both_stores!(
    offline_goals_reports_and_training_agree_everywhere_after_sync,
    management_permissions_are_refused_before_anything_is_written,
);

/// A small deterministic generator (the data varies with the seed, the
/// expectations are computed from what was generated).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

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
        Self { server, admin }
    }

    fn user(&self, name: &str, role: &str, team: Option<&str>) -> Device {
        self.admin
            .add_user(&self.server.url(), name, role, (team, None), PW)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What one rep did, as generated.
#[derive(Default)]
struct RepData {
    visits: u64,
    customers_visited: u64,
    customers: u64,
    sales_minor: i64,
    csat: Vec<i64>,
    feedback: u64,
}

/// Customers, visits, sales and survey feedback for one rep, all in the current month.
fn generate(rep: &Device, name: &str, rng: &mut Lcg, now: DateTime<Utc>) -> RepData {
    let month_start = now
        .date_naive()
        .with_day(1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let span = (now - Duration::hours(1) - month_start)
        .num_minutes()
        .max(1);
    let at = |rng: &mut Lcg| month_start + Duration::minutes(rng.next(span as u64) as i64);
    let mut d = RepData::default();
    let n_customers = 2 + rng.next(3);
    let customers: Vec<String> = (0..n_customers)
        .map(|i| format!("{name} customer {i}"))
        .collect();
    for c in &customers {
        rep.ok(&["customer", "add", c]);
    }
    d.customers = n_customers;
    let mut visited = std::collections::BTreeSet::new();
    for _ in 0..(3 + rng.next(4)) {
        let c = rng.next(n_customers) as usize;
        visited.insert(c);
        let when = ts(at(rng));
        rep.ok(&[
            "visit",
            "log",
            &customers[c],
            "--at",
            &when,
            "--minutes",
            "30",
            "--purpose",
            "call",
            "--outcome",
            "ok",
            "--reason",
            "indoors",
        ]);
        d.visits += 1;
    }
    d.customers_visited = visited.len() as u64;
    for _ in 0..=rng.next(3) {
        let c = rng.next(n_customers) as usize;
        let minor = 10_000 + i64::try_from(rng.next(500_000)).unwrap();
        let amount = format!("{}.{:02}", minor / 100, minor % 100);
        let when = ts(at(rng));
        rep.ok(&[
            "sale",
            "add",
            &customers[c],
            "--amount",
            &amount,
            "--product",
            "plan",
            "--at",
            &when,
        ]);
        d.sales_minor += minor;
    }
    for _ in 0..2 {
        let c = rng.next(n_customers) as usize;
        let csat = 3 + i64::try_from(rng.next(3)).unwrap();
        rep.ok(&[
            "feedback",
            "add",
            &customers[c],
            "--kind",
            "survey",
            "--csat",
            &csat.to_string(),
            "--nps",
            "9",
            "--text",
            "fine",
        ]);
        d.csat.push(csat);
        d.feedback += 1;
    }
    d
}

fn by_id(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .expect("a JSON list")
        .iter()
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The pace rule, written independently: behind when >= 10 % short of the
/// expected value to date, ahead when >= 10 % over, otherwise on track.
fn pace(actual: f64, expected: f64) -> &'static str {
    if expected - actual >= 0.1 * expected - 1e-9 {
        "behind"
    } else if actual - expected >= 0.1 * expected - 1e-9 {
        "ahead"
    } else {
        "on_track"
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn offline_goals_reports_and_training_agree_everywhere_after_sync(store: StoreKind) {
    let mut co = Company::new(store);
    let hq = co.user("hq", "hq", None);
    hq.ok(&[
        "training",
        "course",
        "add",
        "Welcome",
        "--kind",
        "onboarding",
        "--hours",
        "2",
        "--required-for",
        "rep",
    ]);
    hq.ok(&[
        "training", "course", "add", "Seminar", "--kind", "seminar", "--hours", "3",
    ]);
    hq.ok(&["sync"]);
    let sup = co.user("sup", "supervisor", Some("north"));
    let ann = co.user("ann", "rep", Some("north"));
    let bob = co.user("bob", "rep", Some("north"));

    let now = Utc::now();
    let today: NaiveDate = now.date_naive();
    let period = format!("{:04}-{:02}", today.year(), today.month());
    let mut rng = Lcg(u64::from(today.ordinal()) * 7919 + 17);
    let a = generate(&ann, "ann", &mut rng, now);
    let b = generate(&bob, "bob", &mut rng, now);
    for d in [&ann, &bob, &sup, &hq] {
        d.ok(&["sync"]);
    }

    // A new rep got the required onboarding course, not the optional one.
    let ann_training = ann.json(&["training", "list"]);
    let list = ann_training.as_array().unwrap();
    assert_eq!(list.len(), 1, "{ann_training}");
    assert_eq!(list[0]["course"], "Welcome");
    assert_eq!(list[0]["status"], "assigned");
    let assignment = list[0]["id"].as_str().unwrap().to_owned();

    // The server goes away: everything below is offline.
    co.server.kill();
    let visits_goal = sup.json(&[
        "goal", "set", "ann", "--metric", "visits", "--target", "4", "--period", &period,
    ]);
    let visits_goal_id = visits_goal["id"].as_str().unwrap().to_owned();
    sup.json(&[
        "goal",
        "set",
        "ann",
        "--metric",
        "visits",
        "--target",
        "12",
        "--period",
        &period,
        "--note",
        "raised after review",
    ]);
    sup.ok(&[
        "goal",
        "set",
        "ann",
        "--metric",
        "sales",
        "--target",
        "3000",
        "--stretch",
        "5000",
        "--period",
        &period,
    ]);
    sup.ok(&[
        "goal",
        "set",
        "ann",
        "--metric",
        "training_hours",
        "--target",
        "2",
        "--period",
        &period,
    ]);
    sup.ok(&[
        "goal", "set", "north", "--metric", "visits", "--target", "20", "--period", &period,
    ]);
    sup.ok(&[
        "goal", "set", "bob", "--metric", "csat", "--target", "4", "--period", &period,
    ]);
    let denied = ann.run(&[
        "goal", "set", "ann", "--metric", "visits", "--target", "1", "--period", &period,
    ]);
    assert_ne!(code(&denied), 0);
    assert!(
        stderr(&denied).contains("a rep cannot set goals"),
        "{}",
        stderr(&denied)
    );

    let report = ann.json(&[
        "work-report",
        "submit",
        "--kind",
        "monthly",
        "--summary",
        "solid month",
        "--plan",
        "more visits",
    ]);
    assert_eq!(report["visits"], a.visits);
    assert_eq!(report["customers_visited"], a.customers_visited);
    assert_eq!(report["sales"]["minor"], a.sales_minor);
    assert_eq!(report["feedback"], a.feedback);
    assert_eq!(report["late"], false);
    let report_id = report["id"].as_str().unwrap().to_owned();
    let done = ann.json(&[
        "training",
        "complete",
        &assignment,
        "--score",
        "90",
        "--evidence",
        "cert-1",
    ]);
    assert_eq!(done["status"], "completed");

    let meeting = sup.json(&[
        "one-on-one",
        "add",
        "ann",
        "--notes",
        "pipeline review",
        "--action",
        "visit dormant accounts",
        "--due",
        &(today + Duration::days(7)).to_string(),
        "--action",
        "send price list",
        "--due",
        &(today + Duration::days(2)).to_string(),
        "--owner",
        "ann",
        "--owner",
        "sup",
    ]);
    let meeting_id = meeting["id"].as_str().unwrap().to_owned();
    let snap_goals = meeting["snapshot"]["goals"].as_array().unwrap();
    assert_eq!(
        snap_goals.len(),
        3,
        "ann's three goals this period: {meeting}"
    );
    assert_eq!(meeting["action_items"].as_array().unwrap().len(), 2);

    // Back online; everyone syncs (twice round, in a mixed order).
    co.server.restart().expect("restart");
    for d in [&ann, &sup, &bob, &hq, &sup, &ann, &hq, &bob] {
        d.ok(&["sync"]);
    }

    // Independent calculation over the generated data.
    let days_in_month = {
        let first = today.with_day(1).unwrap();
        let next = if today.month() == 12 {
            NaiveDate::from_ymd_opt(today.year() + 1, 1, 1).unwrap()
        } else {
            NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1).unwrap()
        };
        (next - first).num_days()
    };
    let elapsed = f64::from(today.day()) / days_in_month as f64;
    let expected: Vec<(&str, &str, f64, f64, bool)> = vec![
        // (subject, metric, target, actual, counting?)
        ("ann", "visits", 12.0, a.visits as f64, true),
        ("ann", "sales", 3000.0, a.sales_minor as f64 / 100.0, true),
        ("ann", "training_hours", 2.0, 2.0, true),
        ("north", "visits", 20.0, (a.visits + b.visits) as f64, true),
        (
            "bob",
            "csat",
            4.0,
            b.csat.iter().sum::<i64>() as f64 / b.csat.len() as f64,
            false,
        ),
    ];
    let sup_goals = by_id(&sup.json(&["goal", "list", "--period", &period]));
    assert_eq!(sup_goals.len(), expected.len());
    for (subject, metric, target, actual, counting) in &expected {
        let g = sup_goals
            .values()
            .find(|g| g["subject"] == *subject && g["metric"] == *metric)
            .unwrap_or_else(|| panic!("no {subject} {metric} goal"));
        let exp = if *counting { target * elapsed } else { *target };
        assert!(close(g["target"].as_f64().unwrap(), *target), "{g}");
        assert!(
            close(g["actual"].as_f64().unwrap(), *actual),
            "{subject} {metric}: {g}"
        );
        assert!(
            close(g["attained_pct"].as_f64().unwrap(), 100.0 * actual / target),
            "{g}"
        );
        assert!(close(g["expected_to_date"].as_f64().unwrap(), exp), "{g}");
        assert_eq!(g["pace"], pace(*actual, exp), "{subject} {metric}: {g}");
    }

    // Every party that sees a goal sees the same numbers.
    let fields = [
        "actual",
        "attained_pct",
        "expected_to_date",
        "pace",
        "target",
    ];
    for (who, dev) in [("hq", &hq), ("ann", &ann), ("bob", &bob)] {
        let theirs = by_id(&dev.json(&["goal", "list", "--period", &period]));
        let mine_only = match who {
            "ann" => 3,
            "bob" => 1,
            _ => expected.len(),
        };
        assert!(
            theirs.len() >= mine_only,
            "{who} sees {} goals",
            theirs.len()
        );
        for (id, g) in &theirs {
            if g["partial"] == true {
                // A rep's laptop holds only her own records: a team goal's
                // figures are left out there rather than shown wrong.
                assert_eq!(g["subject"], "north", "{who}: {g}");
                assert!(g["actual"].is_null());
                continue;
            }
            for f in fields {
                assert_eq!(g[f], sup_goals[id][f], "{who} disagrees on {f} of {id}");
            }
        }
    }

    // The change kept its history: who, old -> new.
    let hist = sup.json(&["goal", "history", &visits_goal_id]);
    let hist = hist.as_array().unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[1]["old_target"], 4.0);
    assert_eq!(hist[1]["new_target"], 12.0);
    assert_eq!(hist[1]["changed_by_name"], "sup");
    assert_eq!(
        hq.json(&["goal", "history", &visits_goal_id]),
        sup.json(&["goal", "history", &visits_goal_id])
    );

    // The report synced with the figures computed offline; the supervisor comments.
    let reports = by_id(&sup.json(&["work-report", "list"]));
    let r = &reports[&report_id];
    assert_eq!(r["rep"], "ann");
    assert_eq!(r["visits"], a.visits);
    assert_eq!(r["sales"]["minor"], a.sales_minor);
    assert_eq!(r["late"], false);
    sup.ok(&["work-report", "comment", &report_id, "--text", "good plan"]);
    sup.ok(&["sync"]);
    ann.ok(&["sync"]);
    assert_eq!(
        by_id(&ann.json(&["work-report", "list"]))[&report_id]["supervisor_comment"],
        "good plan"
    );

    // A report for last month written now is late; who still owes a report
    // for the last ended week and month.
    let last_month = today.with_day(1).unwrap() - Duration::days(1);
    let last_month = format!("{:04}-{:02}", last_month.year(), last_month.month());
    let late = bob.json(&[
        "work-report",
        "submit",
        "--kind",
        "monthly",
        "--period",
        &last_month,
        "--summary",
        "late one",
    ]);
    assert_eq!(late["late"], true, "{late}");
    bob.ok(&["sync"]);
    sup.ok(&["sync"]);
    let week = (today - Duration::days(7)).iso_week();
    let last_week = format!("{:04}-W{:02}", week.year(), week.week());
    let mut owed: Vec<(String, String, String)> = sup
        .json(&["work-report", "list", "--missing"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap().to_owned();
            (s("rep"), s("kind"), s("period"))
        })
        .collect();
    owed.sort();
    let row = |r: &str, k: &str, p: &str| (r.to_owned(), k.to_owned(), p.to_owned());
    assert_eq!(
        owed,
        [
            row("ann", "monthly", &last_month),
            row("ann", "weekly", &last_week),
            row("bob", "weekly", &last_week),
        ]
    );

    // Training completed offline is visible to the supervisor and HQ.
    for dev in [&sup, &hq] {
        let t = by_id(&dev.json(&["training", "list"]));
        assert_eq!(t[&assignment]["status"], "completed");
        assert_eq!(t[&assignment]["score"], 90);
        assert_eq!(t.len(), 2, "one onboarding assignment per new rep");
    }

    // The rep acknowledges the one-on-one and closes her action; the supervisor sees both.
    let m = by_id(&ann.json(&["one-on-one", "list"]));
    let items = m[&meeting_id]["action_items"].as_array().unwrap().clone();
    let mine = items.iter().find(|i| i["owner"] == "ann").unwrap();
    ann.ok(&["one-on-one", "ack", &meeting_id]);
    ann.ok(&["one-on-one", "done", mine["id"].as_str().unwrap()]);
    ann.ok(&["sync"]);
    sup.ok(&["sync"]);
    let m = by_id(&sup.json(&["one-on-one", "list"]));
    assert_eq!(m[&meeting_id]["status"], "acknowledged");
    let done: Vec<bool> = m[&meeting_id]["action_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["done"].as_bool().unwrap())
        .collect();
    assert_eq!(done.iter().filter(|d| **d).count(), 1);
    assert_eq!(m[&meeting_id]["snapshot"]["open_complaints"], 0);
}

fn management_permissions_are_refused_before_anything_is_written(store: StoreKind) {
    let co = Company::new(store);
    let hq = co.user("hq", "hq", None);
    let sup = co.user("sup", "supervisor", Some("north"));
    co.admin.ok(&["admin", "team", "add", "south"]);
    let ann = co.user("ann", "rep", Some("north"));
    let sam = co.user("sam", "rep", Some("south"));
    hq.ok(&[
        "training", "course", "add", "Product", "--kind", "product", "--hours", "1",
    ]);
    for d in [&hq, &sup, &ann, &sam] {
        d.ok(&["sync"]);
    }
    let pending = |d: &Device| d.json(&["status"])["pending_ops"].as_u64().unwrap();
    let refused = |d: &Device, args: &[&str], needle: &str| {
        let before = pending(d);
        let out = d.run(args);
        assert_ne!(code(&out), 0, "{args:?} succeeded");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert_eq!(pending(d), before, "{args:?} wrote something");
    };
    refused(
        &sup,
        &[
            "goal", "set", "sam", "--metric", "visits", "--target", "5", "--period", "2026-11",
        ],
        "own team",
    );
    refused(
        &sup,
        &[
            "training", "course", "add", "X", "--kind", "sales", "--hours", "1",
        ],
        "cannot add courses",
    );
    refused(
        &ann,
        &[
            "training",
            "assign",
            "Product",
            "--to",
            "ann",
            "--due",
            "2026-12-01",
        ],
        "cannot assign training",
    );
    refused(
        &sup,
        &["one-on-one", "add", "sam", "--notes", "x"],
        "own team",
    );
    refused(
        &sup,
        &[
            "work-report",
            "submit",
            "--kind",
            "weekly",
            "--summary",
            "x",
        ],
        "does not submit",
    );
    refused(
        &ann,
        &[
            "goal", "set", "ann", "--metric", "nope", "--target", "5", "--period", "2026-11",
        ],
        "not a metric",
    );
    refused(
        &sup,
        &[
            "goal", "set", "ann", "--metric", "visits", "--target", "5", "--period", "2026-13",
        ],
        "not a period",
    );
    refused(
        &sup,
        &[
            "one-on-one",
            "add",
            "ann",
            "--notes",
            "x",
            "--action",
            "call back",
        ],
        "every action needs a due date",
    );
    let next_month = (Utc::now().date_naive() + Duration::days(30)).to_string();
    let assigned = hq.json(&[
        "training",
        "assign",
        "Product",
        "--to",
        "north",
        "--due",
        &next_month,
    ]);
    assert_eq!(
        assigned.as_array().unwrap().len(),
        1,
        "north has one rep: {assigned}"
    );
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    let id = assigned[0]["id"].as_str().unwrap();
    refused(
        &sup,
        &["training", "complete", id],
        "only the rep completes",
    );
    refused(
        &hq,
        &[
            "training",
            "assign",
            "Product",
            "--to",
            "ann",
            "--due",
            "2026-12-01",
        ],
        "already has",
    );
    // An assignment past its due date and not completed is overdue.
    hq.ok(&[
        "training", "course", "add", "Old", "--kind", "service", "--hours", "1",
    ]);
    let yesterday = (Utc::now().date_naive() - Duration::days(1)).to_string();
    hq.ok(&[
        "training", "assign", "Old", "--to", "ann", "--due", &yesterday,
    ]);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    let overdue = sup.json(&["training", "list", "--overdue"]);
    let overdue = overdue.as_array().unwrap();
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0]["course"], "Old");
    assert_eq!(overdue[0]["overdue"], true);
    // HQ may set anyone's goal; the supervisor sees it after syncs only if it is their team's.
    hq.ok(&[
        "goal", "set", "sam", "--metric", "visits", "--target", "5", "--period", "2026-11",
    ]);
    hq.ok(&[
        "goal", "set", "ann", "--metric", "visits", "--target", "5", "--period", "2026-11",
    ]);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    sam.ok(&["sync"]);
    let subjects = |d: &Device| -> Vec<String> {
        d.json(&["goal", "list"])
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subjects(&sup), ["ann"]);
    assert_eq!(subjects(&sam), ["sam"]);
}
