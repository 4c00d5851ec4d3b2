use crate::helpers::{
    Device, customer_fields, error_of, eventually, json_of, spawn_app, status, upserts,
};
use chrono::Utc;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;
use sync_protocol::schema::Role;
use sync_protocol::wire::{DeviceInfo, PushRequest, PushResponse};
use sync_protocol::{OpKind, RecordId};

#[test]
fn the_same_push_twice_applies_once_and_replays_the_stored_outcome() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, a) = rep.create("customers", customer_fields("Acme"));
    let (_, b) = rep.create("customers", customer_fields("Bolt"));
    let ops = vec![a, b];
    let first = app.push(&mut rep, ops.clone());
    let second = app.push(&mut rep, ops);
    assert_eq!(first.outcomes, second.outcomes);
    assert_eq!((first.acked_through, second.acked_through), (2, 2));
    let mut admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
    let customers = app.pull(&mut admin);
    assert_eq!(
        upserts(&customers)
            .iter()
            .filter(|r| r.collection == "customers")
            .count(),
        2
    );
    let m = app.get("/metrics", None).text().unwrap();
    assert!(
        m.contains("fieldsync_ops_total{outcome=\"replayed\"} 2"),
        "{m}"
    );
}

/// Another process holding the database file (a backup, an operator's
/// `sqlite3`) makes a push wait for its lock only until the busy timeout:
/// the device gets a retryable 503 instead of a request that never ends,
/// and the same push sent again once the lock is gone applies once.
#[test]
fn a_push_blocked_by_a_held_database_lock_gets_a_retryable_503_and_its_resend_applies_once() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, op) = rep.create("customers", customer_fields("Acme"));
    let other = rusqlite::Connection::open(app.db_file()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let start = std::time::Instant::now();
    let r = app.push_raw(&mut rep, vec![op.clone()]);
    let waited = start.elapsed();
    let retry_after = r.headers().get("retry-after").cloned();
    assert_eq!(error_of(r), (503, "unavailable".to_owned()));
    assert_eq!(
        retry_after.as_ref().and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert!(waited < Duration::from_secs(25), "waited {waited:?}");
    other.execute_batch("ROLLBACK").unwrap();
    let first = app.push(&mut rep, vec![op.clone()]);
    let again = app.push(&mut rep, vec![op]);
    assert_eq!(first.outcomes, again.outcomes);
    assert_eq!(first.acked_through, 1);
    let outcome = serde_json::to_value(&first.outcomes[0].outcome).unwrap();
    assert_eq!(status(&outcome), "applied", "{outcome}");
    let mut admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
    let customers = upserts(&app.pull(&mut admin))
        .iter()
        .filter(|r| r.collection == "customers")
        .count();
    assert_eq!(customers, 1);
}

#[test]
fn a_push_whose_response_is_lost_applies_once_when_resent() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let ops: Vec<_> = (0..3)
        .map(|i| rep.create("customers", customer_fields(&format!("C{i}"))).1)
        .collect();
    let body = serde_json::to_vec(&PushRequest {
        ops: ops.clone(),
        clock: rep.clock.now(Utc::now()),
    })
    .unwrap();
    // Send the request, never read the answer, and hang up once the server has stored it.
    let mut s = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
    write!(s, "POST /v1/sync/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", rep.token, body.len()).unwrap();
    s.write_all(&body).unwrap();
    s.flush().unwrap();
    eventually(Duration::from_secs(10), || {
        let list: Vec<DeviceInfo> = json_of(
            app.get("/v1/admin/devices?user=ann", Some(&app.admin.token)),
            200,
        );
        (list[0].acked_through == 3).then_some(())
    });
    drop(s);
    let resent = app.push(&mut rep, ops);
    assert!(
        resent
            .outcomes
            .iter()
            .all(|o| o.outcome.status() == "applied")
    );
    let mut admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
    let changes = app.pull(&mut admin);
    assert_eq!(
        upserts(&changes)
            .iter()
            .filter(|r| r.collection == "customers")
            .count(),
        3,
        "applied exactly once"
    );
    let m = app.get("/metrics", None).text().unwrap();
    assert!(
        m.contains("fieldsync_ops_total{outcome=\"applied\"} 3"),
        "applied exactly once:\n{m}"
    );
    assert!(
        m.contains("fieldsync_ops_total{outcome=\"replayed\"} 3"),
        "{m}"
    );
}

