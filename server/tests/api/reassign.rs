use crate::helpers::{customer_fields, json_of, outcome_codes, spawn_app, status, upserts};
use serde_json::{Value, json};
use sync_protocol::OpKind;
use sync_protocol::schema::Role;
use sync_protocol::wire::{AssignCustomerResponse, Change};

#[test]
fn reassignment_moves_the_history_to_the_new_owner_and_evicts_it_from_the_old() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let mut bob = app.user_device("bob", Role::Rep, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    let (vid, v) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z"}),
    );
    let (sid, s) = ann.create("sales", json!({"customer_id": cid, "amount": {"minor": 12300, "currency": "CNY"}, "product": "widgets", "sold_at": "2026-11-28T09:40:00.000Z"}));
    app.push(&mut ann, vec![c, v, s]);
    app.pull(&mut ann);
    app.pull(&mut bob);
    let db = rusqlite::Connection::open(app.db_file()).unwrap();
    let subject = |id: sync_protocol::RecordId| -> Option<String> {
        db.query_row(
            "SELECT subject_user FROM records WHERE id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(
        (subject(vid), subject(sid)),
        (None, None),
        "work on one's own customer is in scope through the customer"
    );

    let moved = assign(&app, cid, "bob");
    assert_eq!(
        (moved.records_moved, moved.from, moved.to),
        (3, Some(ann.user.id), bob.user.id)
    );
    let ann_id = Some(ann.user.id.to_string());
    assert_eq!(
        (subject(vid), subject(sid)),
        (ann_id.clone(), ann_id),
        "ann's work stays in her scope"
    );

    let for_bob = app.pull(&mut bob);
    let ids: Vec<_> = upserts(&for_bob).iter().map(|r| r.id).collect();
    for id in [cid, vid, sid] {
        assert!(ids.contains(&id), "bob's pull lacks {id}");
    }
    let owner = upserts(&for_bob)
        .into_iter()
        .find(|r| r.id == cid)
        .unwrap()
        .get_str("owner_id")
        .map(str::to_owned);
    assert_eq!(owner, Some(bob.user.id.to_string()));

    let for_ann = app.pull(&mut ann);
    let evicted_at = for_ann
        .iter()
        .position(|c| matches!(c, Change::Evict { customer_id, .. } if *customer_id == cid))
        .unwrap_or_else(|| panic!("no eviction: {for_ann:?}"));
    // Her visit and sale stay hers, read-only: they come again after the
    // eviction (which drops the whole customer from her laptop).
    let kept: Vec<_> = for_ann[evicted_at..]
        .iter()
        .filter_map(|c| match c {
            Change::Upsert { record, .. } => Some(record),
            Change::Evict { .. } => None,
        })
        .collect();
    assert_eq!(
        kept.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![vid, sid],
        "{for_ann:?}"
    );
    for r in kept {
        assert_eq!(
            r.get_str("credited_to"),
            Some(ann.user.id.to_string().as_str())
        );
    }

    // A late op of the old owner is kept as a problem, not applied: on the
    // customer, a new visit, or a change to her own earlier visit.
    let late = ann.op("customers", cid, OpKind::Patch, json!({"phone": "555"}));
    let late_edit = ann.op("visits", vid, OpKind::Patch, json!({"outcome": "moved on"}));
    let (_, late_visit) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-29T09:30:00.000Z"}),
    );
    let r = app.push(&mut ann, vec![late, late_edit, late_visit]);
    for o in &r.outcomes {
        let v = serde_json::to_value(&o.outcome).unwrap();
        assert_eq!(
            (status(&v), v["code"].as_str()),
            ("rejected", Some("out_of_scope")),
            "{v}"
        );
    }
    let problems: Vec<Value> = json_of(app.get("/v1/admin/problems", Some(&app.admin.token)), 200);
    assert_eq!(problems.len(), 3);
    assert!(
        problems
            .iter()
            .all(|p| p["username"] == "ann" && p["code"] == "out_of_scope")
    );
    let for_bob = app.pull(&mut bob);
    assert!(
        upserts(&for_bob)
            .iter()
            .all(|r| r.get_str("phone") != Some("555"))
    );
}

