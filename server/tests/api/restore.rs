//! A profile restored from a backup, or copied to a second laptop: the
//! same device sends two histories. The server tells that from a replay,
//! applies nothing after it, and lets the copy become a device of its own
//! whose renumbered ops are recognised by `op_id`.

use crate::helpers::{
    Device, TestApp, customer_fields, error_of, json_of, spawn_app, status, upserts,
};
use serde_json::{Value, json};
use sync_protocol::hlc::HlcClock;
use sync_protocol::schema::Role;
use sync_protocol::wire::{DeviceInfo, LoginResponse, Outcome, PushResponse};
use sync_protocol::{DeviceId, Op};

/// The same device as `dev` (token and id) whose numbering is back at `seq`:
/// what a restored backup holds.
fn restored(dev: &mut Device, seq: u64) -> Device {
    let mut clock = HlcClock::new(dev.id);
    clock.observe(&dev.clock.now(chrono::Utc::now()));
    Device {
        token: dev.token.clone(),
        id: dev.id,
        user: dev.user.clone(),
        seq,
        clock,
        cursor: 0,
    }
}

/// Register a new device with `dev`'s token.
fn register(app: &TestApp, dev: &Device, body: &Value) -> reqwest::blocking::Response {
    app.post("/v1/auth/devices", Some(&dev.token), body)
}

/// `dev`'s ops renumbered for `to` (same op ids, content and clocks).
fn renumbered(ops: &[Op], to: DeviceId) -> Vec<Op> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| Op {
            device_id: to,
            device_seq: i as u64 + 1,
            ..op.clone()
        })
        .collect()
}

