//! End-to-end, from outside with raw HTTP: what a stranger or a hostile
//! account can do to a running server.

use fieldsync_e2e::{ADMIN_PASSWORD, StoreKind, TestServer};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

/// The documented largest body, decoded.
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// What every bomb below expands to.
const GIB: u64 = 1024 * 1024 * 1024;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_mins(1))
        .build()
        .expect("client")
}

fn admin_token(c: &Client, base: &str) -> String {
    let r = c
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD, "device_name": "hq"}))
        .send()
        .expect("login");
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// One zstd frame holding 1 GiB of zeros (about 40 KB on the wire).
fn zstd_bomb() -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 3).expect("encoder");
    let mib = vec![0u8; 1024 * 1024];
    for _ in 0..GIB / (1024 * 1024) {
        e.write_all(&mib).expect("compress");
    }
    e.finish().expect("finish")
}

/// 1 GiB of zeros as gzip members, one per MiB (about 1 MB on the wire; a
/// gzip body may hold several members, and decoders must read them all).
fn gzip_bomb() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 1024 * 1024]).expect("compress");
    let member = e.finish().expect("finish");
    member.repeat(usize::try_from(GIB / (1024 * 1024)).expect("fits"))
}

fn send(c: &Client, url: &str, token: Option<&str>, encoding: &str, body: &[u8]) -> Response {
    let mut r = c
        .post(url)
        .header("content-type", "application/json")
        .header("content-encoding", encoding)
        .body(body.to_vec());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().expect("request")
}

fn assert_too_large(r: Response) {
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or_default();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");
}

#[test]
fn compression_bombs_are_refused_with_memory_bounded_by_the_limit() {
    let server = TestServer::start().expect("server");
    let base = server.url();
    let c = http();
    let token = admin_token(&c, &base);
    let before = server.peak_rss_bytes().expect("peak RSS");
    let zstd = zstd_bomb();
    let gzip = gzip_bomb();
    let login = format!("{base}/v1/auth/login");
    let push = format!("{base}/v1/sync/push");
    for (encoding, bomb) in [("zstd", &zstd), ("gzip", &gzip)] {
        assert_too_large(send(&c, &login, None, encoding, bomb));
        assert_too_large(send(&c, &push, Some(&token), encoding, bomb));
    }
    // Three at once, to both endpoints.
    std::thread::scope(|s| {
        let jobs: Vec<_> = (0..3)
            .flat_map(|_| [("zstd", &zstd), ("gzip", &gzip)])
            .flat_map(|(enc, bomb)| [(enc, bomb, &login, None), (enc, bomb, &push, Some(&token))])
            .map(|(enc, bomb, url, token)| {
                let c = &c;
                s.spawn(move || send(c, url, token.map(String::as_str), enc, bomb))
            })
            .collect();
        for j in jobs {
            assert_too_large(j.join().expect("request thread"));
        }
    });
    let peak = server.peak_rss_bytes().expect("peak RSS");
    let grew = peak.saturating_sub(before);
    eprintln!(
        "peak RSS {} MiB (before the bombs {} MiB)",
        peak >> 20,
        before >> 20
    );
    assert!(
        grew < 12 * MAX_BODY,
        "a dozen 1 GiB bombs grew the server by {} MiB",
        grew >> 20
    );
    // The server still serves.
    let r = c
        .post(&push)
        .bearer_auth(&token)
        .json(&json!({"ops": [], "clock": {"wall_ms": 1, "counter": 0, "node": "00000000-0000-0000-0000-000000000000"}}))
        .send()
        .expect("push");
    assert_ne!(r.status().as_u16(), 413);
    assert!(r.status().as_u16() < 500, "{:?}", r.text());
}

#[test]
fn a_body_in_an_unknown_encoding_is_refused_not_guessed() {
    let server = TestServer::start().expect("server");
    let c = http();
    let r = send(
        &c,
        &format!("{}/v1/auth/login", server.url()),
        None,
        "br",
        b"\x0b\x02\x80{}\x03",
    );
    assert_eq!(r.status().as_u16(), 415);
}

#[test]
fn small_bodies_have_a_small_limit_compressed_or_not() {
    let server = TestServer::start().expect("server");
    let c = http();
    let url = format!("{}/v1/auth/login", server.url());
    // 100 KiB of JSON: fine for a push, too much for a login.
    let pad = "x".repeat(100 * 1024);
    let body = json!({"username": "admin", "password": pad, "device_name": "d"}).to_string();
    assert_too_large(send(&c, &url, None, "identity", body.as_bytes()));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(body.as_bytes()).expect("compress");
    assert_too_large(send(&c, &url, None, "gzip", &e.finish().expect("finish")));
}

