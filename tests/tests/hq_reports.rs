//! End-to-end: `fieldsync hq ...` with the real CLI against a real server.
//! Reps record visits and feedback on their laptops and sync; HQ and a
//! supervisor pull the consolidated reports as JSON, CSV and tables; a rep
//! is refused; bad input writes nothing; a stopped server gives the offline
//! exit code. Runs on the SQLite and the PostgreSQL store.

use fieldsync_e2e::{ADMIN_PASSWORD, Device, StoreKind, TestServer, code, on_both_stores, stderr};
use serde_json::Value;

const PW: &str = "correct horse battery";

on_both_stores!(hq_reports_from_the_cli_match_what_the_reps_recorded);

fn user(admin: &Device, server: &TestServer, name: &str, role: &str, team: Option<&str>) -> Device {
    admin.add_user(&server.url(), name, role, (team, None), PW)
}

/// A visit checked in at the customer, a few metres off (GPS jitter; a
/// position repeated to the metre on another day is flagged as reused).
fn visit(rep: &Device, customer: &str, at: &str, jitter: u32) {
    let lat = format!("{:.5}", 31.2304 + f64::from(jitter) * 0.00002);
    rep.ok(&[
        "visit",
        "log",
        customer,
        "--at",
        at,
        "--minutes",
        "40",
        "--purpose",
        "demo",
        "--outcome",
        "ok",
        "--lat",
        &lat,
        "--lon",
        "121.4737",
    ]);
}

