//! `GET /v1/reports/{report}`: HQ consolidated reports as JSON or CSV.

use crate::auth::Actor;
use crate::error::{ApiError, blocking};
use crate::reports::{self, GroupBy, ReportKind, ReportRequest};
use crate::state::AppState;
use crate::store;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::fmt::Write as _;
use sync_protocol::metrics::Period;
use sync_protocol::time::parse_date;

/// Query string of a report.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// `2026-11`, `2026-Q4`, `2026-W48`, `2026` or `FROM..TO`.
    pub period: Option<String>,
    /// First day (with `to`, instead of `period`).
    pub from: Option<String>,
    /// Last day, included.
    pub to: Option<String>,
    /// One team, by name.
    pub team: Option<String>,
    /// Scorecard grouping: `rep` (default), `team` or `region`.
    pub by: Option<GroupBy>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// With `format=csv`: which table (default: the first).
    pub section: Option<String>,
}

/// The period of a query.
pub fn period_of(q: &ReportQuery) -> Result<Period, ApiError> {
    match (&q.period, &q.from, &q.to) {
        (Some(p), None, None) => Period::parse(p).map_err(|e| {
            ApiError::field(
                sync_protocol::ErrorCode::MalformedRequest,
                "period",
                e.to_string(),
            )
        }),
        (None, Some(f), Some(t)) => {
            let day = |s: &str, field: &str| {
                parse_date(s).ok_or_else(|| {
                    ApiError::field(
                        sync_protocol::ErrorCode::MalformedRequest,
                        field,
                        format!("{s:?} is not a date (YYYY-MM-DD)"),
                    )
                })
            };
            Period::range(day(f, "from")?, day(t, "to")?).ok_or_else(|| {
                ApiError::field(
                    sync_protocol::ErrorCode::MalformedRequest,
                    "to",
                    "`to` is before `from`",
                )
            })
        }
        _ => Err(ApiError::field(
            sync_protocol::ErrorCode::MalformedRequest,
            "period",
            "give either `period` (2026-11, 2026-Q4, 2026-W48, 2026) or both `from` and `to`",
        )),
    }
}

/// One report, as JSON (`reports::Report`) or as CSV of one of its tables.
#[utoipa::path(get, path = "/v1/reports/{report}", tag = "reports", security(("bearer" = [])),
    params(
        ("report" = String, Path, description = "scorecard, feedback, visits, goals, training or devices"),
        ("period" = Option<String>, Query, description = "2026-11, 2026-Q4, 2026-W48 or 2026 (or give from and to)"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD (with to)"),
        ("to" = Option<String>, Query, description = "last day, included, YYYY-MM-DD (with from)"),
        ("team" = Option<String>, Query, description = "one team, by name"),
        ("by" = Option<String>, Query, description = "scorecard rows per rep (default), team or region"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
        ("section" = Option<String>, Query, description = "with format=csv: which table (default the first)"),
    ),
    responses(
        (status = 200, description = "the report: JSON {report, period, freshness, tables}, or one table as RFC 4180 CSV with the freshness line in the fieldsync-freshness header"),
        (status = 400, body = sync_protocol::wire::ApiError),
        (status = 403, body = sync_protocol::wire::ApiError, description = "reps cannot pull reports; a supervisor sees their own team only"),
        (status = 404, body = sync_protocol::wire::ApiError),
    ))]