#[test]
fn a_gap_in_device_seq_asks_to_resend_from_the_first_missing_op() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, a) = rep.create("customers", customer_fields("A"));
    let (_, _lost) = rep.create("customers", customer_fields("B"));
    let (_, c) = rep.create("customers", customer_fields("C"));
    let r = app.push(&mut rep, vec![a, c]);
    assert_eq!(
        (r.acked_through, r.resend_from, r.outcomes.len()),
        (1, Some(2), 1)
    );
}

#[test]
fn concurrent_patches_to_different_fields_both_survive() {
    let app = spawn_app();
    let mut one = app.user_device("ann", Role::Rep, None);
    let mut two = app.login("ann", "ann-password");
    let (id, c) = one.create("customers", customer_fields("Acme"));
    app.push(&mut one, vec![c]);
    let p1 = one.op("customers", id, OpKind::Patch, json!({"phone": "123"}));
    let p2 = two.op(
        "customers",
        id,
        OpKind::Patch,
        json!({"address": "Main St"}),
    );
    assert_eq!(status(&app.push_one(&mut one, p1)), "applied");
    assert_eq!(status(&app.push_one(&mut two, p2)), "applied");
    let changes = app.pull(&mut one);
    let rec = upserts(&changes)
        .into_iter()
        .find(|r| r.id == id)
        .unwrap()
        .clone();
    assert_eq!(rec.get_str("phone"), Some("123"));
    assert_eq!(rec.get_str("address"), Some("Main St"));
}

#[test]
fn on_the_same_field_the_later_clock_wins_and_the_loser_is_superseded_with_the_winner() {
    let app = spawn_app();
    let mut one = app.user_device("ann", Role::Rep, None);
    let mut two = app.login("ann", "ann-password");
    let (id, c) = one.create("customers", customer_fields("Acme"));
    app.push(&mut one, vec![c]);
    let now = Utc::now().timestamp_millis() as u64;
    let later = Device::at(
        one.op("customers", id, OpKind::Patch, json!({"phone": "later"})),
        now + 2_000,
    );
    let earlier = Device::at(
        two.op("customers", id, OpKind::Patch, json!({"phone": "earlier"})),
        now + 1_000,
    );
    assert_eq!(status(&app.push_one(&mut one, later)), "applied");
    let lost = app.push_one(&mut two, earlier);
    assert_eq!(status(&lost), "superseded", "{lost}");
    assert_eq!(lost["conflicts"][0]["winning_value"], "later");
    assert_eq!(lost["conflicts"][0]["losing_value"], "earlier");
    let changes = app.pull(&mut two);
    assert_eq!(
        upserts(&changes)
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .get_str("phone"),
        Some("later")
    );
}

#[test]
fn a_stale_transition_is_rejected_as_a_problem_and_does_not_undo_the_newer_state() {
    let app = spawn_app();
    app.create_team("north");
    let mut rep = app.user_device("ann", Role::Rep, Some("north"));
    let mut sup = app.user_device("sue", Role::Supervisor, Some("north"));
    let (cid, c) = rep.create("customers", customer_fields("Acme"));
    let (fid, f) = rep.create("feedback", json!({"customer_id": cid, "kind": "complaint", "text": "late", "opened_at": "2026-11-28T09:00:00.000Z"}));
    app.push(&mut rep, vec![c, f]);
    let resolve = sup.transition(
        "feedback",
        fid,
        "status",
        "open",
        "resolved",
        json!({"resolution": "refunded"}),
    );
    assert_eq!(status(&app.push_one(&mut sup, resolve)), "applied");
    let stale = rep.transition("feedback", fid, "status", "open", "in_progress", json!({}));
    let out = app.push_one(&mut rep, stale);
    assert_eq!(
        (status(&out), out["code"].as_str()),
        ("rejected", Some("stale_transition")),
        "{out}"
    );
    let after = rep.op(
        "feedback",
        fid,
        OpKind::Patch,
        json!({"status_note": "still here"}),
    );
    assert_eq!(
        status(&app.push_one(&mut rep, after)),
        "applied",
        "a rejected op does not block later ops"
    );
    let changes = app.pull(&mut rep);
    assert_eq!(
        upserts(&changes)
            .into_iter()
            .find(|r| r.id == fid)
            .unwrap()
            .get_str("status"),
        Some("resolved")
    );
    let problems: Vec<Value> = json_of(app.get("/v1/admin/problems", Some(&app.admin.token)), 200);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["code"], "stale_transition");
    let for_sup: Vec<Value> = json_of(
        app.get("/v1/admin/problems?team=north", Some(&sup.token)),
        200,
    );
    assert_eq!(for_sup.len(), 1);
    assert_eq!(
        error_of(app.get("/v1/admin/problems", Some(&rep.token))).0,
        403
    );
}

