use crate::helpers::{
    ADMIN_PASSWORD, TestApp, error_of, json_of, login_at, spawn_app, spawn_app_with,
};
use reqwest::blocking::Response;
use serde_json::{Value, json};
use sync_protocol::schema::Role;
use sync_protocol::wire::{DeviceInfo, PushResponse};

#[test]
fn login_returns_a_token_that_whoami_accepts() {
    let app = spawn_app();
    let me: Value = json_of(app.get("/v1/auth/whoami", Some(&app.admin.token)), 200);
    assert_eq!(me["user"]["username"], "admin");
    assert_eq!(me["device_id"], json!(app.admin.id));
    assert_eq!(
        app.admin.token.len(),
        43,
        "32 bytes, base64url without padding"
    );
}

#[test]
fn requests_without_a_token_or_with_an_unknown_one_are_unauthenticated() {
    let app = spawn_app();
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", None)),
        (401, "unauthenticated".into())
    );
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", Some("nope"))),
        (401, "unauthenticated".into())
    );
}

#[test]
fn wrong_password_is_invalid_credentials() {
    let app = spawn_app();
    let r = app.post(
        "/v1/auth/login",
        None,
        &json!({"username": "admin", "password": "wrong-password", "device_name": "x"}),
    );
    assert_eq!(error_of(r), (401, "invalid_credentials".into()));
    let r = app.post(
        "/v1/auth/login",
        None,
        &json!({"username": "nobody", "password": "wrong-password", "device_name": "x"}),
    );
    assert_eq!(error_of(r), (401, "invalid_credentials".into()));
}

#[test]
fn logout_revokes_the_token_and_a_relogin_keeps_the_device_and_its_ack() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let (_, op) = rep.create("customers", crate::helpers::customer_fields("Acme"));
    app.push(&mut rep, vec![op]);
    let r = app.post("/v1/auth/logout", Some(&rep.token), &json!({}));
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", Some(&rep.token))),
        (401, "device_revoked".into())
    );
    let again = login_at(&app.client, &app.base, "ann", "ann-password", Some(rep.id));
    assert_eq!(again.id, rep.id);
    let mut again = again;
    let r: PushResponse = json_of(app.push_raw(&mut again, vec![]), 200);
    assert_eq!(r.acked_through, 1);
}

#[test]
fn a_revoked_device_is_refused_everything_and_cannot_be_reregistered() {
    let app = spawn_app();
    let rep = app.user_device("ann", Role::Rep, None);
    let d: DeviceInfo = json_of(
        app.post(
            &format!("/v1/admin/devices/{}/revoke", rep.id),
            Some(&app.admin.token),
            &json!({}),
        ),
        200,
    );
    assert!(d.revoked_at.is_some());
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", Some(&rep.token))),
        (401, "device_revoked".into())
    );
    assert_eq!(
        error_of(app.post("/v1/sync/pull", Some(&rep.token), &json!({"cursor": 0}))),
        (401, "device_revoked".into())
    );
    let again = login_at(&app.client, &app.base, "ann", "ann-password", Some(rep.id));
    assert_ne!(
        again.id, rep.id,
        "a revoked device id is never given a new token"
    );
    let list: Vec<DeviceInfo> = json_of(
        app.get("/v1/admin/devices?user=ann", Some(&app.admin.token)),
        200,
    );
    assert_eq!(list.len(), 2);
}

#[test]
fn a_deactivated_user_is_refused_with_user_deactivated() {
    let app = spawn_app();
    let rep = app.user_device("ann", Role::Rep, None);
    let u: Value = json_of(
        app.post(
            "/v1/admin/users/ann/deactivate",
            Some(&app.admin.token),
            &json!({}),
        ),
        200,
    );
    assert_eq!(u["active"], false);
    assert_eq!(
        error_of(app.get("/v1/auth/whoami", Some(&rep.token))),
        (401, "user_deactivated".into())
    );
    let r = app.post(
        "/v1/auth/login",
        None,
        &json!({"username": "ann", "password": "ann-password", "device_name": "x"}),
    );
    assert_eq!(error_of(r), (401, "user_deactivated".into()));
}

fn try_login(app: &TestApp, user: &str, password: &str, extra: Option<(&str, &str)>) -> Response {
    let mut r = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"username": user, "password": password, "device_name": "x"}));
    if let Some((name, value)) = extra {
        r = r.header(name, value);
    }
    r.send().expect("login request")
}

fn retry_after(r: &Response) -> u64 {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in whole seconds")
}

#[test]
fn failures_space_out_attempts_per_user_and_address_even_for_the_right_password() {
    let app = spawn_app();
    app.create_user("ann", Role::Rep, None, None);
    let laptop = login_at(&app.client, &app.base, "ann", "ann-password", None);
    for _ in 0..3 {
        let r = try_login(&app, "ann", "bad-password", None);
        assert_eq!(error_of(r).1, "invalid_credentials");
    }
    let r = try_login(&app, "ann", "ann-password", None);
    let wait = retry_after(&r);
    assert!((1..=15).contains(&wait), "Retry-After {wait}");
    assert_eq!(error_of(r), (429, "rate_limited".into()));
    // Another user from the same address is not limited ...
    login_at(&app.client, &app.base, "admin", ADMIN_PASSWORD, None);
    // ... nor ann on the laptop already registered to her.
    let again = login_at(
        &app.client,
        &app.base,
        "ann",
        "ann-password",
        Some(laptop.id),
    );
    assert_eq!(again.id, laptop.id);
}

