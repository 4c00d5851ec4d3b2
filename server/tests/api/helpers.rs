//! `spawn_app()` and a small typed client.

use chrono::Utc;
use fieldsync_server::config::{HashCost, Settings};
use fieldsync_server::startup::Application;
use reqwest::blocking::{Client, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use sync_protocol::schema::Role;
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::wire::{
    Change, LoginResponse, PullRequest, PullResponse, PushRequest, PushResponse, TeamInfo, UserInfo,
};
use sync_protocol::{DeviceId, Fields, Hlc, HlcClock, Op, OpId, OpKind, RecordId, StateChange};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A running server on its own thread, stopped on drop.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub admin: Device,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Drop for TestApp {
    /// Stop the server and wait, at most 10 s, for its thread to end (a
    /// request stuck in the store must not hang the test; the process
    /// ends with the test anyway).
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// A logged-in device that writes ops.
pub struct Device {
    pub token: String,
    pub id: DeviceId,
    pub user: UserInfo,
    pub seq: u64,
    pub clock: HlcClock,
    pub cursor: u64,
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

/// [`spawn_app`] with some settings changed.
pub fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::new(dir.path().join("data"), "127.0.0.1:0");
    settings.admin_password = Some(ADMIN_PASSWORD.into());
    settings.hash_cost = HashCost::TestOnlyFast;
    settings.workers = Some(2);
    change(&mut settings);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(settings).expect("build app");
            tx.send((app.port(), app.handle())).expect("send port");
            app.run_until_stopped().await.expect("server ran");
        });
    });
    let (port, handle) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server started");
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let admin = login_at(&client, &base, "admin", ADMIN_PASSWORD, None);
    TestApp {
        base,
        client,
        admin,
        handle,
        thread: Some(thread),
        dir,
    }
}

pub fn login_at(
    client: &Client,
    base: &str,
    username: &str,
    password: &str,
    device_id: Option<DeviceId>,
) -> Device {
    let mut body = json!({"username": username, "password": password, "device_name": format!("{username}-laptop")});
    if let Some(d) = device_id {
        body["device_id"] = json!(d);
    }
    let r = client
        .post(format!("{base}/v1/auth/login"))
        .json(&body)
        .send()
        .expect("login request");
    assert_eq!(r.status().as_u16(), 201, "login {username}: {:?}", r.text());
    Device::registered(r.json().expect("login json"))
}

pub fn json_of<T: DeserializeOwned>(r: Response, want: u16) -> T {
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    assert_eq!(status, want, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad json {e}: {text}"))
}

/// Status and error code of an error response.
pub fn error_of(r: Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().expect("error json");
    (status, v["code"].as_str().unwrap_or_default().to_owned())
}

impl TestApp {
    /// The server's SQLite file.
    pub fn db_file(&self) -> std::path::PathBuf {
        self.dir.path().join("data").join("server.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn post<B: Serialize>(&self, path: &str, token: Option<&str>, body: &B) -> Response {
        let mut rq = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().expect("request")
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut rq = self.client.get(self.url(path));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send().expect("request")
    }

    pub fn login(&self, username: &str, password: &str) -> Device {
        login_at(&self.client, &self.base, username, password, None)
    }

    pub fn create_team(&self, name: &str) -> TeamInfo {
        json_of(
            self.post(
                "/v1/admin/teams",
                Some(&self.admin.token),
                &json!({"name": name}),
            ),
            200,
        )
    }

    pub fn create_user(
        &self,
        username: &str,
        role: Role,
        team: Option<&str>,
        supervisor: Option<&str>,
    ) -> UserInfo {
        let mut body =
            json!({"username": username, "password": format!("{username}-password"), "role": role});
        if let Some(t) = team {
            body["team"] = json!(t);
        }
        if let Some(s) = supervisor {
            body["supervisor"] = json!(s);
        }
        json_of(
            self.post("/v1/admin/users", Some(&self.admin.token), &body),
            200,
        )
    }

    /// Create a user and log in one device.
    pub fn user_device(&self, username: &str, role: Role, team: Option<&str>) -> Device {
        self.create_user(username, role, team, None);
        self.login(username, &format!("{username}-password"))
    }

    pub fn push_raw(&self, dev: &mut Device, ops: Vec<Op>) -> Response {
        let clock = dev.clock.now(Utc::now());
        self.post(
            "/v1/sync/push",
            Some(&dev.token),
            &PushRequest { ops, clock },
        )
    }

    pub fn push(&self, dev: &mut Device, ops: Vec<Op>) -> PushResponse {
        let r: PushResponse = json_of(self.push_raw(dev, ops), 200);
        dev.clock.observe(&r.server_clock);
        r
    }

    /// Push one op and return its outcome's JSON.
    pub fn push_one(&self, dev: &mut Device, op: Op) -> Value {
        let r = self.push(dev, vec![op]);
        assert_eq!(r.outcomes.len(), 1, "{r:?}");
        serde_json::to_value(&r.outcomes[0].outcome).expect("outcome json")
    }

    pub fn pull_page(
        &self,
        dev: &Device,
        cursor: u64,
        limit: Option<u32>,
        checksums: bool,
    ) -> PullResponse {
        let resp = self.post(
            "/v1/sync/pull",
            Some(&dev.token),
            &PullRequest {
                cursor,
                limit,
                checksums,
            },
        );
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let named = (
            header(sync_protocol::wire::PULL_CURSOR_HEADER),
            header(sync_protocol::wire::PULL_MORE_HEADER),
        );
        let page: PullResponse = json_of(resp, 200);
        // Every page names its cursor in headers too, as its body does.
        assert_eq!(
            named,
            (Some(page.cursor.to_string()), Some(page.more.to_string())),
            "pull headers"
        );
        page
    }

    /// Pull everything after the device's cursor, advancing it.
    pub fn pull(&self, dev: &mut Device) -> Vec<Change> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let page = self.pull_page(dev, dev.cursor, None, false);
            out.extend(page.changes);
            dev.cursor = page.cursor;
            if !page.more {
                return out;
            }
        }
        panic!("pull never finished");
    }
}