fn hashes(c: &Client, server: &TestServer) -> u64 {
    let text = c
        .get(format!("{}/metrics", server.url()))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("fieldsync_password_hashes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("fieldsync_password_hashes_total")
}

fn create_user(c: &Client, base: &str, admin: &str, name: &str, password: &str) {
    let r = c
        .post(format!("{base}/v1/admin/users"))
        .bearer_auth(admin)
        .json(&json!({"username": name, "password": password, "role": "rep"}))
        .send()
        .expect("create user");
    assert!(r.status().is_success(), "{:?}", r.text());
}

fn login_as(c: &Client, base: &str, name: &str, password: &str, device: Option<&str>) -> Response {
    let mut body = json!({"username": name, "password": password, "device_name": "laptop"});
    if let Some(d) = device {
        body["device_id"] = json!(d);
    }
    c.post(format!("{base}/v1/auth/login"))
        .json(&body)
        .send()
        .expect("login")
}

/// 100 concurrent wrong guesses, spread over `servers`, then the right
/// password from the same address: only the free attempts are hashed, no
/// guess gets a token, and the user's own laptop still logs in.
fn a_guessing_burst_is_throttled_before_hashing(servers: &[&TestServer]) {
    const PW: &str = "the right password";
    let c = http();
    let bases: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let admin = admin_token(&c, &bases[0]);
    create_user(&c, &bases[0], &admin, "ann", PW);
    let laptop: Value = login_as(&c, &bases[0], "ann", PW, None)
        .json()
        .expect("json");
    let laptop = laptop["device_id"].as_str().expect("device id").to_owned();
    let before: u64 = servers.iter().map(|s| hashes(&c, s)).sum();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let guesses: Vec<_> = (0..100)
            .map(|i| {
                let (c, base) = (&c, &bases[i % bases.len()]);
                s.spawn(move || {
                    login_as(c, base, "ann", &format!("guess {i}"), None)
                        .status()
                        .as_u16()
                })
            })
            .collect();
        guesses
            .into_iter()
            .map(|g| g.join().expect("guess"))
            .collect()
    });
    let hashed: u64 = servers.iter().map(|s| hashes(&c, s)).sum::<u64>() - before;
    eprintln!("100 concurrent guesses: {hashed} hashed");
    assert!(hashed <= 3, "{hashed} of the burst were hashed");
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count() as u64,
        hashed
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count() as u64,
        100 - hashed
    );
    for base in &bases {
        let r = login_as(&c, base, "ann", PW, None);
        assert_eq!(r.status().as_u16(), 429, "the right password, guessed next");
        assert_eq!(
            sign_in_status(&c, base, "ann", PW),
            429,
            "the dashboard shares the rule"
        );
        let r = login_as(&c, base, "ann", PW, Some(&laptop));
        assert_eq!(r.status().as_u16(), 201, "ann's own laptop: {:?}", r.text());
    }
}

#[test]
fn a_guessing_burst_is_throttled_before_hashing_on_sqlite() {
    let server = TestServer::start().expect("server");
    a_guessing_burst_is_throttled_before_hashing(&[&server]);
}

#[test]
fn a_guessing_burst_over_two_instances_is_throttled_before_hashing_on_postgres() {
    let one = TestServer::start_on(StoreKind::Postgres).expect("server");
    let two = one.another_instance().expect("second instance");
    a_guessing_burst_is_throttled_before_hashing(&[&one, &two]);
}

/// A browser signed in to the dashboard: its session cookie and the
/// session's form token.
struct Browser {
    cookie: String,
    csrf: String,
}

