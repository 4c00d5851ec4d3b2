use crate::helpers::{customer_fields, error_of, json_of, spawn_app, status};
use chrono::Utc;
use serde_json::{Value, json};
use sync_protocol::schema::Role;
use sync_protocol::wire::{MAX_BODY_BYTES, MAX_PUSH_OPS, PushRequest, PushResponse};

fn raw_post(
    app: &crate::helpers::TestApp,
    token: &str,
    path: &str,
    body: impl Into<reqwest::blocking::Body>,
) -> reqwest::blocking::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap()
}

#[test]
fn malformed_json_is_malformed_request() {
    let app = spawn_app();
    let r = raw_post(&app, &app.admin.token, "/v1/sync/pull", "{\"cursor\": ");
    assert_eq!(error_of(r), (400, "malformed_request".into()));
}

#[test]
fn an_unknown_field_is_malformed_request() {
    let app = spawn_app();
    let r = app.post(
        "/v1/sync/pull",
        Some(&app.admin.token),
        &json!({"cursor": 0, "colour": "red"}),
    );
    let (status, code) = error_of(r);
    assert_eq!((status, code.as_str()), (400, "malformed_request"));
}

#[test]
fn a_wrong_type_is_malformed_request() {
    let app = spawn_app();
    let r = app.post(
        "/v1/sync/pull",
        Some(&app.admin.token),
        &json!({"cursor": "zero"}),
    );
    assert_eq!(error_of(r), (400, "malformed_request".into()));
    let r = app.get("/v1/admin/devices?colour=red", Some(&app.admin.token));
    assert_eq!(error_of(r), (400, "malformed_request".into()));
}

#[test]
fn per_op_validation_errors_are_rejected_outcomes_with_their_codes() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (cid, c) = rep.create("customers", customer_fields("Acme"));
    let (_, out_of_range) = rep.create("feedback", json!({"customer_id": cid, "kind": "survey", "csat": 9, "text": "meh", "opened_at": "2026-11-28T09:00:00.000Z"}));
    let (_, unknown_collection) = rep.create("spaceships", json!({"name": "x"}));
    let (_, mut future) = rep.create("customers", customer_fields("Future"));
    future.schema_version = 99;
    let (_, unknown_field) = rep.create(
        "customers",
        json!({"name": "x", "created_at": "2026-11-28T09:00:00.000Z", "colour": "red"}),
    );
    let (_, bad_coords) = rep.create("customers", json!({"name": "x", "created_at": "2026-11-28T09:00:00.000Z", "location": {"lat": 91, "lon": 0}}));
    let (_, missing_customer) = rep.create("visits", json!({"customer_id": "0193a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b", "started_at": "2026-11-28T09:30:00.000Z"}));
    let (_, server_only) = rep.create(
        "customers",
        json!({"name": "x", "created_at": "2026-11-28T09:00:00.000Z", "owner_id": cid}),
    );
    let r = app.push(
        &mut rep,
        vec![
            c,
            out_of_range,
            unknown_collection,
            future,
            unknown_field,
            bad_coords,
            missing_customer,
            server_only,
        ],
    );
    let codes: Vec<Value> = r
        .outcomes
        .iter()
        .map(|o| serde_json::to_value(&o.outcome).unwrap())
        .collect();
    assert_eq!(status(&codes[0]), "applied");
    let want = [
        "out_of_range",
        "unknown_collection",
        "unsupported_schema_version",
        "unknown_field",
        "invalid_coordinates",
        "not_found",
        "server_only_field",
    ];
    for (got, want) in codes[1..].iter().zip(want) {
        assert_eq!(
            (status(got), got["code"].as_str().unwrap_or_default()),
            ("rejected", want),
            "{got}"
        );
    }
    assert_eq!(r.acked_through, 8, "rejected ops are acknowledged too");
}

#[test]
fn an_op_naming_another_device_is_rejected_as_wrong_device() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, mut op) = rep.create("customers", customer_fields("Acme"));
    op.device_id = app.admin.id;
    let r = app.push(&mut rep, vec![op]);
    let v = serde_json::to_value(&r.outcomes[0].outcome).unwrap();
    assert_eq!(v["code"], "wrong_device");
}

#[test]
fn an_oversized_body_is_payload_too_large() {
    let app = spawn_app();
    let mut big = Vec::with_capacity(MAX_BODY_BYTES + 100);
    big.extend_from_slice(b"{\"cursor\": 0, \"pad\": \"");
    big.resize(MAX_BODY_BYTES + 10, b'a');
    big.extend_from_slice(b"\"}");
    let r = raw_post(&app, &app.admin.token, "/v1/sync/pull", big);
    assert_eq!(error_of(r), (413, "payload_too_large".into()));
}

#[test]
fn a_push_with_too_many_ops_is_refused_whole() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let ops: Vec<_> = (0..=MAX_PUSH_OPS)
        .map(|_| rep.create("customers", customer_fields("x")).1)
        .collect();
    let clock = rep.clock.now(Utc::now());
    let r = app.post(
        "/v1/sync/push",
        Some(&rep.token),
        &PushRequest { ops, clock },
    );
    assert_eq!(error_of(r), (413, "payload_too_large".into()));
    let r: PushResponse = json_of(app.push_raw(&mut rep, vec![]), 200);
    assert_eq!(r.acked_through, 0, "nothing was applied");
}

#[test]
fn a_future_schema_header_is_unsupported_schema_version() {
    let app = spawn_app();
    let r = app
        .client
        .post(app.url("/v1/sync/pull"))
        .bearer_auth(&app.admin.token)
        .header("fieldsync-schema", "2")
        .json(&json!({"cursor": 0}))
        .send()
        .unwrap();
    assert_eq!(error_of(r), (400, "unsupported_schema_version".into()));
}

#[test]
fn an_unknown_path_or_method_gets_a_json_error() {
    let app = spawn_app();
    assert_eq!(
        error_of(app.get("/v1/nothing-here", None)),
        (404, "not_found".into())
    );
}
