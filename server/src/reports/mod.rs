//! HQ consolidated reports: scorecard, feedback analysis, visits and field
//! integrity, goals, training compliance, devices and sync health.
//!
//! Every report is a [`Report`]: a data-freshness line and one or more named
//! [`Table`]s of plain JSON cells, so JSON, CSV ([`csv::render`]), the CLI's
//! tables and the dashboard all show the same numbers. Metric numbers come
//! from `sync_protocol::metrics` (the definitions the laptops use), fed by
//! [`sync_protocol::metrics::FactIndex`] over the records in the caller's
//! scope.
//!
//! Visibility: reps are refused; a supervisor's rows *and totals* cover only
//! their team (members by `team_id` or `supervisor_id`); HQ and admin see
//! everything, optionally narrowed to one team.

pub mod csv;
mod data;
mod devices;
mod feedback;
mod goals;
pub mod gps_rules;
mod scorecard;
mod training;
mod visits;
pub mod workload;

pub use data::{Audience, Data};
pub use visits::VERDICTS;

use crate::error::ApiError;
use crate::store::{self, ReadTx, Store, StoreError, UserRow};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use sync_protocol::metrics::{MetricValue, Period};
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::{ErrorCode, UserId};

/// A rep who has not synced for longer than this is listed as stale.
pub const STALE_AFTER_HOURS: i64 = 48;

/// Which report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// One row per rep, team or region with the metric scorecard.
    Scorecard,
    /// CSAT/NPS by week, complaints by category and age, loop closure.
    Feedback,
    /// Visits by day and rep, GPS verdicts and the review queue.
    Visits,
    /// Goal progress.
    Goals,
    /// Training compliance and overdue assignments.
    Training,
    /// Devices and sync health.
    Devices,
}

impl ReportKind {
    /// Every report, in documentation order.
    pub const ALL: [ReportKind; 6] = [
        ReportKind::Scorecard,
        ReportKind::Feedback,
        ReportKind::Visits,
        ReportKind::Goals,
        ReportKind::Training,
        ReportKind::Devices,
    ];

    /// The name used in paths and files.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReportKind::Scorecard => "scorecard",
            ReportKind::Feedback => "feedback",
            ReportKind::Visits => "visits",
            ReportKind::Goals => "goals",
            ReportKind::Training => "training",
            ReportKind::Devices => "devices",
        }
    }

    /// Parse a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How scorecard rows are grouped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One row per rep.
    #[default]
    Rep,
    /// One row per team.
    Team,
    /// One row per region (of the reps' teams).
    Region,
}

/// What a report is asked for.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    /// Which report.
    pub kind: ReportKind,
    /// Over this period.
    pub period: Period,
    /// Narrow to one team (by name).
    pub team: Option<String>,
    /// Scorecard grouping.
    pub by: GroupBy,
}

/// Up to when the data is complete, and who has not synced lately.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    /// The oldest last sync among the reps in view that synced within
    /// [`STALE_AFTER_HOURS`]: every such rep's data is in up to this instant.
    pub complete_through: Option<String>,
    /// Reps in view with no sync for more than [`STALE_AFTER_HOURS`] hours (or never).
    pub stale_reps: Vec<String>,
    /// The same as one sentence, printed first by every output format.
    pub line: String,
}

/// One table of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Name (`rows`, `weekly`, `by_category`, ...), used to pick it as CSV.
    pub name: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows of JSON cells (text, number or `null` for no data).
    pub rows: Vec<Vec<Value>>,
    /// The totals row over everything in view, when the table has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<Vec<Value>>,
}

impl Table {
    fn new(name: &str, columns: &[&str]) -> Self {
        Table {
            name: name.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            totals: None,
        }
    }
}

/// A whole report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Which report.
    pub report: ReportKind,
    /// The period as asked (`2026-Q4`, `2026-11-01..2026-11-15`).
    pub period: String,
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// The team it was narrowed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// When it was computed (RFC 3339 UTC).
    pub generated_at: String,
    /// Data freshness.
    pub freshness: Freshness,
    /// The tables; the first is the main one.
    pub tables: Vec<Table>,
}

/// Build a report for `actor` at `now`. A scorecard reads its facts on
/// two threads, in two transactions on one snapshot, when the store offers
/// them ([`Store::read_pair`]); otherwise, and for every other report, it
/// is [`build`] in one read transaction.
pub fn generate(
    store: &dyn Store,
    actor: &UserRow,
    req: &ReportRequest,
    now: DateTime<Utc>,
) -> Result<Report, ApiError> {
    if req.kind == ReportKind::Scorecard {
        let (helper, mut second) = data::FactHelper::new();
        let mut helper = Some(helper);
        let mut out: Option<Result<Report, ApiError>> = None;
        let paired = store.read_pair(
            &mut |tx| {
                let built = build_with(tx, actor, req, now, helper.take());
                let failed = built.is_err();
                out = Some(built);
                // A failed build ends the pair; its error is returned below.
                if failed {
                    Err(StoreError::Rollback)
                } else {
                    Ok(())
                }
            },
            &mut *second,
        );
        match (paired, out) {
            (_, Some(Err(e))) => return Err(e),
            (Ok(true), Some(Ok(report))) => return Ok(report),
            (Err(e), _) => return Err(e.into()),
            _ => {}
        }
    }
    store::read(store, |tx| build(tx, actor, req, now))
}

