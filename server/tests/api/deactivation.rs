//! A deactivated user's device hands over what it wrote before the
//! deactivation and nothing else; reactivation and moving the customers
//! away undo the jam.

use crate::helpers::{
    Device, customer_fields, error_of, json_of, outcome_codes, spawn_app, upserts,
};
use serde_json::{Value, json};
use sync_protocol::schema::Role;
use sync_protocol::wire::{AssignCustomersResponse, UserInfo};

#[test]
fn a_deactivated_device_hands_over_only_what_it_wrote_before() {
    let app = spawn_app();
    let mut li = app.user_device("li", Role::Rep, None);
    let mut zhao = app.user_device("zhao", Role::Rep, None);
    let (cid, c) = li.create("customers", customer_fields("Acme"));
    app.push(&mut li, vec![c]);
    // Offline: three visits (a minute ago), then the deactivation, then
    // one more.
    let deactivated_at = chrono::Utc::now().timestamp_millis().unsigned_abs();
    let before: Vec<_> = (0..3)
        .map(|i| {
            let (_, op) = li.create(
                "visits",
                json!({"customer_id": cid, "started_at": format!("2026-11-2{i}T09:00:00.000Z")}),
            );
            Device::at(op, deactivated_at - 60_000 + i)
        })
        .collect();
    let _: UserInfo = json_of(
        app.post(
            "/v1/admin/users/li/deactivate",
            Some(&app.admin.token),
            &json!({}),
        ),
        200,
    );
    let (_, after) = li.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-25T09:00:00.000Z"}),
    );
    let after = Device::at(after, deactivated_at + 5_000);

    // Pull, conflicts and login are refused; a push is taken as far as it
    // was written before.
    let r = app.post("/v1/sync/pull", Some(&li.token), &json!({"cursor": 0}));
    assert_eq!(error_of(r), (401, "user_deactivated".into()));
    let r = app.post(
        "/v1/sync/conflicts",
        Some(&li.token),
        &json!({"settle": []}),
    );
    assert_eq!(error_of(r), (401, "user_deactivated".into()));
    let r = app.post(
        "/v1/auth/login",
        None,
        &json!({"username": "li", "password": "li-password", "device_name": "again"}),
    );
    assert_eq!(error_of(r), (401, "user_deactivated".into()));

    let mut ops = before;
    ops.push(after);
    let r = app.push(&mut li, ops);
    assert_eq!(
        outcome_codes(&r),
        ["applied", "applied", "applied", "user_deactivated"],
        "{r:?}"
    );
    assert!(
        r.deactivated.as_ref().is_some_and(|d| d.at.is_some()),
        "{r:?}"
    );
    assert_eq!(r.acked_through, 5, "every op is answered and acknowledged");
    let problems: Vec<Value> = json_of(app.get("/v1/admin/problems", Some(&app.admin.token)), 200);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "user_deactivated");
    assert!(
        problems[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("after user li was deactivated")),
        "{problems:?}"
    );

    // A forged old clock on a new op of another user's record is still
    // judged as any op: out of scope.
    let (zcid, zc) = zhao.create("customers", customer_fields("Bolt"));
    app.push(&mut zhao, vec![zc]);
    let (_, trespass) = li.create(
        "visits",
        json!({"customer_id": zcid, "started_at": "2026-11-20T09:00:00.000Z"}),
    );
    let trespass = Device::at(trespass, deactivated_at - 60_000);
    let r = app.push(&mut li, vec![trespass]);
    assert_eq!(outcome_codes(&r), ["out_of_scope"]);

    // Li's customers move to zhao in one request, with what was handed over.
    let moved: AssignCustomersResponse = json_of(
        app.post(
            "/v1/admin/users/li/customers/assign",
            Some(&app.admin.token),
            &json!({"to": "zhao"}),
        ),
        200,
    );
    assert_eq!(moved.customers, vec![cid]);
    assert_eq!(moved.records_moved, 4);
    let visits = upserts(&app.pull(&mut zhao))
        .iter()
        .filter(|r| r.collection == "visits")
        .count();
    assert_eq!(visits, 3);
    let r = app.post(
        "/v1/admin/users/li/customers/assign",
        Some(&app.admin.token),
        &json!({"to": "li"}),
    );
    assert_eq!(error_of(r), (403, "forbidden".into()), "li is deactivated");
    let r = app.post(
        "/v1/admin/users/zhao/customers/assign",
        Some(&app.admin.token),
        &json!({"to": "zhao"}),
    );
    assert_eq!(error_of(r), (400, "malformed_request".into()));
    let r = app.post(
        "/v1/admin/users/nobody/customers/assign",
        Some(&app.admin.token),
        &json!({"to": "zhao"}),
    );
    assert_eq!(error_of(r), (404, "not_found".into()));

    // Only an admin reactivates; then li syncs as before.
    let r = app.post("/v1/admin/users/li/activate", Some(&zhao.token), &json!({}));
    assert_eq!(error_of(r), (403, "forbidden".into()));
    let u: UserInfo = json_of(
        app.post(
            "/v1/admin/users/li/activate",
            Some(&app.admin.token),
            &json!({}),
        ),
        200,
    );
    assert!(u.active);
    let r = app.post(
        "/v1/admin/users/nobody/activate",
        Some(&app.admin.token),
        &json!({}),
    );
    assert_eq!(error_of(r), (404, "not_found".into()));
    app.pull(&mut li);
    let (_, c2) = li.create("customers", customer_fields("Cobalt"));
    let r = app.push(&mut li, vec![c2]);
    assert_eq!(outcome_codes(&r), ["applied"]);
    assert!(r.deactivated.is_none());
    app.login("li", "li-password");
}

/// Reassignments and deactivations stored before their clocks were kept:
/// a reassignment is judged by its time; a deactivation without a moment
/// takes nothing.
#[test]
fn rows_from_before_clocks_were_kept_are_judged_safely() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    app.create_user("bob", Role::Rep, None, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    app.push(&mut ann, vec![c]);
    let now = chrono::Utc::now().timestamp_millis().unsigned_abs();
    let r = app.post(
        &format!("/v1/admin/customers/{cid}/assign"),
        Some(&app.admin.token),
        &json!({"to": "bob"}),
    );
    assert_eq!(r.status().as_u16(), 200);
    let db = rusqlite::Connection::open(app.db_file()).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(
        db.execute("UPDATE evictions SET hlc = NULL", []).unwrap(),
        1
    );
    let visit = |dev: &mut Device, millis: u64| {
        let (_, op) = dev.create(
            "visits",
            json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z"}),
        );
        Device::at(op, millis)
    };
    let (before, after) = (visit(&mut ann, now - 60_000), visit(&mut ann, now + 60_000));
    let r = app.push(&mut ann, vec![before, after]);
    assert_eq!(outcome_codes(&r), ["applied", "out_of_scope"]);

    let _: UserInfo = json_of(
        app.post(
            "/v1/admin/users/ann/deactivate",
            Some(&app.admin.token),
            &json!({}),
        ),
        200,
    );
    db.execute(
        "UPDATE users SET deactivated_hlc = NULL WHERE username = 'ann'",
        [],
    )
    .unwrap();
    let (_, c2) = ann.create("customers", customer_fields("Bolt"));
    let r = app.push(&mut ann, vec![Device::at(c2, now - 60_000)]);
    assert_eq!(outcome_codes(&r), ["user_deactivated"]);
    assert_eq!(
        r.deactivated.map(|d| d.at),
        Some(None),
        "the moment is not known"
    );
}