#[test]
fn assigning_an_unknown_customer_or_to_an_unknown_user_is_not_found() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    app.push(&mut ann, vec![c]);
    let r = app.post(
        &format!("/v1/admin/customers/{cid}/assign"),
        Some(&app.admin.token),
        &json!({"to": "nobody"}),
    );
    assert_eq!(crate::helpers::error_of(r), (404, "not_found".into()));
    let r = app.post(
        "/v1/admin/customers/0193a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b/assign",
        Some(&app.admin.token),
        &json!({"to": "ann"}),
    );
    assert_eq!(crate::helpers::error_of(r), (404, "not_found".into()));
    let r = app.post(
        "/v1/admin/customers/not-a-uuid/assign",
        Some(&app.admin.token),
        &json!({"to": "ann"}),
    );
    assert_eq!(
        crate::helpers::error_of(r),
        (400, "malformed_request".into())
    );
}

/// Work a rep did offline before their customer was reassigned is the
/// customer's history: applied when it arrives, with the new owner and in
/// the reports. Work stamped after the reassignment stays a problem.
#[test]
fn work_done_before_a_reassignment_is_history() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let mut bob = app.user_device("bob", Role::Rep, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    app.push(&mut ann, vec![c]);
    // Offline, before the reassignment: a visit, a sale and an edit.
    let (vid, v) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z"}),
    );
    let (sid, s) = ann.create("sales", json!({"customer_id": cid, "amount": {"minor": 500, "currency": "CNY"}, "product": "sims", "sold_at": "2026-11-28T09:40:00.000Z"}));
    let phone = ann.op("customers", cid, OpKind::Patch, json!({"phone": "555"}));
    // Stamped a minute before: a clock in the same millisecond as the
    // reassignment's could fall on either side of it.
    let reassigned_at = chrono::Utc::now().timestamp_millis().unsigned_abs();
    let [v, s, phone] =
        [v, s, phone].map(|op| crate::helpers::Device::at(op, reassigned_at - 60_000));
    assign(&app, cid, "bob");
    // Still offline, stamped after it (ann never pulled the change).
    let (_, late) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-29T09:30:00.000Z"}),
    );
    let late = crate::helpers::Device::at(late, reassigned_at + 5_000);

    let r = app.push(&mut ann, vec![v, s, phone, late]);
    assert_eq!(
        outcome_codes(&r),
        ["applied", "applied", "applied", "out_of_scope"]
    );
    let problems: Vec<Value> = json_of(app.get("/v1/admin/problems", Some(&app.admin.token)), 200);
    assert_eq!(problems.len(), 1, "{problems:?}");

    // The new owner has it all.
    let for_bob = app.pull(&mut bob);
    let records = upserts(&for_bob);
    for id in [cid, vid, sid] {
        assert!(records.iter().any(|r| r.id == id), "bob lacks {id}");
    }
    let customer = records.iter().find(|r| r.id == cid).unwrap();
    assert_eq!(customer.get_str("phone"), Some("555"));
    assert_eq!(
        customer.get_str("owner_id").map(str::to_owned),
        Some(bob.user.id.to_string())
    );
    let visit = records.iter().find(|r| r.id == vid).unwrap();
    assert_eq!(
        visit.created_by,
        Some(ann.user.id),
        "the visit is ann's work"
    );

    // HQ's report counts it, and per rep for ann, who did it (and keeps
    // it on her laptop); bob has the customer, which he has not visited.
    for (rep, column, expected) in [
        ("total", "visits", Some(1.0)),
        ("ann", "visits", Some(1.0)),
        ("ann", "sales", Some(5.0)),
        ("ann", "coverage", None),
        ("bob", "visits", Some(0.0)),
        ("bob", "sales", Some(0.0)),
        ("bob", "coverage", Some(0.0)),
    ] {
        assert_eq!(figure(&app, rep, column), expected, "{rep} {column}");
    }
    let for_ann = upserts(&app.pull(&mut ann))
        .into_iter()
        .map(|r| r.id)
        .collect::<Vec<_>>();
    assert!(
        for_ann.contains(&vid) && for_ann.contains(&sid) && !for_ann.contains(&cid),
        "{for_ann:?}"
    );
}