/// Build a report for `actor` at `now`, inside one read transaction.
pub fn build(
    tx: &mut dyn ReadTx,
    actor: &UserRow,
    req: &ReportRequest,
    now: DateTime<Utc>,
) -> Result<Report, ApiError> {
    build_with(tx, actor, req, now, None)
}

fn build_with(
    tx: &mut dyn ReadTx,
    actor: &UserRow,
    req: &ReportRequest,
    now: DateTime<Utc>,
    helper: Option<data::FactHelper>,
) -> Result<Report, ApiError> {
    let audience = Audience::resolve(tx, actor, req.team.as_deref())?;
    let freshness = freshness(tx, &audience, now)?;
    let tables = if req.kind == ReportKind::Devices {
        devices::build(tx, &audience, now)?
    } else if req.kind == ReportKind::Scorecard {
        let data = Data::load_for_period(tx, actor, &req.period, now, helper)?;
        scorecard::build(&data, &audience, &req.period, req.by, now)
    } else {
        let data = Data::load(tx, actor)?;
        match req.kind {
            ReportKind::Feedback => feedback::build(&data, &audience, &req.period, now),
            ReportKind::Visits => {
                let mut rules = HashMap::new();
                for t in &audience.team_ids {
                    rules.insert(*t, gps_rules::load(tx, *t)?);
                }
                visits::build(&data, &audience, &req.period, &rules)
            }
            ReportKind::Goals => goals::build(&data, &audience, &req.period, now),
            ReportKind::Training => training::build(&data, &audience, &req.period, now),
            ReportKind::Devices | ReportKind::Scorecard => Vec::new(),
        }
    };
    let last = req.period.end() - chrono::Days::new(1);
    Ok(Report {
        report: req.kind,
        period: req.period.to_string(),
        from: req.period.start().to_string(),
        to: last.to_string(),
        team: req.team.clone(),
        generated_at: format_ts(now),
        freshness,
        tables,
    })
}

/// Refuse roles that may not pull HQ reports.
pub fn require_report_role(actor: &UserRow) -> Result<(), ApiError> {
    match actor.role {
        Role::Supervisor | Role::Hq | Role::Admin => Ok(()),
        Role::Rep => Err(ApiError::new(
            ErrorCode::Forbidden,
            "reports are for supervisors, HQ and admins; reps see their own figures with `fieldsync status`",
        )),
    }
}

fn freshness(
    tx: &mut dyn ReadTx,
    audience: &Audience,
    now: DateTime<Utc>,
) -> Result<Freshness, ApiError> {
    let mut last_sync: HashMap<UserId, DateTime<Utc>> = HashMap::new();
    for d in tx.devices(None)? {
        if d.revoked_at.is_some() {
            continue;
        }
        let Some(seen) = d
            .last_seen_at
            .as_deref()
            .and_then(sync_protocol::time::parse_ts)
        else {
            continue;
        };
        let e = last_sync.entry(d.user_id).or_insert(seen);
        if seen > *e {
            *e = seen;
        }
    }
    let limit = now - Duration::hours(STALE_AFTER_HOURS);
    let mut stale = Vec::new();
    let mut oldest: Option<DateTime<Utc>> = None;
    for rep in &audience.reps {
        match last_sync.get(&rep.id) {
            Some(t) if *t >= limit => {
                oldest = Some(oldest.map_or(*t, |o| o.min(*t)));
            }
            _ => stale.push(rep.username.clone()),
        }
    }
    let complete_through = oldest.map(format_ts);
    let mut line = match &complete_through {
        Some(t) => format!("data complete through {t}"),
        None => "no rep in view has synced in the last 48 hours".to_owned(),
    };
    if stale.is_empty() {
        line.push_str("; every rep synced within 48 hours");
    } else {
        let _ = write!(
            line,
            "; not synced for more than {STALE_AFTER_HOURS} hours: {}",
            stale.join(", ")
        );
    }
    Ok(Freshness {
        complete_through,
        stale_reps: stale,
        line,
    })
}

/// A metric value as a cell: a number rounded to 4 decimals, or `null`.
pub(crate) fn metric_cell(v: MetricValue) -> Value {
    v.value().map_or(Value::Null, num)
}

/// A number rounded to 4 decimals.
pub(crate) fn num(v: f64) -> Value {
    let r = (v * 10_000.0).round() / 10_000.0;
    if r.fract() == 0.0 && r.abs() < 9.0e15 {
        // Whole numbers as integers (counts read `3`, not `3.0`; never `-0`).
        return Value::from(r as i64);
    }
    serde_json::Number::from_f64(r).map_or(Value::Null, Value::Number)
}

/// An optional number.
pub(crate) fn opt_num(v: Option<f64>) -> Value {
    v.map_or(Value::Null, num)
}

/// A count.
pub(crate) fn count(n: usize) -> Value {
    Value::from(n as u64)
}

/// Text.
pub(crate) fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}
