//! The web dashboard in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over the W3C WebDriver protocol): sign in with
//! the form, see a chart render, read a figure that equals the JSON API's,
//! check the phone layout, and save screenshots in the test's temp dir.
//! Plus the cookie and anti-forgery rules over plain HTTP.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use base64::Engine;
use helpers::{Device, TestApp, json_of, spawn_app};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sync_protocol::schema::Role;

const W3C_ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: Client,
    session: Option<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = self
                .http
                .delete(format!("{}/session/{s}", self.base))
                .send();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; .ci/run installs it)");
        let http = Client::builder()
            .timeout(Duration::from_mins(1))
            .build()
            .expect("client");
        let mut d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
            session: None,
        };
        until("chromedriver ready", Duration::from_secs(20), || {
            d.http
                .get(format!("{}/status", d.base))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .filter(|v| v["value"]["ready"] == true)
        });
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1400", "--lang=en-US"]}}}});
        let v = d.call("POST", "/session", &caps);
        d.session = Some(v["sessionId"].as_str().expect("session id").to_owned());
        d
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let rq = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(body),
        };
        let v: Value = rq
            .send()
            .expect("webdriver")
            .json()
            .expect("webdriver json");
        assert!(
            v["value"]["error"].is_null(),
            "webdriver {method} {path}: {v}"
        );
        v["value"].clone()
    }

    fn s(&self, path: &str) -> String {
        format!(
            "/session/{}{path}",
            self.session.as_deref().unwrap_or_default()
        )
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), &json!({"url": url}));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            &self.s("/element"),
            &json!({"using": "css selector", "value": css}),
        );
        v[W3C_ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("element {css}: {v}"))
            .to_owned()
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            &json!({"text": text}),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &self.s(&format!("/element/{e}/click")), &json!({}));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            &json!({"script": script, "args": []}),
        )
    }

    fn screenshot(&self, path: &std::path::Path) {
        let v = self.call("GET", &self.s("/screenshot"), &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("png");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, &png).expect("write screenshot");
        if let Ok(copy) = std::env::var("FIELDSYNC_DASHBOARD_SCREENSHOT_DIR") {
            let name = path.file_name().expect("file name");
            std::fs::write(std::path::Path::new(&copy).join(name), &png).expect("copy screenshot");
        }
    }
}

const PASSWORD_SUFFIX: &str = "-password";

/// A north team with two reps, some visits and surveys in October 2026.
fn company(app: &TestApp) -> Device {
    let _: Value = json_of(
        app.post(
            "/v1/admin/teams",
            Some(&app.admin.token),
            &json!({"name": "north", "region": "East"}),
        ),
        200,
    );
    let mut hq = app.user_device("hq", Role::Hq, None);
    let mut goals = Vec::new();
    for (name, visits, csat) in [("ann", 7, [5, 4, 2]), ("bea", 4, [3, 4, 5])] {
        let mut rep = app.user_device(name, Role::Rep, Some("north"));
        let mut ops = Vec::new();
        let (cid, c) = rep.create(
            "customers",
            json!({"name": format!("{name} 客户, \"总部\""), "created_at": "2026-10-01T08:00:00.000Z",
                   "location": {"lat": 31.2304, "lon": 121.4737}}),
        );
        ops.push(c);
        for i in 0..visits {
            let day = 1 + i * 3;
            ops.push(
                rep.create(
                    "visits",
                    json!({"customer_id": cid, "started_at": format!("2026-10-{day:02}T09:00:00.000Z"),
                           "check_in": {"lat": 31.2304 + f64::from(i) * 0.0001, "lon": 121.4737}, "check_in_accuracy_m": 10}),
                )
                .1,
            );
        }
        for (i, s) in csat.iter().enumerate() {
            ops.push(
                rep.create(
                    "feedback",
                    json!({"customer_id": cid, "kind": "survey", "csat": s, "nps": s * 2, "text": "t",
                           "opened_at": format!("2026-10-{:02}T10:00:00.000Z", 2 + i * 9)}),
                )
                .1,
            );
        }
        app.push(&mut rep, ops);
        goals.push(
            hq.create(
                "goals",
                json!({"rep_id": rep.user.id, "metric": "visits", "period": "2026-10", "target": 8}),
            )
            .1,
        );
    }
    let res = app.push(&mut hq, goals);
    assert!(
        res.outcomes
            .iter()
            .all(|o| serde_json::to_value(&o.outcome).expect("json")["status"] == "applied")
    );
    hq
}