#[test]
fn one_address_spraying_many_usernames_hits_its_ceiling_but_not_registered_devices() {
    let app = spawn_app();
    for i in 0..100 {
        let r = try_login(&app, &format!("nobody{i}"), "bad-password", None);
        assert_eq!(error_of(r).1, "invalid_credentials");
    }
    let r = try_login(&app, "admin", ADMIN_PASSWORD, None);
    assert_eq!(error_of(r), (429, "rate_limited".into()));
    login_at(
        &app.client,
        &app.base,
        "admin",
        ADMIN_PASSWORD,
        Some(app.admin.id),
    );
}

#[test]
fn forwarded_addresses_are_believed_only_from_a_trusted_proxy() {
    // Without a trusted proxy the header is the client's say-so: ignored.
    let app = spawn_app();
    app.create_user("ann", Role::Rep, None, None);
    for i in 0..3 {
        let xff = format!("198.51.100.{i}");
        let r = try_login(&app, "ann", "bad-password", Some(("x-forwarded-for", &xff)));
        assert_eq!(error_of(r).1, "invalid_credentials");
    }
    let r = try_login(
        &app,
        "ann",
        "bad",
        Some(("x-forwarded-for", "198.51.100.99")),
    );
    assert_eq!(error_of(r).1, "rate_limited", "still 127.0.0.1");

    // Behind a trusted proxy each forwarded address is its own client, and
    // the username's ceiling holds across all of them.
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]);
    app.create_user("ann", Role::Rep, None, None);
    for i in 0..20 {
        let xff = format!("203.0.113.{}", i / 2);
        let r = try_login(&app, "ann", "bad-password", Some(("x-forwarded-for", &xff)));
        assert_eq!(error_of(r).1, "invalid_credentials", "attempt {i}");
    }
    let r = try_login(
        &app,
        "ann",
        "ann-password",
        Some(("x-forwarded-for", "192.0.2.1")),
    );
    assert_eq!(error_of(r).1, "rate_limited", "the per-user ceiling");
    let r = try_login(
        &app,
        "admin",
        ADMIN_PASSWORD,
        Some(("x-forwarded-for", "192.0.2.1")),
    );
    assert_eq!(
        r.status().as_u16(),
        201,
        "another user from another address"
    );
}

#[test]
fn admin_endpoints_refuse_non_admins_and_bad_account_input() {
    let app = spawn_app();
    let rep = app.user_device("ann", Role::Rep, None);
    assert_eq!(
        error_of(app.get("/v1/admin/users", Some(&rep.token))),
        (403, "forbidden".into())
    );
    let short = json!({"username": "bob", "password": "short", "role": "rep"});
    assert_eq!(
        error_of(app.post("/v1/admin/users", Some(&app.admin.token), &short)).0,
        400
    );
    let bad_name = json!({"username": "bob smith", "password": "long-enough", "role": "rep"});
    assert_eq!(
        error_of(app.post("/v1/admin/users", Some(&app.admin.token), &bad_name)).0,
        400
    );
    let taken = json!({"username": "ann", "password": "long-enough", "role": "rep"});
    assert_eq!(
        error_of(app.post("/v1/admin/users", Some(&app.admin.token), &taken)),
        (409, "conflict".into())
    );
    let r = app.post(
        "/v1/admin/users/ann/password",
        Some(&app.admin.token),
        &json!({"password": "new-password"}),
    );
    assert_eq!(r.status().as_u16(), 204);
    login_at(&app.client, &app.base, "ann", "new-password", None);
}

#[test]
fn schema_header_too_old_is_426_and_too_new_is_400() {
    let app = spawn_app();
    let old = app
        .client
        .get(app.url("/v1/info"))
        .header("fieldsync-schema", "0")
        .send()
        .unwrap();
    assert_eq!(error_of(old), (426, "client_too_old".into()));
    let new = app
        .client
        .get(app.url("/v1/info"))
        .header("fieldsync-schema", "99")
        .send()
        .unwrap();
    assert_eq!(error_of(new), (400, "unsupported_schema_version".into()));
    let ok = app
        .client
        .get(app.url("/v1/info"))
        .header("fieldsync-schema", "1")
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[test]
fn health_readiness_metrics_and_openapi_are_served() {
    let app = spawn_app();
    assert_eq!(app.get("/healthz", None).text().unwrap(), "ok");
    assert_eq!(app.get("/readyz", None).text().unwrap(), "ok");
    let m = app.get("/metrics", None).text().unwrap();
    for name in [
        "fieldsync_http_requests_total",
        "fieldsync_active_devices 1",
        "fieldsync_http_request_duration_seconds",
    ] {
        assert!(m.contains(name), "{name} missing from\n{m}");
    }
    let doc: Value = json_of(app.get("/v1/openapi.json", None), 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/sync/push",
        "/v1/sync/pull",
        "/v1/auth/login",
        "/v1/admin/customers/{id}/assign",
        "/v1/admin/problems",
        "/v1/reports/{report}",
        "/v1/reports/gps-rules/{team}",
        "/healthz",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    assert!(doc["components"]["schemas"].get("ApiError").is_some());
}
