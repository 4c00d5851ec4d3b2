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
