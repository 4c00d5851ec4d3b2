//! `fieldsync visit import`: every line is checked like `visit log`; one bad
//! line means nothing is imported; a good file lands in one transaction
//! and syncs like logged visits.

use fieldsync_e2e::{Device, TestServer, code, stderr};
use serde_json::Value;

const PW: &str = "correct horse battery";

fn rep_with_customer(server: &TestServer) -> Device {
    fieldsync_e2e::rep_with_customer(server, PW)
}

fn line(at: &str, extra: &str) -> String {
    format!(
        r#"{{"customer": "acme", "at": "{at}", "minutes": 45, "purpose": "demo", "outcome": "trial agreed"{extra}}}"#
    )
}

fn pending(d: &Device) -> u64 {
    d.json(&["status"])["pending_ops"].as_u64().unwrap()
}

#[test]
fn one_bad_line_imports_nothing_and_names_every_bad_line() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server);
    let file = rep.home().join("visits.jsonl");
    let long = "x".repeat(501);
    let lines = [
        line("2026-01-05T09:00:00Z", r#", "lat": 31.2305, "lon": 121.4738"#),
        line("yesterday-ish", r#", "lat": 31.2305, "lon": 121.4738"#),
        line("2026-01-05T10:00:00Z", ""),
        line("2026-01-05T11:00:00Z", r#", "lat": 95.0, "lon": 121.4738"#),
        r#"{"customer": "nobody", "at": "2026-01-05T12:00:00Z", "minutes": 5, "purpose": "p", "outcome": "o", "reason": "no GPS"}"#.to_owned(),
        format!(r#"{{"customer": "acme", "at": "2026-01-05T13:00:00Z", "minutes": 5, "purpose": "{long}", "outcome": "o", "reason": "no GPS"}}"#),
        "not json".to_owned(),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let before = pending(&rep);

    let out = rep.run(&["visit", "import", file.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("6 lines in") && err.contains("are bad; nothing was imported"),
        "{err}"
    );
    for n in 2..=7 {
        assert!(
            err.contains(&format!("line {n}:")),
            "line {n} not named: {err}"
        );
    }
    assert!(!err.contains("line 1:"), "{err}");
    assert!(err.contains("needs a reason"), "{err}");
    assert!(err.contains("hint:"), "{err}");

    let visits: Value = rep.json(&["visit", "list"]);
    assert_eq!(
        visits.as_array().unwrap().len(),
        0,
        "half-written data: {visits}"
    );
    assert_eq!(pending(&rep), before);
}

#[test]
fn a_good_file_is_imported_and_synced_like_logged_visits() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server);
    let file = rep.home().join("visits.jsonl");
    let body = [
        line(
            "2026-01-05T09:00:00Z",
            r#", "lat": 31.2305, "lon": 121.4738"#,
        ),
        String::new(),
        line("2026-01-06T09:00:00+08:00", r#", "reason": "GPS was off""#),
        line("2026-01-07 09:30", r#", "lat": 31.2305, "lon": 121.4738"#),
    ]
    .join("\n");
    std::fs::write(&file, body).unwrap();

    let out = rep.json(&["visit", "import", file.to_str().unwrap()]);
    assert_eq!(out["imported"], 3);
    let visits = rep.json(&["visit", "list"]);
    let visits = visits.as_array().unwrap();
    assert_eq!(visits.len(), 3);
    assert!(
        visits
            .iter()
            .all(|v| v["pending"] == true && v["minutes"] == 45)
    );
    assert!(
        visits
            .iter()
            .any(|v| v["no_location_reason"] == "GPS was off")
    );

    let sync = rep.json(&["sync"]);
    assert_eq!(sync["applied"], 4, "customer and three visits: {sync}");
    assert_eq!(sync["rejected"], 0);
    let visits = rep.json(&["visit", "list"]);
    assert!(
        visits
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["pending"] == false && v["verdict_source"] == "server")
    );
}

#[test]
fn import_reads_stdin_with_a_dash() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server);
    let out = rep.run_with_stdin(
        &["visit", "import", "-"],
        Some(&line("2026-01-05T09:00:00Z", r#", "reason": "no GPS""#)),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Imported 1 visit"),
        "{}",
        stderr(&out)
    );
}

/// A bootstrap of more records than one pulled page (5,000) fetches the
/// next page while it stores the current one: every record arrives once,
/// in order, and the stored state matches the server's checksums.
#[test]
fn a_new_laptop_pulls_several_pages_and_ends_identical_to_the_server() {
    let server = TestServer::start().unwrap();
    let rep = rep_with_customer(&server);
    let file = rep.home().join("visits.jsonl");
    let base = chrono::Utc::now() - chrono::Duration::days(60);
    let visits = 10_500;
    let body: Vec<String> = (0..visits)
        .map(|i| {
            let at = base + chrono::Duration::minutes(7 * i64::from(i));
            line(
                &at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                r#", "lat": 31.2305, "lon": 121.4738"#,
            )
        })
        .collect();
    std::fs::write(&file, body.join("\n")).unwrap();
    assert_eq!(
        rep.json(&["visit", "import", file.to_str().unwrap()])["imported"],
        visits
    );
    let sync = rep.json(&["sync"]);
    assert_eq!(sync["applied"], visits + 1, "{sync}");

    let laptop = Device::new("second laptop").unwrap();
    laptop.login(&server.url(), "li.wei", PW);
    let sync = laptop.json(&["sync", "--verify"]);
    let pulled = sync["pulled"].as_u64().unwrap();
    assert!(
        pulled > 10_000 && pulled < 10_600,
        "three pages of the rep's scope: {sync}"
    );
    assert_eq!(
        laptop.json(&["visit", "list"]).as_array().unwrap().len(),
        usize::try_from(visits).unwrap()
    );
    // Nothing is pulled twice: a second sync brings nothing new.
    assert_eq!(laptop.json(&["sync"])["pulled"], 0);
}
