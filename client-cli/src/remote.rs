//! The HTTP client for `fieldsync-server` (see `docs/protocol.md`).
//!
//! Every failure is turned into a [`Failure`] with the right exit code:
//! unreachable server → offline (3), bad or missing credentials → 4,
//! revoked device or deactivated user → 5, `426 client_too_old` → 6. A
//! server that answers it is busy (503 with `Retry-After`) is asked again
//! by the sync requests a few times ([`Remote::retrying_busy`]) before the
//! sync gives up as offline.

use crate::error::{Exit, Failure};
use anyhow::{Context, Result};
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::time::Duration;
use sync_protocol::ErrorCode;
use sync_protocol::version::{PROTOCOL_HEADER, PROTOCOL_VERSION, SCHEMA_HEADER, SCHEMA_VERSION};
use sync_protocol::wire::ApiError;

/// A connection to one server, with or without a device token.
pub struct Remote {
    base: String,
    token: Option<String>,
    http: Client,
}

/// How many times a sync request is sent again while the server answers
/// it is busy.
pub const BUSY_RETRIES: u32 = 3;
/// How long, in all, a sync request keeps being retried while the server
/// answers it is busy; then the sync ends as offline, its changes kept.
pub const BUSY_RETRY_FOR: Duration = Duration::from_secs(15);
/// The longest wait between two tries, whatever `Retry-After` asks.
pub const BUSY_WAIT_MAX: Duration = Duration::from_secs(5);

/// Why a request failed, before it becomes a [`Failure`].
#[derive(Debug)]
pub enum RemoteError {
    /// The server could not be reached (or answered 502/503/504 without
    /// saying it is busy).
    Offline(String),
    /// The server answered that it is busy (503 with `Retry-After`): a
    /// wait inside it passed its deadline. Retrying is safe for sync
    /// requests (a replayed push returns its stored outcomes).
    Busy {
        /// What the server said.
        detail: String,
        /// How long it asked to wait.
        retry_after: Duration,
    },
    /// The server answered with an error body.
    Api(StatusCode, ApiError),
}

