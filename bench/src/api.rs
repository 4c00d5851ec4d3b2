//! Talking to the server over HTTP with the wire types of `sync-protocol`,
//! for account set-up and the simulated fleet.

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::blocking::{Client, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::time::Duration;
use sync_protocol::schema::Role;
use sync_protocol::version::{PROTOCOL_HEADER, PROTOCOL_VERSION, SCHEMA_HEADER, SCHEMA_VERSION};
use sync_protocol::wire::{
    CreateTeamRequest, CreateUserRequest, LoginRequest, LoginResponse, Outcome, PullRequest,
    PullResponse, PushRequest, PushResponse, TeamInfo, UserInfo,
};

/// A client for one server, optionally with a device token.
#[derive(Clone)]
pub struct Api {
    base: String,
    http: Client,
    token: Option<String>,
}

impl Api {
    /// An anonymous client.
    pub fn new(base: &str) -> Result<Self> {
        // Idle connections are dropped before the server's keep-alive
        // (5 s) closes them: a request sent on a connection the server is
        // closing fails with "connection closed before message completed".
        let http = Client::builder()
            .timeout(Duration::from_mins(5))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: None,
        })
    }

    /// The same client with new connections (after a server restart).
    pub fn reconnect(&self) -> Result<Self> {
        let mut api = Self::new(&self.base)?;
        api.token.clone_from(&self.token);
        Ok(api)
    }

    /// The same token on another server instance (on the same database).
    pub fn at(&self, base: &str) -> Result<Self> {
        let mut api = Self::new(base)?;
        api.token.clone_from(&self.token);
        Ok(api)
    }

    fn prepare(&self, rb: RequestBuilder) -> RequestBuilder {
        let rb = rb
            .header(SCHEMA_HEADER, SCHEMA_VERSION.to_string())
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string());
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn send<T: DeserializeOwned>(&self, what: &str, rb: RequestBuilder) -> Result<T> {
        let resp = self
            .prepare(rb)
            .send()
            .with_context(|| format!("{what}: request failed"))?;
        let status = resp.status();
        let text = resp
            .text()
            .with_context(|| format!("{what}: reading the answer"))?;
        if !status.is_success() {
            bail!("{what}: the server answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("{what}: unexpected answer {text}"))
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send(
            path,
            self.http.post(format!("{}{path}", self.base)).json(body),
        )
    }

    /// `GET path` as text.
    pub fn get_text(&self, path: &str) -> Result<String> {
        let resp = self
            .prepare(self.http.get(format!("{}{path}", self.base)))
            .send()
            .with_context(|| format!("GET {path}"))?;
        if !resp.status().is_success() {
            bail!("GET {path}: the server answered {}", resp.status());
        }
        Ok(resp.text()?)
    }

    /// The status code of `GET path`.
    pub fn status(&self, path: &str) -> Result<u16> {
        let resp = self
            .prepare(self.http.get(format!("{}{path}", self.base)))
            .send()
            .with_context(|| format!("GET {path}"))?;
        Ok(resp.status().as_u16())
    }

    /// Log in as a new device; returns a client holding its token.
    pub fn login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<(Api, LoginResponse)> {
        let resp: LoginResponse = self.post(
            "/v1/auth/login",
            &LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
                device_name: device_name.to_owned(),
                device_id: None,
            },
        )?;
        let mut api = self.clone();
        api.token = Some(resp.token.clone());
        Ok((api, resp))
    }

    /// Create a team (admin).
    pub fn create_team(&self, name: &str) -> Result<TeamInfo> {
        self.post(
            "/v1/admin/teams",
            &CreateTeamRequest {
                name: name.to_owned(),
                region: None,
            },
        )
    }

    /// Create a user (admin).
    pub fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        team: Option<&str>,
        supervisor: Option<&str>,
    ) -> Result<UserInfo> {
        self.post(
            "/v1/admin/users",
            &CreateUserRequest {
                username: username.to_owned(),
                password: password.to_owned(),
                role,
                team: team.map(str::to_owned),
                supervisor: supervisor.map(str::to_owned),
            },
        )
    }

    /// Push ops as the CLI does: a gzip-compressed JSON body.
    pub fn push(&self, req: &PushRequest) -> Result<PushResponse> {
        let json = serde_json::to_vec(req)?;
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&json)?;
        let gz = enc.finish()?;
        self.send(
            "push",
            self.http
                .post(format!("{}/v1/sync/push", self.base))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(gz),
        )
    }

    /// Push ops that must all be applied (a benchmark's own data): the
    /// answer, or an error naming the first op that was not.
    pub fn push_applied(&self, req: &PushRequest) -> Result<PushResponse> {
        let resp = self.push(req)?;
        let applied = resp
            .outcomes
            .iter()
            .filter(|o| matches!(o.outcome, Outcome::Applied))
            .count();
        if applied != req.ops.len() {
            bail!(
                "{applied} of {} ops applied: {:?}",
                req.ops.len(),
                resp.outcomes
                    .iter()
                    .find(|o| !matches!(o.outcome, Outcome::Applied))
            );
        }
        Ok(resp)
    }

    /// Pull one page.
    pub fn pull(&self, cursor: u64, limit: u32) -> Result<PullResponse> {
        self.post(
            "/v1/sync/pull",
            &PullRequest {
                cursor,
                limit: Some(limit),
                checksums: false,
            },
        )
    }
}