#[test]
fn a_clock_far_ahead_gets_a_warning_and_the_op_is_kept_without_winning() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let mut other = app.login("ann", "ann-password");
    let (id, c) = rep.create("customers", customer_fields("Acme"));
    app.push(&mut rep, vec![c]);
    let far = Utc::now().timestamp_millis() as u64 + 3_600_000;
    let ahead = Device::at(
        rep.op("customers", id, OpKind::Patch, json!({"phone": "future"})),
        far,
    );
    let r = app.push(&mut rep, vec![ahead]);
    let w = r.clock_warning.expect("clock warning");
    assert!(w.ahead_ms > w.limit_ms);
    assert_eq!(r.outcomes[0].outcome.status(), "applied");
    // A later honest edit still wins over the re-stamped one.
    let honest = other.op("customers", id, OpKind::Patch, json!({"phone": "present"}));
    let honest = Device::at(honest, Utc::now().timestamp_millis() as u64 + 1_000);
    assert_eq!(status(&app.push_one(&mut other, honest)), "applied");
    let changes = app.pull(&mut rep);
    let rec = upserts(&changes)
        .into_iter()
        .find(|r| r.id == id)
        .unwrap()
        .clone();
    assert_eq!(rec.get_str("phone"), Some("present"));
    let list: Vec<DeviceInfo> = json_of(
        app.get("/v1/admin/devices?user=ann", Some(&app.admin.token)),
        200,
    );
    assert!(list.iter().any(|d| d.id == rep.id));
}

#[test]
fn a_gzip_compressed_push_is_accepted() {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, c) = rep.create("customers", customer_fields("Acme"));
    let body = serde_json::to_vec(&PushRequest {
        ops: vec![c],
        clock: rep.clock.now(Utc::now()),
    })
    .unwrap();
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&body).unwrap();
    let gz = enc.finish().unwrap();
    let r = app
        .client
        .post(app.url("/v1/sync/push"))
        .bearer_auth(&rep.token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .unwrap();
    let r: PushResponse = json_of(r, 200);
    assert_eq!(r.outcomes[0].outcome.status(), "applied");
}

#[test]
fn the_server_sets_owner_and_judges_gps_including_impossible_travel() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (cid, c) = rep.create("customers", customer_fields("Shanghai"));
    let (far_id, far) = rep.create("customers", json!({"name": "Beijing", "created_at": "2026-11-28T09:00:00.000Z", "location": {"lat": 39.9087, "lon": 116.3975}}));
    let (v1, visit1) = rep.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z", "check_in": {"lat": 31.2305, "lon": 121.4737}, "check_in_accuracy_m": 10}),
    );
    let (v2, visit2) = rep.create(
        "visits",
        json!({"customer_id": far_id, "started_at": "2026-11-28T10:30:00.000Z", "check_in": {"lat": 39.9087, "lon": 116.3975}, "check_in_accuracy_m": 10}),
    );
    let r = app.push(&mut rep, vec![c, far, visit1, visit2]);
    assert!(
        r.outcomes.iter().all(|o| o.outcome.status() == "applied"),
        "{r:?}"
    );
    let changes = app.pull(&mut rep);
    let find = |id: RecordId| {
        upserts(&changes)
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        find(cid).get_str("owner_id"),
        Some(rep.user.id.to_string().as_str())
    );
    assert_eq!(find(v1).get_str("gps_verdict"), Some("verified"));
    let second = find(v2);
    assert_eq!(
        second.get_str("gps_verdict"),
        Some("suspicious"),
        "{second:?}"
    );
    assert!(
        second
            .get("gps_reasons")
            .unwrap()
            .to_string()
            .contains("km/h")
    );
}

#[test]
fn new_users_and_teams_reach_every_device_through_pull() {
    let app = spawn_app();
    let team = app.create_team("north");
    let mut rep = app.user_device("ann", Role::Rep, Some("north"));
    let changes = app.pull(&mut rep);
    let recs = upserts(&changes);
    assert!(recs.iter().any(|r| r.collection == "teams"
        && r.id.0 == team.id.0
        && r.get_str("name") == Some("north")));
    assert!(recs.iter().any(|r| r.collection == "users"
        && r.id.0 == rep.user.id.0
        && r.get_str("role") == Some("rep")));
    assert!(
        recs.iter()
            .any(|r| r.collection == "users" && r.get_str("username") == Some("admin"))
    );
    app.post(
        "/v1/admin/users/ann/deactivate",
        Some(&app.admin.token),
        &json!({}),
    );
    let mut admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
    let changes = app.pull(&mut admin);
    let ann = upserts(&changes)
        .into_iter()
        .find(|r| r.id.0 == rep.user.id.0)
        .unwrap()
        .clone();
    assert_eq!(ann.get("active"), Some(&json!(false)));
}