#[test]
fn dashboard_signs_in_renders_charts_and_matches_the_json_api() {
    let app = spawn_app();
    let hq = company(&app);
    let api: Value = json_of(
        app.get("/v1/reports/scorecard?period=2026-10", Some(&hq.token)),
        200,
    );
    let cols: Vec<&str> = api["tables"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let visits_col = cols.iter().position(|c| *c == "visits").expect("visits");
    let csat_col = cols.iter().position(|c| *c == "csat").expect("csat");
    let ann_visits = api["tables"][0]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r[0] == "ann")
        .expect("ann")[visits_col]
        .to_string();
    let total_csat = api["tables"][0]["totals"][csat_col].to_string();
    assert_eq!(ann_visits, "7");

    let dir = tempfile::tempdir().expect("tempdir");
    let d = Driver::start();
    d.go(&app.url("/dashboard"));
    until("login form", Duration::from_secs(20), || {
        (d.js("return location.pathname") == "/dashboard/login").then_some(())
    });
    d.type_into("#username", "hq");
    d.type_into("#password", &format!("hq{PASSWORD_SUFFIX}"));
    d.click("#sign-in");
    until("signed in", Duration::from_secs(20), || {
        (d.js("return location.pathname") == "/dashboard/scorecard").then_some(())
    });

    d.go(&app.url("/dashboard/scorecard?period=2026-10"));
    let drawn = "const c = document.getElementById('chart-visits');
        if (!c || c.getAttribute('data-rendered') !== 'true' || !window.Chart || !Chart.getChart(c)) return false;
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) return true; }
        return false;";
    until("chart drawn", Duration::from_secs(20), || {
        (d.js(drawn) == true).then_some(())
    });
    let page_visits = d.js(
        "return document.querySelector('td[data-row=\"ann\"][data-col=\"visits\"]').textContent",
    );
    assert_eq!(
        page_visits,
        ann_visits.as_str(),
        "the page shows the API's figure"
    );
    let page_csat =
        d.js("return document.querySelector('tfoot td[data-col=\"csat\"]').textContent");
    assert_eq!(page_csat, total_csat.as_str());
    assert!(
        d.js("return document.getElementById('freshness').textContent")
            .as_str()
            .is_some_and(|s| s.starts_with("data complete through"))
    );
    // Sorting by visits, descending on the second click: ann (7) first.
    d.click("#table-rows thead th:nth-child(3)");
    d.click("#table-rows thead th:nth-child(3)");
    assert_eq!(
        d.js("return document.querySelector('#table-rows tbody tr td').textContent"),
        "ann"
    );
    // Every request went to this server.
    let foreign = d.js(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
    );
    assert_eq!(foreign, json!([]), "no request to another host");
    d.screenshot(&dir.path().join("dashboard-scorecard.png"));

    // The feedback page draws the CSAT/NPS trend.
    d.go(&app.url("/dashboard/feedback?period=2026-10"));
    until("trend drawn", Duration::from_secs(20), || {
        (d.js("const c = document.getElementById('chart-csat-nps'); return !!(c && c.getAttribute('data-rendered') === 'true')") == true)
            .then_some(())
    });
    d.screenshot(&dir.path().join("dashboard-feedback.png"));

    // A phone screen: nothing wider than the viewport.
    d.call(
        "POST",
        &d.s("/window/rect"),
        &json!({"width": 390, "height": 844}),
    );
    d.go(&app.url("/dashboard/visits?period=2026-10"));
    until("visits chart", Duration::from_secs(20), || {
        (d.js("const c = document.getElementById('chart-visits-week'); return !!(c && c.getAttribute('data-rendered') === 'true')") == true)
            .then_some(())
    });
    assert_eq!(
        d.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"),
        true,
        "the page fits a phone screen"
    );
    d.screenshot(&dir.path().join("dashboard-phone.png"));
    assert!(dir.path().join("dashboard-scorecard.png").exists());
}

#[test]
fn dashboard_cookies_are_http_only_strict_and_forms_need_their_token() {
    let app = spawn_app();
    company(&app);
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // Without a session every page sends you to the sign-in form.
    let r = http
        .get(app.url("/dashboard/scorecard"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/dashboard/login");

    let form = http.get(app.url("/dashboard/login")).send().expect("form");
    let set = form.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let behind_tls = http
        .get(app.url("/dashboard/login"))
        .header("x-forwarded-proto", "https")
        .send()
        .expect("form");
    let tls_cookie = behind_tls.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        tls_cookie.contains("Secure"),
        "behind a TLS proxy: {tls_cookie}"
    );
    let csrf_cookie = set.split(';').next().expect("pair").to_owned();
    let csrf = csrf_cookie.split_once('=').expect("value").1.to_owned();
    let page = form.text().expect("html");
    assert!(page.contains(&csrf));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside URL"
    );

    // A forged sign-in (no anti-forgery cookie) is refused.
    let r = http
        .post(app.url("/dashboard/login"))
        .form(&[
            ("username", "hq"),
            ("password", "hq-password"),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);

    // Wrong password, then a rep: refused; HQ: a strict, HttpOnly session.
    let sign_in = |user: &str, pw: &str| {
        http.post(app.url("/dashboard/login"))
            .header("cookie", &csrf_cookie)
            .form(&[
                ("username", user),
                ("password", pw),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .expect("post")
    };
    assert_eq!(sign_in("hq", "wrong-password").status().as_u16(), 401);
    assert_eq!(sign_in("ann", "ann-password").status().as_u16(), 403);
    let ok = sign_in("hq", "hq-password");
    assert_eq!(ok.status().as_u16(), 303);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("fieldsync_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Max-Age=28800"),
        "{session}"
    );
    let pair = session.split(';').next().expect("pair").to_owned();

    // The CSV link downloads with the session.
    let csv = http
        .get(app.url("/dashboard/scorecard/csv?period=2026-10&section=rows"))
        .header("cookie", &pair)
        .send()
        .expect("csv");
    assert_eq!(csv.status().as_u16(), 200);
    let text = csv.text().expect("csv");
    assert!(text.starts_with("rep,team,visits,"), "{text}");

    // A tampered cookie is no session.
    let tampered = format!("{pair}x");
    let r = http
        .get(app.url("/dashboard/scorecard"))
        .header("cookie", tampered)
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 303);

    // Signing out needs the session's form token.
    let r = http
        .post(app.url("/dashboard/logout"))
        .header("cookie", &pair)
        .form(&[("csrf", "forged")])
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 403);
}
