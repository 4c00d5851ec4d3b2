//! Prometheus metrics: requests by route and status, latency, op outcomes,
//! pulls and active devices.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::collections::BTreeMap;

/// The server's metrics (one registry per application).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `fieldsync_http_requests_total{route, status}`.
    pub requests: IntCounterVec,
    /// `fieldsync_http_request_duration_seconds{route}`.
    pub latency: HistogramVec,
    /// `fieldsync_ops_total{outcome}`: applied, superseded, rejected, replayed,
    /// device_diverged.
    pub ops: IntCounterVec,
    /// `fieldsync_ops_rejected_total{code}`: refused ops by error code
    /// (`forbidden`, `bad_reference`, ...).
    pub rejected: IntCounterVec,
    /// `fieldsync_pulls_total`.
    pub pulls: IntCounter,
    /// `fieldsync_active_devices`: devices not revoked whose user is active (refreshed on scrape).
    pub active_devices: IntGauge,
    /// `fieldsync_password_hashes_total`: argon2 hashes computed (logins,
    /// password changes; refreshed on scrape).
    pub password_hashes: IntCounter,
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "fieldsync_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "fieldsync_http_request_duration_seconds",
                "HTTP request latency by route",
            ),
            &["route"],
        )?;
        let ops = IntCounterVec::new(
            Opts::new("fieldsync_ops_total", "Pushed ops by outcome"),
            &["outcome"],
        )?;
        let rejected = IntCounterVec::new(
            Opts::new("fieldsync_ops_rejected_total", "Refused ops by error code"),
            &["code"],
        )?;
        registry.register(Box::new(rejected.clone()))?;
        let pulls = IntCounter::new("fieldsync_pulls_total", "Pull pages served")?;
        let active_devices = IntGauge::new(
            "fieldsync_active_devices",
            "Devices not revoked whose user is active",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(ops.clone()))?;
        registry.register(Box::new(pulls.clone()))?;
        let password_hashes = IntCounter::new(
            "fieldsync_password_hashes_total",
            "Password hashes computed (logins and password changes)",
        )?;
        registry.register(Box::new(active_devices.clone()))?;
        registry.register(Box::new(password_hashes.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            ops,
            rejected,
            pulls,
            active_devices,
            password_hashes,
        })
    }

    /// Count one request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// Count the outcomes of one push.
    pub fn count_push(&self, c: &Counts) {
        self.ops.with_label_values(&["applied"]).inc_by(c.applied);
        self.ops
            .with_label_values(&["superseded"])
            .inc_by(c.superseded);
        self.ops.with_label_values(&["rejected"]).inc_by(c.rejected);
        self.ops.with_label_values(&["replayed"]).inc_by(c.replayed);
        self.ops
            .with_label_values(&["device_diverged"])
            .inc_by(c.diverged);
        for (code, n) in &c.rejected_by_code {
            self.rejected.with_label_values(&[code]).inc_by(*n);
        }
    }

    /// The text exposition format.
    /// `hashes_done`: password hashes this process has computed.
    pub fn render(&self, hashes_done: u64) -> Result<String, prometheus::Error> {
        self.password_hashes
            .inc_by(hashes_done.saturating_sub(self.password_hashes.get()));
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Outcome counts of one push (for metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Newly applied.
    pub applied: u64,
    /// Newly applied but lost some fields.
    pub superseded: u64,
    /// Newly rejected.
    pub rejected: u64,
    /// Replays answered from the stored outcome.
    pub replayed: u64,
    /// Ops not applied because the device's history diverged.
    pub diverged: u64,
    /// Newly rejected ops by error code.
    pub rejected_by_code: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Count one newly rejected op with its error code.
    pub fn reject(&mut self, code: &'static str) {
        self.rejected += 1;
        *self.rejected_by_code.entry(code).or_default() += 1;
    }
}