/// Work a supervisor or HQ records for a customer counts for the
/// customer's owner at that moment (a rep's counts for the rep).
#[test]
fn work_recorded_by_others_counts_for_the_owner_of_its_moment() {
    let app = spawn_app();
    app.create_team("north");
    let mut ann = app.user_device("ann", Role::Rep, Some("north"));
    let mut sue = app.user_device("sue", Role::Supervisor, Some("north"));
    let mut hq = app.user_device("hana", Role::Hq, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    app.push(&mut ann, vec![c]);
    // A ride-along: sue records the visit on ann's customer; and her own.
    let (ride, ride_op) = sue.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-26T09:30:00.000Z"}),
    );
    let (own_cid, own_c) = sue.create("customers", customer_fields("Sue's"));
    let (own, own_op) = sue.create(
        "visits",
        json!({"customer_id": own_cid, "started_at": "2026-11-26T11:30:00.000Z"}),
    );
    assert_eq!(
        outcome_codes(&app.push(&mut sue, vec![ride_op, own_c, own_op])),
        ["applied", "applied", "applied"]
    );
    let before = chrono::Utc::now().timestamp_millis().unsigned_abs() - 60_000;
    let (sid, s) = hq.create("sales", json!({"customer_id": cid, "amount": {"minor": 900, "currency": "CNY"}, "product": "phoned in", "sold_at": "2026-11-27T10:00:00.000Z"}));
    let s = crate::helpers::Device::at(s, before);
    let r = app.post(
        &format!("/v1/admin/customers/{cid}/assign"),
        Some(&app.admin.token),
        &json!({"to": "hana"}),
    );
    assert_eq!(
        crate::helpers::error_of(r),
        (403, "forbidden".into()),
        "HQ owns no customers"
    );
    let _ = app.user_device("bob", Role::Rep, None);
    assign(&app, cid, "bob");
    // Stamped before the reassignment, pushed after it: ann's.
    assert_eq!(outcome_codes(&app.push(&mut hq, vec![s])), ["applied"]);
    let (later, l) = hq.create("sales", json!({"customer_id": cid, "amount": {"minor": 100, "currency": "CNY"}, "product": "phoned in", "sold_at": "2026-11-29T10:00:00.000Z"}));
    assert_eq!(outcome_codes(&app.push(&mut hq, vec![l])), ["applied"]);
    let pulled = app.pull(&mut hq);
    let records = upserts(&pulled);
    let credit = |id| {
        records
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.get_str("credited_to"))
            .map(str::to_owned)
    };
    // The ride-along was credited to ann when Acme moved; the phoned-in
    // sale stamped before the move on arrival. Work counting for the
    // customer's owner now carries no credit.
    assert_eq!(credit(sid), Some(ann.user.id.to_string()));
    assert_eq!(credit(ride), Some(ann.user.id.to_string()));
    assert_eq!(credit(own), None, "sue's own customer");
    assert_eq!(credit(later), None, "bob's now");
    let figures = |rep| (figure(&app, rep, "visits"), figure(&app, rep, "sales"));
    assert_eq!(figures("ann"), (Some(1.0), Some(9.0)));
    assert_eq!(figures("bob"), (Some(0.0), Some(1.0)));
}