pub async fn report(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let kind = ReportKind::parse(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no report named {name:?}; reports are scorecard, feedback, visits, goals, training, devices"
        ))
    })?;
    reports::require_report_role(&actor.user)?;
    let q = query.into_inner();
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::field(
                sync_protocol::ErrorCode::MalformedRequest,
                "format",
                format!("format {other:?} is not json or csv"),
            ));
        }
    };
    let req = ReportRequest {
        kind,
        period: period_of(&q)?,
        team: q.team.clone(),
        by: q.by.unwrap_or_default(),
    };
    let st = state.into_inner();
    let user = actor.user;
    let report =
        blocking(move || reports::generate(st.store.as_ref(), &user, &req, chrono::Utc::now()))
            .await?;
    if !csv {
        return Ok(HttpResponse::Ok().json(report));
    }
    let table = match &q.section {
        None => report.tables.first(),
        Some(s) => report.tables.iter().find(|t| &t.name == s),
    }
    .ok_or_else(|| {
        let names: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
        ApiError::field(
            sync_protocol::ErrorCode::MalformedRequest,
            "section",
            format!("this report's sections are {}", names.join(", ")),
        )
    })?;
    let body = reports::csv::render(table).map_err(ApiError::internal)?;
    let file = format!(
        "{}-{}-{}.csv",
        report.report.as_str(),
        report.period.replace("..", "_"),
        table.name
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header(("fieldsync-freshness", ascii_header(&report.freshness.line)))
        .body(body))
}

/// Header values must be visible ASCII: anything else (a Chinese username)
/// is percent-encoded.
fn ascii_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn team_for_rules(
    tx: &mut dyn store::ReadTx,
    actor: &crate::store::UserRow,
    name: &str,
) -> Result<crate::store::TeamRow, ApiError> {
    reports::require_report_role(actor)?;
    let team = tx
        .team_by_name(name)?
        .ok_or_else(|| ApiError::not_found(format!("no team named {name:?}")))?;
    if actor.role == sync_protocol::schema::Role::Supervisor && actor.team_id != Some(team.id) {
        return Err(ApiError::forbidden(
            "a supervisor sees the rules of their own team only",
        ));
    }
    Ok(team)
}

/// `GET /v1/reports/gps-rules/{team}`: the team's field-integrity thresholds.
#[utoipa::path(get, path = "/v1/reports/gps-rules/{team}", tag = "reports", security(("bearer" = [])),
    params(("team" = String, Path, description = "team name")),
    responses(
        (status = 200, description = "the team's GPS thresholds (radius, speed, minimum visit length, check-out distance)"),
        (status = 403, body = sync_protocol::wire::ApiError),
        (status = 404, body = sync_protocol::wire::ApiError),
    ))]
pub async fn get_gps_rules(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let st = state.into_inner();
    let name = path.into_inner();
    let rules = blocking(move || {
        store::read(st.store.as_ref(), |tx| {
            let team = team_for_rules(tx, &actor.user, &name)?;
            Ok::<_, ApiError>(reports::gps_rules::load(tx, team.id)?)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(rules))
}

/// `PUT /v1/reports/gps-rules/{team}` (HQ, admin): change some thresholds.
#[utoipa::path(put, path = "/v1/reports/gps-rules/{team}", tag = "reports", security(("bearer" = [])),
    params(("team" = String, Path, description = "team name")),
    request_body(content = Object, description = "the thresholds to change; the others keep their values"),
    responses(
        (status = 200, description = "the team's thresholds after the change"),
        (status = 400, body = sync_protocol::wire::ApiError),
        (status = 403, body = sync_protocol::wire::ApiError),
        (status = 404, body = sync_protocol::wire::ApiError),
    ))]
pub async fn put_gps_rules(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: crate::body::Json<reports::gps_rules::TeamGpsRulesPatch>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(
        actor.user.role,
        sync_protocol::schema::Role::Hq | sync_protocol::schema::Role::Admin
    ) {
        return Err(ApiError::forbidden(
            "only HQ and admins change a team's GPS rules",
        ));
    }
    let st = state.into_inner();
    let name = path.into_inner();
    let patch = body.into_inner();
    let rules = blocking(move || {
        store::write(st.store.as_ref(), |tx| {
            let team = team_for_rules(tx, &actor.user, &name)?;
            let rules = reports::gps_rules::load(tx, team.id)?.patched(&patch)?;
            reports::gps_rules::save(tx, team.id, &rules)?;
            tracing::info!(team = %team.name, by = %actor.user.username, ?rules, "team gps rules changed");
            Ok::<_, ApiError>(rules)
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(rules))
}