#[test]
fn a_zstd_compressed_push_is_accepted() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, c) = rep.create("customers", customer_fields("Acme"));
    let body = serde_json::to_vec(&PushRequest {
        ops: vec![c],
        clock: rep.clock.now(Utc::now()),
    })
    .unwrap();
    let packed = zstd::encode_all(&body[..], 3).unwrap();
    let r = app
        .client
        .post(app.url("/v1/sync/push"))
        .bearer_auth(&rep.token)
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(packed)
        .send()
        .unwrap();
    let r: PushResponse = json_of(r, 200);
    assert_eq!(r.outcomes[0].outcome.status(), "applied");
}

/// Push and pull answers come zstd-compressed to a client that prefers
/// zstd (compressed by the handler), gzip-compressed to one that asks for
/// gzip (by the middleware), and plain otherwise; each decodes to the same
/// answer.
#[test]
fn sync_answers_are_compressed_as_the_client_asks() {
    use std::io::Read;
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, c) = rep.create("customers", customer_fields("Acme"));
    let raw = reqwest::blocking::Client::builder()
        .no_gzip()
        .no_zstd()
        .build()
        .unwrap();
    let push = serde_json::to_vec(&PushRequest {
        ops: vec![c],
        clock: rep.clock.now(Utc::now()),
    })
    .unwrap();
    let pull = br#"{"cursor":0,"limit":100}"#.to_vec();
    for (path, body) in [("/v1/sync/push", push), ("/v1/sync/pull", pull)] {
        let mut answers = Vec::new();
        for accept in [Some("gzip;q=0.5, zstd"), Some("gzip"), None] {
            let mut req = raw
                .post(app.url(path))
                .bearer_auth(&rep.token)
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(a) = accept {
                req = req.header("accept-encoding", a);
            }
            let r = req.send().unwrap();
            assert_eq!(r.status(), 200, "{path} {accept:?}");
            let encoding = r
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = r.bytes().unwrap().to_vec();
            let json = match encoding.as_deref() {
                Some("zstd") => zstd::decode_all(&bytes[..]).unwrap(),
                Some("gzip") => {
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                }
                None => bytes,
                Some(other) => panic!("unexpected encoding {other}"),
            };
            let expected = match accept {
                Some(a) if a.contains("zstd") => Some("zstd"),
                Some(_) => Some("gzip"),
                None => None,
            };
            assert_eq!(encoding.as_deref(), expected, "{path} {accept:?}");
            let mut v: Value = serde_json::from_slice(&json).unwrap();
            // The server's clock moves between answers.
            v.as_object_mut().unwrap().remove("server_clock");
            answers.push(v);
        }
        assert_eq!(answers[0], answers[1], "{path}");
        assert_eq!(answers[1], answers[2], "{path}");
    }
}

#[test]
fn a_push_dropped_mid_flight_then_resent_applies_once() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let ops: Vec<_> = (0..3)
        .map(|i| rep.create("customers", customer_fields(&format!("C{i}"))).1)
        .collect();
    let body = serde_json::to_vec(&PushRequest {
        ops: ops.clone(),
        clock: rep.clock.now(Utc::now()),
    })
    .unwrap();
    {
        // Hang up right after sending: the server may or may not get to apply it.
        let mut s = std::net::TcpStream::connect(app.base.trim_start_matches("http://")).unwrap();
        write!(s, "POST /v1/sync/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", rep.token, body.len()).unwrap();
        s.write_all(&body).unwrap();
    }
    let resent = app.push(&mut rep, ops.clone());
    assert_eq!(resent.acked_through, 3);
    assert!(
        resent
            .outcomes
            .iter()
            .all(|o| o.outcome.status() == "applied"),
        "{resent:?}"
    );
    let again = app.push(&mut rep, ops);
    assert_eq!(again.outcomes, resent.outcomes);
    let mut admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
    let changes = app.pull(&mut admin);
    assert_eq!(
        upserts(&changes)
            .iter()
            .filter(|r| r.collection == "customers")
            .count(),
        3
    );
}