impl Device {
    /// The device a login (or a registration) answered, before its first op.
    pub fn registered(l: LoginResponse) -> Self {
        let mut clock = HlcClock::new(l.device_id);
        clock.observe(&l.server_clock);
        Device {
            token: l.token,
            id: l.device_id,
            user: l.user,
            seq: 0,
            clock,
            cursor: 0,
        }
    }

    /// A new op of this device (next `device_seq`, a fresh clock reading).
    pub fn op(&mut self, collection: &str, record: RecordId, kind: OpKind, fields: Value) -> Op {
        self.seq += 1;
        let now = Utc::now();
        Op {
            op_id: OpId::new_v7(now),
            device_id: self.id,
            device_seq: self.seq,
            hlc: self.clock.now(now),
            schema_version: SCHEMA_VERSION,
            collection: collection.into(),
            record_id: record,
            kind,
            fields: fields_of(fields),
            transition: None,
            base: None,
        }
    }

    pub fn create(&mut self, collection: &str, fields: Value) -> (RecordId, Op) {
        let id = RecordId::new_v7(Utc::now());
        (id, self.op(collection, id, OpKind::Create, fields))
    }

    pub fn transition(
        &mut self,
        collection: &str,
        record: RecordId,
        field: &str,
        from: &str,
        to: &str,
        fields: Value,
    ) -> Op {
        let mut op = self.op(collection, record, OpKind::Transition, fields);
        op.transition = Some(StateChange {
            field: field.into(),
            from: from.into(),
            to: to.into(),
        });
        op
    }

    /// Re-stamp an op with an explicit clock.
    pub fn at(mut op: Op, millis: u64) -> Op {
        op.hlc = Hlc {
            millis,
            counter: 0,
            node: op.device_id,
        };
        op
    }
}

pub fn fields_of(v: Value) -> Fields {
    serde_json::from_value(v).expect("fields object")
}

pub fn customer_fields(name: &str) -> Value {
    json!({"name": name, "created_at": "2026-11-28T09:00:00.000Z", "location": {"lat": 31.2304, "lon": 121.4737}})
}

pub fn upserts(changes: &[Change]) -> Vec<&sync_protocol::RecordState> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert { record, .. } => Some(record),
            Change::Evict { .. } => None,
        })
        .collect()
}

/// Each outcome of a push: its error code when rejected, else its status.
pub fn outcome_codes(r: &PushResponse) -> Vec<String> {
    r.outcomes
        .iter()
        .map(|o| {
            let v = serde_json::to_value(&o.outcome).expect("outcome json");
            v["code"]
                .as_str()
                .map_or_else(|| status(&v).to_owned(), str::to_owned)
        })
        .collect()
}

pub fn status(outcome: &Value) -> &str {
    outcome["status"].as_str().unwrap_or_default()
}

/// Poll `f` until it returns `Some`, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
