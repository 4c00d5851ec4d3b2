//! End-to-end: a rep's laptop whose outbox was tampered with tries to
//! rewrite the rep's own HQ-calibrated evaluation. The real server refuses
//! the op naming the field, the laptop shows it as a sync problem, and the
//! reward suggestion and the HQ scorecard keep the calibrated figures.

use chrono::{Datelike, Utc};
use fieldsync_e2e::{ADMIN_PASSWORD, Device, TestServer, stderr};
use serde_json::{Value, json};
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::{DeviceId, Hlc, Op, OpId, OpKind, RecordId};

const PW: &str = "correct horse battery";

fn user(server: &TestServer, admin: &Device, name: &str, role: &str, team: Option<&str>) -> Device {
    admin.add_user(&server.url(), name, role, (team, None), PW)
}

/// Write `fields` as a patch of `record` straight into the laptop's
/// outbox, past every check of the CLI, as a tampered laptop would.
fn tamper(laptop: &Device, collection: &str, record: &str, fields: Value) {
    let device: DeviceId = laptop.json(&["whoami"])["device_id"]
        .as_str()
        .expect("device id")
        .parse()
        .expect("a device id");
    let db = rusqlite::Connection::open(laptop.home().join("fieldsync.db")).expect("profile db");
    let last: u64 = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'last_device_seq'",
            [],
            |r| r.get::<_, String>(0),
        )
        .map_or(0, |v| v.parse().expect("a number"));
    let now = Utc::now();
    let op = Op {
        op_id: OpId::new_v7(now),
        device_id: device,
        device_seq: last + 1,
        hlc: Hlc::from_wall(now, device),
        schema_version: SCHEMA_VERSION,
        collection: collection.into(),
        record_id: record.parse::<RecordId>().expect("record id"),
        kind: OpKind::Patch,
        fields: serde_json::from_value(fields).expect("fields"),
        transition: None,
        base: None,
    };
    db.execute(
        "INSERT INTO outbox (device_seq, op_id, collection, record_id, op, written_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            (last + 1) as i64,
            op.op_id.to_string(),
            collection,
            record,
            serde_json::to_string(&op).expect("op json"),
            now.to_rfc3339()
        ],
    )
    .expect("insert into the outbox");
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('last_device_seq', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [(last + 1).to_string()],
    )
    .expect("bump the sequence");
}

/// The value in `column` of the scorecard row whose first cell is `key`.
fn scorecard_cell(report: &Value, key: &str, column: &str) -> Value {
    let t = report["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "rows")
        .expect("rows table");
    let i = t["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .position(|c| c == column)
        .expect("column");
    t["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r[0] == key)
        .unwrap_or_else(|| panic!("no row {key}"))[i]
        .clone()
}

fn suggestion(hq: &Device, period: &str, rep: &str) -> (f64, String, f64) {
    let all = hq.json(&["reward", "suggest", "--period", period]);
    let s = all
        .as_array()
        .expect("suggestions")
        .iter()
        .find(|s| s["rep"] == rep)
        .unwrap_or_else(|| panic!("no suggestion for {rep}: {all}"));
    (
        s["suggestion"]["value"].as_f64().expect("value"),
        s["suggestion"]["tier"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        s["suggestion"]["payout"].as_f64().unwrap_or_default(),
    )
}

#[test]
fn a_rep_cannot_rewrite_their_own_calibrated_evaluation_through_a_tampered_laptop() {
    let server = TestServer::start().expect("server");
    let admin = Device::new("admin").expect("profile");
    admin.login(&server.url(), "admin", ADMIN_PASSWORD);
    admin.ok(&["admin", "team", "add", "north", "--region", "North"]);
    let hq = user(&server, &admin, "hq", "hq", None);
    let sup = user(&server, &admin, "sup", "supervisor", Some("north"));
    let ann = user(&server, &admin, "ann", "rep", Some("north"));

    hq.ok(&[
        "evaluation",
        "template",
        "set",
        "--line",
        "visits:100:linear:5",
    ]);
    hq.ok(&[
        "incentive-plan",
        "set",
        "standard",
        "--basis",
        "score",
        "--target",
        "70",
        "--currency",
        "CNY",
        "--tier",
        "name=bronze,min=40,payout=500",
        "--tier",
        "name=silver,min=60,payout=1500",
        "--tier",
        "name=gold,min=75,payout=3000",
    ]);
    hq.ok(&["sync"]);
    sup.ok(&["sync"]);
    let today = Utc::now().date_naive();
    let period = format!("{:04}-{:02}", today.year(), today.month());
    let draft = sup.json(&["evaluation", "draft", "ann", "--period", &period]);
    let id = draft["id"].as_str().expect("id").to_owned();
    sup.ok(&[
        "evaluation",
        "rate",
        &id,
        "--rating",
        "2",
        "--comment",
        "Below target",
    ]);
    sup.ok(&["evaluation", "submit", &id]);
    sup.ok(&["sync"]);
    ann.ok(&["sync"]);
    ann.ok(&["evaluation", "ack", &id]);
    ann.ok(&["sync"]);
    hq.ok(&["sync"]);
    let calibrated = hq.json(&[
        "evaluation",
        "calibrate",
        &id,
        "--score",
        "40",
        "--reason",
        "Regional calibration",
    ]);
    assert_eq!(calibrated["status"], "final");
    assert_eq!(calibrated["tier"], "bronze");
    hq.ok(&["sync"]);
    assert_eq!(
        suggestion(&hq, &period, "ann"),
        (40.0, "bronze".into(), 500.0)
    );

    // The CLI itself refuses the edit: a rep has no command for it, and the
    // outbox checks the same rules the server does.
    ann.ok(&["sync"]);
    let refused = ann.run(&[
        "evaluation",
        "calibrate",
        &id,
        "--score",
        "99",
        "--reason",
        "x",
    ]);
    assert!(!refused.status.success());

    // A tampered laptop sends it anyway.
    tamper(
        &ann,
        "evaluations",
        &id,
        json!({"score": 99.0, "tier": "gold", "calibration_reason": "HQ regional calibration"}),
    );
    let out = ann.run(&["sync"]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("fieldsync problems list"),
        "the sync points at the problem: {said}"
    );
    let problems = ann.json(&["problems", "list"]);
    let p = &problems.as_array().expect("problems")[0];
    assert_eq!(p["code"], "forbidden", "{p}");
    assert_eq!(p["field"], "calibration_reason", "{p}");
    let table = ann.ok(&["problems", "list"]);
    assert!(
        table.contains("FIELD") && table.contains("calibration_reason"),
        "{table}"
    );

    // Nothing moved: the laptop, HQ's reward suggestion and HQ's scorecard
    // all keep 40 / bronze.
    ann.ok(&["sync"]);
    let seen = ann.json(&["evaluation", "show", &id]);
    assert_eq!(
        (seen["score"].as_f64(), seen["tier"].as_str()),
        (Some(40.0), Some("bronze"))
    );
    hq.ok(&["sync"]);
    assert_eq!(
        suggestion(&hq, &period, "ann"),
        (40.0, "bronze".into(), 500.0)
    );
    let card = hq.json(&["hq", "scorecard", "--period", &period]);
    assert_eq!(
        scorecard_cell(&card, "ann", "evaluation_score").as_f64(),
        Some(40.0)
    );
    assert_eq!(
        scorecard_cell(&card, "ann", "evaluation_tier"),
        json!("bronze")
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.url()))
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("fieldsync_ops_rejected_total{code=\"forbidden\"} 1"),
        "{metrics}"
    );
}