impl Remote {
    /// A client for `server` (a base URL such as `http://127.0.0.1:8080`).
    pub fn new(server: &str, token: Option<String>) -> Result<Self> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_mins(2))
            .user_agent(concat!("fieldsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Run `request` again while the server answers it is busy: at most
    /// [`BUSY_RETRIES`] more times and, in all, while less than
    /// [`BUSY_RETRY_FOR`] has passed, waiting what it asks (at most
    /// [`BUSY_WAIT_MAX`]) in between. Only for requests that are safe to
    /// repeat.
    pub fn retrying_busy<T>(
        &self,
        mut request: impl FnMut(&Self) -> Result<T, RemoteError>,
    ) -> Result<T, RemoteError> {
        let start = std::time::Instant::now();
        let mut retries = 0;
        loop {
            match request(self) {
                Err(RemoteError::Busy { retry_after, .. })
                    if retries < BUSY_RETRIES && start.elapsed() < BUSY_RETRY_FOR =>
                {
                    retries += 1;
                    std::thread::sleep(retry_after.min(BUSY_WAIT_MAX));
                }
                other => return other,
            }
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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

    fn send(&self, rb: RequestBuilder) -> Result<Response, RemoteError> {
        let resp = self
            .prepare(rb)
            .send()
            .map_err(|e| RemoteError::Offline(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if matches!(
            status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            // The server itself says why (busy, or its database unavailable)
            // and when to ask again; a proxy in between may say nothing.
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let why = resp
                .text()
                .ok()
                .and_then(|t| serde_json::from_str::<ApiError>(&t).ok())
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default();
            let detail = format!("the server answered {status}{why}");
            return Err(match retry_after {
                Some(retry_after) if status == StatusCode::SERVICE_UNAVAILABLE => {
                    RemoteError::Busy {
                        detail,
                        retry_after,
                    }
                }
                _ => RemoteError::Offline(detail),
            });
        }
        let text = resp.text().unwrap_or_default();
        let body = serde_json::from_str::<ApiError>(&text).unwrap_or_else(|_| ApiError {
            code: if status == StatusCode::UPGRADE_REQUIRED {
                ErrorCode::ClientTooOld
            } else {
                ErrorCode::Internal
            },
            message: format!(
                "the server answered {status}: {}",
                text.chars().take(200).collect::<String>()
            ),
            field: None,
        });
        Err(RemoteError::Api(status, body))
    }

    /// `GET path` → JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let resp = self.send(self.http.get(self.url(path)))?;
        decode(resp)
    }

    /// `POST path` with a JSON body → JSON.
    pub fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RemoteError> {
        let resp = self.send(self.http.post(self.url(path)).json(body))?;
        decode(resp)
    }

    /// `POST path` with a JSON body → the answer with its body not yet
    /// read ([`Answer::decode`]), so that its headers can be acted on
    /// first (the next request then goes out on another pooled connection).
    pub fn post_answer<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer, RemoteError> {
        let resp = self.send(self.http.post(self.url(path)).json(body))?;
        Ok(Answer {
            headers: resp.headers().clone(),
            body: Body::Unread(resp),
        })
    }

    /// `POST path` with a JSON body, ignoring the answer's body.
    pub fn post_empty<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), RemoteError> {
        self.send(self.http.post(self.url(path)).json(body))
            .map(drop)
    }

    /// `POST path` without a body, ignoring the answer's body.
    pub fn post_bare(&self, path: &str) -> Result<(), RemoteError> {
        self.send(self.http.post(self.url(path))).map(drop)
    }

    /// `POST path` without a body → JSON.
    pub fn post_bare_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let resp = self.send(self.http.post(self.url(path)))?;
        decode(resp)
    }

    /// `GET path?query` → JSON.
    pub fn get_query<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, RemoteError> {
        let resp = self.send(self.http.get(self.url(path)).query(query))?;
        decode(resp)
    }

    /// `GET path?query` → the body as text and the value of one answer header
    /// (e.g. a CSV export and its `fieldsync-freshness` line).
    pub fn get_text(
        &self,
        path: &str,
        query: &[(&str, &str)],
        header: &str,
    ) -> Result<(String, Option<String>), RemoteError> {
        let resp = self.send(self.http.get(self.url(path)).query(query))?;
        let value = resp
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp
            .text()
            .map_err(|e| RemoteError::Offline(describe(&e)))?;
        Ok((text, value))
    }

    /// `POST path` with a gzip-compressed JSON body → JSON.
    pub fn post_gzip<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RemoteError> {
        let json = serde_json::to_vec(body)
            .map_err(|e| RemoteError::Offline(format!("cannot encode the request: {e}")))?;
        let mut enc = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
        let gz = enc
            .write_all(&json)
            .and_then(|()| enc.finish())
            .map_err(|e| RemoteError::Offline(format!("cannot compress the request: {e}")))?;
        let rb = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gz);
        let resp = self.send(rb)?;
        decode(resp)
    }
}

/// A successful answer whose body may not have been read yet.
pub struct Answer {
    headers: reqwest::header::HeaderMap,
    body: Body,
}

enum Body {
    Unread(Response),
    #[cfg(test)]
    Read(Vec<u8>),
}

impl Answer {
    /// An answer as if received (for tests of what is done with one).
    #[cfg(test)]
    pub fn received(headers: &[(&'static str, &str)], body: &str) -> Self {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().expect("header value"));
        }
        Self {
            headers: map,
            body: Body::Read(body.as_bytes().to_vec()),
        }
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Read and decode the JSON body.
    pub fn decode<T: DeserializeOwned>(self) -> Result<T, RemoteError> {
        match self.body {
            Body::Unread(resp) => decode(resp),
            #[cfg(test)]
            Body::Read(bytes) => decode_body(StatusCode::OK, &bytes),
        }
    }
}

fn decode<T: DeserializeOwned>(resp: Response) -> Result<T, RemoteError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .map_err(|e| RemoteError::Offline(describe(&e)))?;
    decode_body(status, &bytes)
}

fn decode_body<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, RemoteError> {
    serde_json::from_slice(bytes).map_err(|e| {
        RemoteError::Api(
            status,
            ApiError {
                code: ErrorCode::Internal,
                message: format!("the server's answer could not be read: {e}"),
                field: None,
            },
        )
    })
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

impl RemoteError {
    /// Turn into a user-facing failure. `pending` is the number of unsynced
    /// local changes, mentioned when the server is unreachable.
    pub fn into_failure(self, server: &str, pending: u64) -> Failure {
        match self {
            RemoteError::Offline(detail) => {
                offline(pending, format!("cannot reach {server} ({detail})"))
            }
            // Reached, but busy: say so rather than leave the user checking
            // their network.
            RemoteError::Busy { detail, .. } => offline(pending, format!("{server} is busy"))
                .hint(format!("try again shortly ({detail})")),
            RemoteError::Api(status, e) => api_failure(status, e, server, pending),
        }
    }
}

/// The offline failure: with unsynced changes, that they are kept;
/// otherwise `why`.
fn offline(pending: u64, why: String) -> Failure {
    let msg = if pending == 0 {
        format!("offline: {why}")
    } else {
        format!(
            "offline: {} saved and will sync later",
            crate::output::plural(pending, "change is", "changes are")
        )
    };
    Failure::exit(Exit::Offline, msg).code("offline")
}

fn api_failure(status: StatusCode, e: ApiError, server: &str, pending: u64) -> Failure {
    let kept = if pending > 0 {
        format!(
            " (your {} kept)",
            crate::output::plural(pending, "unsynced change is", "unsynced changes are")
        )
    } else {
        String::new()
    };
    let code = e.code.as_str();
    let f = match e.code {
        ErrorCode::InvalidCredentials => Failure::exit(Exit::Auth, "wrong username or password").hint("check the username and password; an administrator can reset it: fieldsync admin user reset-password NAME"),
        ErrorCode::Unauthenticated => Failure::exit(Exit::Auth, format!("the server does not accept this device's login{kept}"))
            .hint(format!("log in again: fieldsync login --server {server} --user NAME")),
        ErrorCode::DeviceRevoked => Failure::exit(Exit::Revoked, format!("this device was revoked by an administrator{kept}"))
            .hint(format!("log in again to register this laptop anew: fieldsync login --server {server} --user NAME")),
        ErrorCode::UserDeactivated => Failure::exit(Exit::Revoked, format!("your account is deactivated{kept}")).hint("ask an administrator to reactivate it"),
        ErrorCode::ClientTooOld => Failure::exit(Exit::TooOld, format!("this fieldsync ({}) is too old for the server{kept}", env!("CARGO_PKG_VERSION")))
            .hint("upgrade fieldsync, then run fieldsync sync again; nothing is lost meanwhile"),
        ErrorCode::RateLimited => Failure::new(e.message).hint("wait as long as the server says; every further wrong password doubles the wait"),
        ErrorCode::Forbidden => Failure::new(format!("not allowed: {}", e.message)).hint("this needs another role; ask an administrator"),
        _ => {
            let field = e.field.map(|f| format!(" [{f}]")).unwrap_or_default();
            Failure::new(format!("the server refused ({status}, {code}){field}: {}", e.message))
        }
    };
    f.code(code)
}

/// Shorthand for a failed request.
pub fn fail(e: RemoteError, server: &str, pending: u64) -> anyhow::Error {
    e.into_failure(server, pending).into()
}