fn cookie_pair(r: &Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

/// Post the dashboard's sign-in form (with its anti-forgery cookie).
fn post_sign_in(c: &Client, base: &str, user: &str, password: &str) -> Response {
    let form = c
        .get(format!("{base}/dashboard/login"))
        .send()
        .expect("form");
    let login_cookie = cookie_pair(&form, "fieldsync_login_csrf");
    let csrf = hidden_csrf(&form.text().expect("html"));
    c.post(format!("{base}/dashboard/login"))
        .header("cookie", &login_cookie)
        .form(&[("username", user), ("password", password), ("csrf", &csrf)])
        .send()
        .expect("sign in")
}

fn sign_in_status(c: &Client, base: &str, user: &str, password: &str) -> u16 {
    post_sign_in(c, base, user, password).status().as_u16()
}

fn sign_in(c: &Client, base: &str, user: &str, password: &str) -> Browser {
    let r = post_sign_in(c, base, user, password);
    assert_eq!(r.status().as_u16(), 303, "signed in as {user}");
    let cookie = cookie_pair(&r, "fieldsync_session");
    let page = c
        .get(format!("{base}/dashboard/scorecard"))
        .header("cookie", &cookie)
        .send()
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let csrf = hidden_csrf(&page.text().expect("html"));
    Browser { cookie, csrf }
}

/// The status of a CSV download with the browser's cookie.
fn download(c: &Client, base: &str, b: &Browser) -> u16 {
    c.get(format!("{base}/dashboard/scorecard/csv?section=rows"))
        .header("cookie", &b.cookie)
        .send()
        .expect("csv")
        .status()
        .as_u16()
}

#[test]
fn dashboard_sessions_end_at_logout_password_reset_and_deactivation_on_every_instance() {
    let one = TestServer::start_on(StoreKind::Postgres).expect("server");
    let two = one.another_instance().expect("second instance");
    let (a, b) = (one.url(), two.url());
    let c = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_mins(1))
        .build()
        .expect("client");
    let admin = admin_token(&c, &a);
    let r = c
        .post(format!("{a}/v1/admin/users"))
        .bearer_auth(&admin)
        .json(&json!({"username": "hq", "password": "hq-password-1", "role": "hq"}))
        .send()
        .expect("create hq");
    assert!(r.status().is_success(), "{:?}", r.text());

    // Signing out on one instance ends the session on both; another
    // session of the same user is untouched.
    let first = sign_in(&c, &a, "hq", "hq-password-1");
    let other = sign_in(&c, &b, "hq", "hq-password-1");
    assert_eq!(download(&c, &b, &first), 200);
    let r = c
        .post(format!("{a}/dashboard/logout"))
        .header("cookie", &first.cookie)
        .form(&[("csrf", first.csrf.as_str())])
        .send()
        .expect("logout");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(download(&c, &a, &first), 401, "after logout");
    assert_eq!(
        download(&c, &b, &first),
        401,
        "after logout, other instance"
    );
    assert_eq!(download(&c, &b, &other), 200, "the other session");

    // A password reset ends every session of that user.
    let r = c
        .post(format!("{b}/v1/admin/users/hq/password"))
        .bearer_auth(&admin)
        .json(&json!({"password": "hq-password-2"}))
        .send()
        .expect("reset");
    assert!(r.status().is_success(), "{:?}", r.text());
    assert_eq!(download(&c, &a, &other), 401, "after a password reset");
    assert_eq!(download(&c, &b, &other), 401);
    let page = c
        .get(format!("{a}/dashboard/scorecard"))
        .header("cookie", &other.cookie)
        .send()
        .expect("page");
    assert_eq!(page.status().as_u16(), 303, "pages send you to sign in");

    // So does a deactivation, for good: reactivating would not revive it.
    let third = sign_in(&c, &a, "hq", "hq-password-2");
    let r = c
        .post(format!("{a}/v1/admin/users/hq/deactivate"))
        .bearer_auth(&admin)
        .send()
        .expect("deactivate");
    assert!(r.status().is_success(), "{:?}", r.text());
    assert_eq!(download(&c, &a, &third), 401, "after deactivation");
    assert_eq!(download(&c, &b, &third), 401);
}

#[test]
fn a_thousand_logins_keep_the_server_within_its_memory_bound() {
    const USERS: usize = 100;
    const LOGINS: usize = 1_000;
    // Each login comes from its own forwarded address, so the throttle
    // refuses none and every one is hashed.
    let server = TestServer::start_with(vec![(
        "FIELDSYNC_TRUSTED_PROXIES".into(),
        "127.0.0.1".into(),
    )])
    .expect("server");
    let base = server.url();
    let c = http();
    let admin = admin_token(&c, &base);
    let users: Vec<String> = (0..USERS).map(|i| format!("rep{i}")).collect();
    parallel(USERS, 64, |i| {
        create_user(&c, &base, &admin, &users[i], "rep-password-1");
    });
    let before = hashes(&c, &server);
    parallel(LOGINS, 64, |i| {
        let password = if i % 2 == 0 {
            "rep-password-1"
        } else {
            "wrong-password"
        };
        let r = c
            .post(format!("{base}/v1/auth/login"))
            .header("x-forwarded-for", format!("10.{}.{}.1", i / 250, i % 250))
            .json(&json!({"username": users[i % USERS], "password": password, "device_name": "laptop"}))
            .send()
            .expect("login");
        let want = if i % 2 == 0 { 201 } else { 401 };
        assert_eq!(r.status().as_u16(), want, "login {i}: {:?}", r.text());
    });
    let hashed = hashes(&c, &server) - before;
    let peak = server.peak_rss_bytes().expect("peak RSS");
    eprintln!(
        "{LOGINS} logins ({hashed} hashed) after {USERS} account creations: peak RSS {} MiB",
        peak >> 20
    );
    assert_eq!(hashed, LOGINS as u64);
    assert!(peak < 300 << 20, "peak RSS {} MiB", peak >> 20);
}

/// Run `f(0..n)` on `threads` threads.
fn parallel(n: usize, threads: usize, f: impl Fn(usize) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    f(i);
                }
            });
        }
    });
}