/// Work stored before visits and sales carried a credit, on a customer
/// reassigned since, is credited once when the server starts: it comes
/// back to the old owner's laptop and counts for them.
#[test]
fn earlier_work_on_reassigned_customers_is_credited_once() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let mut bob = app.user_device("bob", Role::Rep, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    let (vid, v) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z"}),
    );
    let (other, o) = bob.create("customers", customer_fields("Other"));
    let (kept, k) = bob.create(
        "visits",
        json!({"customer_id": other, "started_at": "2026-11-28T10:30:00.000Z"}),
    );
    app.push(&mut ann, vec![c, v]);
    app.push(&mut bob, vec![o, k]);
    assign(&app, cid, "bob");
    app.pull(&mut ann);
    // As an older server stored them: no credit, no subject, no backfill.
    let db = rusqlite::Connection::open(app.db_file()).unwrap();
    db.execute_batch(
        "UPDATE records SET state = json_remove(state, '$.fields.credited_to'), subject_user = NULL \
           WHERE collection = 'visits';
         UPDATE report_facts SET credited_to = NULL;
         DELETE FROM meta WHERE key = 'work_credits_backfilled';",
    )
    .unwrap();
    let visits_of = |rep| figure(&app, rep, "visits");
    assert_eq!(
        (visits_of("ann"), visits_of("bob")),
        (Some(0.0), Some(2.0)),
        "uncredited work counts for the customer's owner"
    );

    let store = fieldsync_server::store::sqlite::SqliteStore::open(&app.db_file()).unwrap();
    let now = chrono::Utc::now();
    let credits = fieldsync_server::sync::credits::backfill;
    assert_eq!(
        credits(&store, now).unwrap(),
        1,
        "only the reassigned customer's"
    );
    assert_eq!(credits(&store, now).unwrap(), 0, "once");

    let pulled = app.pull(&mut ann);
    let back = upserts(&pulled);
    assert_eq!(back.iter().map(|r| r.id).collect::<Vec<_>>(), vec![vid]);
    assert_eq!(
        back[0].get_str("credited_to"),
        Some(ann.user.id.to_string().as_str())
    );
    let state: String = db
        .query_row(
            "SELECT state FROM records WHERE id = ?1",
            [kept.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !state.contains("credited_to"),
        "a customer never reassigned keeps its records as they were"
    );
    assert_eq!((visits_of("ann"), visits_of("bob")), (Some(1.0), Some(1.0)));
}

/// `column` of `rep`'s row (`total`: the totals row) in HQ's scorecard for
/// 2026-11.
fn figure(app: &crate::helpers::TestApp, rep: &str, column: &str) -> Option<f64> {
    let report: Value = json_of(
        app.get(
            "/v1/reports/scorecard?period=2026-11",
            Some(&app.admin.token),
        ),
        200,
    );
    let table = &report["tables"][0];
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

/// Reassign `customer` to `to` as the admin, which must succeed.
fn assign(
    app: &crate::helpers::TestApp,
    customer: sync_protocol::RecordId,
    to: &str,
) -> AssignCustomerResponse {
    json_of(
        app.post(
            &format!("/v1/admin/customers/{customer}/assign"),
            Some(&app.admin.token),
            &json!({ "to": to }),
        ),
        200,
    )
}

/// Nobody but the server says who work counts for: a device that names a
/// credit, on a new visit or on an old one, is refused whatever it names.
#[test]
fn a_device_cannot_credit_work_to_anyone() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let bob = app.user_device("bob", Role::Rep, None);
    let (cid, c) = ann.create("customers", customer_fields("Acme"));
    let (vid, v) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-28T09:30:00.000Z"}),
    );
    app.push(&mut ann, vec![c, v]);
    let (_, forged) = ann.create(
        "visits",
        json!({"customer_id": cid, "started_at": "2026-11-29T09:30:00.000Z",
               "credited_to": ann.user.id.to_string()}),
    );
    let moved = ann.op(
        "visits",
        vid,
        OpKind::Patch,
        json!({"credited_to": bob.user.id.to_string()}),
    );
    let r = app.push(&mut ann, vec![forged, moved]);
    assert_eq!(
        outcome_codes(&r),
        ["server_only_field", "server_only_field"]
    );
}