fn customers(app: &TestApp, dev: &mut Device) -> Vec<String> {
    let changes = app.pull(dev);
    let mut names: Vec<String> = upserts(&changes)
        .iter()
        .filter(|s| s.collection == "customers")
        .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn device_row(app: &TestApp, id: DeviceId) -> DeviceInfo {
    let all: Vec<DeviceInfo> = json_of(app.get("/v1/admin/devices", Some(&app.admin.token)), 200);
    all.into_iter().find(|d| d.id == id).expect("device listed")
}

#[test]
fn another_op_under_an_acknowledged_number_diverges_and_nothing_after_it_is_applied() {
    let app = spawn_app();
    let mut rep = app.user_device("rita", Role::Rep, None);
    let (_, first) = rep.create("customers", customer_fields("First"));
    let (_, second) = rep.create("customers", customer_fields("Second"));
    let r = app.push(&mut rep, vec![first.clone(), second]);
    assert_eq!(r.acked_through, 2);

    // The backup knew op 1 only; it writes its own op 2 and an op 3.
    let mut copy = restored(&mut rep, 1);
    let (_, other) = copy.create("customers", customer_fields("Other"));
    let (_, beyond) = copy.create("customers", customer_fields("Beyond"));
    let raw = app.push_raw(&mut copy, vec![first, other, beyond]);
    let r: PushResponse = json_of(raw, 200);
    let statuses: Vec<&str> = r.outcomes.iter().map(|o| o.outcome.status()).collect();
    assert_eq!(
        statuses,
        ["applied", "device_diverged", "device_diverged"],
        "{r:?}"
    );
    assert_eq!(r.acked_through, 2, "nothing after the divergence is taken");
    assert_eq!(r.resend_from, None);
    let Outcome::DeviceDiverged { message } = &r.outcomes[1].outcome else {
        unreachable!()
    };
    assert!(message.contains("POST /v1/auth/devices"), "{message}");
    // The wire shape, as documented.
    let v = serde_json::to_value(&r.outcomes[2]).unwrap();
    assert_eq!(v["outcome"]["status"], "device_diverged");
    assert_eq!(v["device_seq"], 3);

    assert_eq!(customers(&app, &mut rep), ["First", "Second"]);
    let problems: Vec<Value> = json_of(app.get("/v1/admin/problems", Some(&app.admin.token)), 200);
    assert!(
        problems.is_empty(),
        "a divergence is no problem: {problems:?}"
    );
    assert_eq!(device_row(&app, rep.id).acked_through, 2);
}

#[test]
fn a_request_that_shows_a_divergence_applies_nothing_new() {
    let app = spawn_app();
    let mut rep = app.user_device("rita", Role::Rep, None);
    let (_, first) = rep.create("customers", customer_fields("First"));
    app.push(&mut rep, vec![first]);

    // A new op (2) ahead of another op under the acknowledged number 1.
    let mut copy = restored(&mut rep, 0);
    let (_, other) = copy.create("customers", customer_fields("Other"));
    let (_, new) = copy.create("customers", customer_fields("New"));
    let r = app.push(&mut copy, vec![new, other]);
    let statuses: Vec<&str> = r.outcomes.iter().map(|o| o.outcome.status()).collect();
    assert_eq!(statuses, ["device_diverged", "device_diverged"], "{r:?}");
    assert_eq!(r.acked_through, 1);

    // Two ops under one new number.
    let mut twice = restored(&mut rep, 1);
    let (_, a) = twice.create("customers", customer_fields("A"));
    let b = Op {
        device_seq: 2,
        ..twice.create("customers", customer_fields("B")).1
    };
    let r = app.push(&mut twice, vec![a, b]);
    let statuses: Vec<&str> = r.outcomes.iter().map(|o| o.outcome.status()).collect();
    assert_eq!(statuses, ["device_diverged", "device_diverged"], "{r:?}");
    assert_eq!(r.acked_through, 1);
    assert_eq!(customers(&app, &mut rep), ["First"]);
}

#[test]
fn a_restored_device_re_registers_and_its_renumbered_ops_apply_once() {
    let app = spawn_app();
    let mut rep = app.user_device("rita", Role::Rep, None);
    let (_, a) = rep.create("customers", customer_fields("A"));
    let (_, b) = rep.create("customers", customer_fields("B"));
    // The laptop sent op 1 and op 2 after the backup was taken...
    app.push(&mut rep, vec![a.clone(), b.clone()]);
    // ...and the backup, restored, still holds both as pending, plus its own.
    let mut copy = restored(&mut rep, 0);
    let (_, b2) = copy.create("customers", customer_fields("B2"));
    let pending = vec![a, restored_op(&b2, 2)];
    let r = app.push(&mut copy, pending.clone());
    assert_eq!(r.outcomes[1].outcome.status(), "device_diverged");

    let body =
        json!({"device_id": DeviceId::new_v7(chrono::Utc::now()), "device_name": "rita-restored"});
    let mut fresh = Device::registered(json_of(register(&app, &copy, &body), 201));
    assert_eq!(fresh.id.to_string(), body["device_id"].as_str().unwrap());
    assert_ne!(fresh.token, rep.token);
    let me: Value = json_of(app.get("/v1/auth/whoami", Some(&fresh.token)), 200);
    assert_eq!(me["device_id"], json!(fresh.id));
    assert_eq!(me["user"]["username"], "rita");

    let renumbered = renumbered(&pending, fresh.id);
    let r = app.push(&mut fresh, renumbered.clone());
    let statuses: Vec<&str> = r.outcomes.iter().map(|o| o.outcome.status()).collect();
    assert_eq!(statuses, ["applied", "applied"], "{r:?}");
    assert_eq!(r.acked_through, 2);
    // Sent again (an answer lost): replays, by number now.
    let again = app.push(&mut fresh, renumbered);
    assert_eq!(again.outcomes, r.outcomes);
    assert_eq!(customers(&app, &mut fresh), ["A", "B", "B2"]);
    // The old device carries on for the laptop that still uses it.
    let (_, c) = rep.create("customers", customer_fields("C"));
    assert_eq!(status(&app.push_one(&mut rep, c)), "applied");
    assert_eq!(device_row(&app, fresh.id).acked_through, 2);
    assert_eq!(device_row(&app, rep.id).acked_through, 3);
}

/// `op` under another number of its device.
fn restored_op(op: &Op, seq: u64) -> Op {
    Op {
        device_seq: seq,
        ..op.clone()
    }
}

#[test]
fn an_op_id_sent_twice_in_one_push_applies_once() {
    let app = spawn_app();
    let mut rep = app.user_device("rita", Role::Rep, None);
    let (_, a) = rep.create("customers", customer_fields("A"));
    let twice = Op {
        device_seq: 2,
        ..a.clone()
    };
    let r = app.push(&mut rep, vec![a, twice]);
    assert_eq!(r.outcomes[0].outcome, r.outcomes[1].outcome);
    assert_eq!(r.acked_through, 2);
    assert_eq!(customers(&app, &mut rep), ["A"]);
}

#[test]
fn registering_a_device_is_idempotent_until_it_sends_and_refuses_strangers() {
    let app = spawn_app();
    let mut rep = app.user_device("rita", Role::Rep, None);
    let other = app.user_device("otto", Role::Rep, None);
    let id = DeviceId::new_v7(chrono::Utc::now());
    let body = json!({"device_id": id, "device_name": "rita-2"});

    // The first answer was lost: the retry gets the same device, a new token.
    let lost: LoginResponse = json_of(register(&app, &rep, &body), 201);
    let mut fresh = Device::registered(json_of(register(&app, &rep, &body), 201));
    assert_eq!((lost.device_id, fresh.id), (id, id));
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", Some(&lost.token))).0,
        401,
        "the lost token was replaced"
    );
    // Another user cannot take it, nor can the device re-register itself.
    assert_eq!(
        error_of(register(&app, &other, &body)),
        (409, "already_exists".into())
    );
    assert_eq!(
        error_of(register(&app, &fresh, &body)),
        (409, "already_exists".into())
    );
    // Once it has sent something, it is nobody's to take over.
    let (_, a) = fresh.create("customers", customer_fields("A"));
    assert_eq!(status(&app.push_one(&mut fresh, a)), "applied");
    assert_eq!(
        error_of(register(&app, &rep, &body)),
        (409, "already_exists".into())
    );
    // Without an id, a new one; a bad name is refused.
    let anew: LoginResponse = json_of(register(&app, &rep, &json!({"device_name": "rita-3"})), 201);
    assert!(anew.device_id != id && anew.device_id != rep.id);
    assert_eq!(
        error_of(register(&app, &rep, &json!({"device_name": "  "}))),
        (400, "out_of_range".into())
    );
    assert_eq!(
        error_of(app.post("/v1/auth/devices", None, &json!({"device_name": "x"}))).0,
        401
    );
    let _ = &mut rep;
}

#[test]
fn a_revoked_or_logged_out_device_cannot_register_another() {
    let app = spawn_app();
    let rep = app.user_device("rita", Role::Rep, None);
    let r = app.post(
        &format!("/v1/admin/devices/{}/revoke", rep.id),
        Some(&app.admin.token),
        &json!({}),
    );
    assert!(r.status().is_success(), "{:?}", r.text());
    let body = json!({"device_name": "rita-2"});
    assert_eq!(
        error_of(register(&app, &rep, &body)),
        (401, "device_revoked".into())
    );
    let ann = app.user_device("ann", Role::Rep, None);
    let r = app.post("/v1/auth/logout", Some(&ann.token), &json!({}));
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(error_of(register(&app, &ann, &body)).0, 401);
}