fn row<'a>(report: &'a Value, table: &str, key: &str) -> (&'a Vec<Value>, Vec<String>) {
    let t = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == table)
        .expect("table");
    let cols: Vec<String> = t["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("name").to_owned())
        .collect();
    let r = if key == "total" {
        t["totals"].as_array().expect("totals")
    } else {
        t["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r[0] == key)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("no row {key}"))
    };
    (r, cols)
}

fn num(report: &Value, table: &str, key: &str, col: &str) -> Option<f64> {
    let (r, cols) = row(report, table, key);
    let i = cols.iter().position(|c| c == col).expect("column");
    r[i].as_f64()
}

fn hq_reports_from_the_cli_match_what_the_reps_recorded(store: StoreKind) {
    // The visits are dated in November 2026; feedback is dated when it is
    // recorded (today). The period takes both in, through tomorrow whatever
    // the local time zone.
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let period = format!("2026-11-01..{tomorrow}");
    let period = period.as_str();
    let mut server = TestServer::start_on(store).expect("server");
    let admin = Device::new("admin").expect("device");
    admin.login(&server.url(), "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north", "--region", "East"]);
    admin.ok(&["admin", "team", "add", "south", "--region", "East"]);
    let hq = user(&admin, &server, "hank", "hq", None);
    let sue = user(&admin, &server, "sue", "supervisor", Some("north"));
    let mei = user(&admin, &server, "mei", "rep", Some("north"));
    let bo = user(&admin, &server, "bo", "rep", Some("south"));

    mei.ok(&[
        "customer",
        "add",
        "华东贸易, \"总部\"",
        "--lat",
        "31.2304",
        "--lon",
        "121.4737",
    ]);
    mei.ok(&[
        "customer", "add", "Acme", "--lat", "31.2304", "--lon", "121.4737",
    ]);
    visit(&mei, "华东贸易", "2026-11-02 10:00", 1);
    visit(&mei, "华东贸易", "2026-11-09 10:00", 2);
    visit(&mei, "Acme", "2026-11-10 15:00", 3);
    mei.ok(&[
        "feedback",
        "add",
        "Acme",
        "--kind",
        "survey",
        "--csat",
        "4",
        "--nps",
        "9",
        "--text",
        "good, \"fast\"",
    ]);
    // Checked in 7 km from the customer: out of range, in the review queue.
    mei.ok(&[
        "visit",
        "log",
        "Acme",
        "--at",
        "2026-11-12 10:00",
        "--minutes",
        "30",
        "--purpose",
        "demo",
        "--outcome",
        "ok",
        "--lat",
        "31.2904",
        "--lon",
        "121.4737",
    ]);
    mei.ok(&["sync"]);
    bo.ok(&[
        "customer", "add", "Bo Co", "--lat", "31.2304", "--lon", "121.4737",
    ]);
    visit(&bo, "Bo Co", "2026-11-03 09:00", 4);
    visit(&bo, "Bo Co", "2026-11-04 09:00", 5);
    bo.ok(&[
        "feedback", "add", "Bo Co", "--kind", "survey", "--csat", "2", "--nps", "3", "--text",
        "slow",
    ]);
    bo.ok(&["sync"]);

    // HQ: JSON, every rep and the totals.
    let r = hq.json(&["hq", "scorecard", "--period", period]);
    assert_eq!(num(&r, "rows", "mei", "visits"), Some(4.0));
    assert_eq!(num(&r, "rows", "mei", "customers_visited"), Some(2.0));
    assert_eq!(num(&r, "rows", "mei", "coverage"), Some(1.0));
    assert_eq!(num(&r, "rows", "bo", "visits"), Some(2.0));
    assert_eq!(num(&r, "rows", "total", "visits"), Some(6.0));
    assert_eq!(num(&r, "rows", "total", "csat"), Some(3.0));
    // NPS: one promoter, one detractor.
    assert_eq!(num(&r, "rows", "total", "nps"), Some(0.0));
    assert!(
        r["freshness"]["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("data complete through")),
        "{}",
        r["freshness"]
    );
    let by_region = hq.json(&["hq", "scorecard", "--period", period, "--by", "region"]);
    assert_eq!(num(&by_region, "rows", "East", "visits"), Some(6.0));

    // CSV to a file: RFC 4180 with CRLF, header first, totals last.
    let file = hq.home().join("scorecard.csv");
    let path = file.to_str().expect("utf-8 path");
    hq.ok(&[
        "hq",
        "scorecard",
        "--period",
        period,
        "--format",
        "csv",
        "--output",
        path,
    ]);
    let csv = std::fs::read_to_string(&file).expect("csv written");
    let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
    assert!(
        lines[0].starts_with("rep,team,visits,customers_visited,coverage,sales"),
        "{csv}"
    );
    assert_eq!(lines.len(), 4, "header, two reps, totals: {csv}");
    assert!(lines[3].starts_with("total,,6,3,"), "{csv}");

    // A table starts with the freshness line.
    let table = hq.ok(&["hq", "visits", "--period", period]);
    assert!(table.starts_with("data complete through"), "{table}");
    assert!(table.contains("[review_queue]"), "{table}");

    // The supervisor: their team only, in rows and totals.
    let r = sue.json(&["hq", "scorecard", "--period", period]);
    let rows = r["tables"][0]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(num(&r, "rows", "total", "visits"), Some(4.0));
    assert_eq!(num(&r, "rows", "total", "csat"), Some(4.0));
    let out = sue.run(&["hq", "scorecard", "--period", period, "--team", "south"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not allowed"), "{}", stderr(&out));

    // The review queue: the supervisor rejects the far check-in; after
    // both sync, HQ sees the decision.
    let v = hq.json(&["hq", "visits", "--period", period]);
    let queue = v["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "review_queue")
        .expect("queue");
    let flagged = queue["rows"].as_array().expect("rows");
    assert_eq!(flagged.len(), 1, "{queue}");
    assert_eq!(flagged[0][4], "out_of_range");
    assert_eq!(flagged[0][7], "none");
    let visit_id = flagged[0][0].as_str().expect("id").to_owned();
    let out = mei.run(&["hq", "review", &visit_id, "--accept"]);
    assert_ne!(code(&out), 0, "a rep cannot review: {}", stderr(&out));
    sue.ok(&["sync"]);
    let out = sue.run(&["hq", "review", &visit_id, "--reject"]);
    assert_eq!(code(&out), 1, "a rejection needs a note");
    sue.ok(&["hq", "review", &visit_id, "--reject", "--note", "7 km away"]);
    sue.ok(&["sync"]);
    let v = hq.json(&["hq", "visits", "--period", period]);
    let (queued, cols) = row(&v, "review_queue", &visit_id);
    let review = cols.iter().position(|c| c == "review").expect("column");
    assert_eq!(queued[review], "rejected");
    let (mei_row, cols) = row(&v, "by_rep", "mei");
    let rejected = cols.iter().position(|c| c == "rejected").expect("column");
    assert_eq!(mei_row[rejected], 1);

    // A rep is refused.
    let out = mei.run(&["hq", "scorecard", "--period", period]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("not allowed"), "{}", stderr(&out));

    // Bad input: a clear error and nothing written.
    let bad = hq.home().join("bad.csv");
    let out = hq.run(&[
        "hq",
        "scorecard",
        "--period",
        "2026-13",
        "--format",
        "csv",
        "--output",
        bad.to_str().expect("path"),
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("error:"), "{}", stderr(&out));
    assert!(!bad.exists());

    // Offline.
    server.kill();
    let out = hq.run(&["hq", "scorecard", "--period", period]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains("offline"), "{}", stderr(&out));
}

/// A dashboard session signed in on one instance is accepted by another
/// instance on the same PostgreSQL database (the key lives in the store),
/// and both answer the same figures.
#[test]
fn a_dashboard_session_works_on_every_instance() {
    let first = TestServer::start_on(StoreKind::Postgres).expect("server");
    let second = first.another_instance().expect("second instance");
    let admin = Device::new("admin").expect("device");
    admin.login(&first.url(), "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north", "--region", "East"]);
    let _hq = user(&admin, &first, "hank", "hq", None);
    let mei = user(&admin, &first, "mei", "rep", Some("north"));
    mei.ok(&[
        "customer", "add", "Acme", "--lat", "31.2304", "--lon", "121.4737",
    ]);
    visit(&mei, "Acme", "2026-11-02 10:00", 1);
    mei.ok(&["sync"]);

    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = http
        .get(format!("{}/dashboard/login", first.url()))
        .send()
        .expect("form");
    let csrf_cookie = form.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let csrf = csrf_cookie.split_once('=').expect("value").1.to_owned();
    let signed_in = http
        .post(format!("{}/dashboard/login", first.url()))
        .header("cookie", &csrf_cookie)
        .form(&[
            ("username", "hank"),
            ("password", PW),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .expect("sign in");
    assert_eq!(signed_in.status().as_u16(), 303);
    let session = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fieldsync_session="))
        .expect("session cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    for server in [&first, &second] {
        let csv = http
            .get(format!(
                "{}/dashboard/scorecard/csv?period=2026-11&section=rows",
                server.url()
            ))
            .header("cookie", &session)
            .send()
            .expect("csv");
        assert_eq!(csv.status().as_u16(), 200, "{}", server.url());
        let text = csv.text().expect("body");
        assert!(text.contains("\r\nmei,north,1,1,1,"), "{text}");
    }
}
