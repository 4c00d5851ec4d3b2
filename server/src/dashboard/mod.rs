//! The web dashboard at `/dashboard`: sign in with the same username and
//! password as the CLI, then the scorecard, feedback and visits reports with
//! charts, sortable tables, period and team pickers and CSV downloads.
//!
//! Everything is served by this binary: Chart.js (MIT) and the page script
//! and style are embedded with `include_str!`, and the Content-Security-Policy
//! forbids any other origin. Sessions are signed cookies (see [`session`]);
//! every form carries an anti-forgery token and cookies are `SameSite=Strict`.

mod page;
pub mod session;

use crate::accounts;
use crate::error::{ApiError, blocking};
use crate::reports::{self, GroupBy, ReportKind, ReportRequest};
use crate::state::AppState;
use crate::store::{self, UserRow};
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use session::Session;
use sync_protocol::metrics::Period;
use sync_protocol::schema::Role;

const CHART_JS: &str = include_str!("assets/chart.umd.min.js");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// No request to any other origin; scripts only from this server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A sign-in: the user and the cookie value, or the status and message of a refusal.
type SignIn = Result<(UserRow, String), (actix_web::http::StatusCode, String)>;

/// Mount the dashboard routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(home))
        .route("/dashboard/", web::get().to(home))
        .route("/dashboard/login", web::get().to(login_form))
        .route("/dashboard/login", web::post().to(login))
        .route("/dashboard/logout", web::post().to(logout))
        .route("/dashboard/assets/{file}", web::get().to(asset))
        .route("/dashboard/{report}", web::get().to(report_page))
        .route("/dashboard/{report}/csv", web::get().to(report_csv));
}

fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn home() -> HttpResponse {
    redirect("/dashboard/scorecard")
}

async fn asset(path: web::Path<String>) -> HttpResponse {
    let (body, ct) = match path.as_str() {
        "chart.umd.min.js" => (CHART_JS, "text/javascript; charset=utf-8"),
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "dashboard.css" => (DASHBOARD_CSS, "text/css; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(ct)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// A dashboard cookie: `HttpOnly`, `SameSite=Strict`, path `/dashboard`,
/// and `Secure` when the request came over HTTPS (directly or as reported
/// by a proxy's `Forwarded`/`X-Forwarded-Proto`).
fn cookie<'a>(req: &HttpRequest, name: &'a str, value: String, max_age_secs: i64) -> Cookie<'a> {
    Cookie::build(name, value)
        .path("/dashboard")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

async fn login_form(req: HttpRequest) -> HttpResponse {
    // Reuse the anti-forgery value while the form is open in several tabs.
    let csrf = req
        .cookie(session::LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32)
        .unwrap_or_else(session::random_token);
    let mut resp = html(page::login(&csrf, None));
    let _ = resp.add_cookie(&cookie(&req, session::LOGIN_CSRF_COOKIE, csrf, 3600));
    resp
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

fn login_error(csrf: &str, msg: &str, status: actix_web::http::StatusCode) -> HttpResponse {
    let mut r = html(page::login(csrf, Some(msg)));
    *r.status_mut() = status;
    r
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: crate::body::Form<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    use actix_web::http::StatusCode;
    let form = form.into_inner();
    let expected = req
        .cookie(session::LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned());
    if expected.as_deref() != Some(form.csrf.as_str()) || form.csrf.len() < 32 {
        return Ok(login_error(
            &session::random_token(),
            "the sign-in form expired; please try again",
            StatusCode::FORBIDDEN,
        ));
    }
    let address = crate::throttle::request_address(&req);
    let st = state.into_inner();
    let now = chrono::Utc::now();
    let outcome = blocking(move || -> Result<SignIn, ApiError> {
        let user = match accounts::check_credentials(
            st.store.as_ref(),
            &form.username,
            &form.password,
            None,
            address,
            now,
        ) {
            Ok(u) if u.active => u,
            Err(ApiError::Throttled { message, .. }) => {
                return Ok(Err((StatusCode::TOO_MANY_REQUESTS, message)));
            }
            Err(e) if e.code() != sync_protocol::ErrorCode::InvalidCredentials => return Err(e),
            // A wrong password, an unknown or a deactivated user: one answer.
            _ => {
                return Ok(Err((
                    StatusCode::UNAUTHORIZED,
                    "wrong username or password".into(),
                )));
            }
        };
        if user.role == Role::Rep {
            return Ok(Err((
                StatusCode::FORBIDDEN,
                "the dashboard is for supervisors, HQ and admins".into(),
            )));
        }
        let s = Session {
            user: user.id,
            exp: now.timestamp() + session::TTL_SECS,
            csrf: session::random_token(),
            sid: session::random_token(),
        };
        let key = store::write(st.store.as_ref(), |tx| {
            tx.start_dashboard_session(
                &session::id_hash(&s.sid),
                user.id,
                s.exp.saturating_mul(1_000),
                now.timestamp_millis(),
            )?;
            session::secret(tx)
        })?;
        Ok(Ok((user, session::sign(&key, &s))))
    })
    .await?;
    match outcome {
        Err((status, msg)) => Ok(login_error(&form_csrf(&req), &msg, status)),
        Ok((_, value)) => {
            let mut resp = redirect("/dashboard/scorecard");
            let _ = resp.add_cookie(&cookie(&req, session::COOKIE, value, session::TTL_SECS));
            let _ = resp.add_removal_cookie(&cookie(
                &req,
                session::LOGIN_CSRF_COOKIE,
                String::new(),
                0,
            ));
            Ok(resp)
        }
    }
}

fn form_csrf(req: &HttpRequest) -> String {
    req.cookie(session::LOGIN_CSRF_COOKIE)
        .map_or_else(session::random_token, |c| c.value().to_owned())
}

/// The signed-in user of a request, if the cookie is valid and the user
/// may still see reports.
async fn signed_in(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<Option<(UserRow, Session)>, ApiError> {
    let Some(value) = req.cookie(session::COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(None);
    };
    let st = state.clone().into_inner();
    blocking(move || {
        store::read(st.store.as_ref(), |tx| {
            let Some(key) = session::existing_secret(tx)? else {
                return Ok(None);
            };
            let now = chrono::Utc::now();
            let Some(s) = session::verify(&key, &value, now.timestamp()) else {
                return Ok(None);
            };
            let live = tx.dashboard_session(&session::id_hash(&s.sid))?;
            if !live.is_some_and(|(user, exp)| user == s.user && exp > now.timestamp_millis()) {
                return Ok(None);
            }
            Ok::<_, ApiError>(
                tx.user(s.user)?
                    .filter(|u| u.active && u.role != Role::Rep)
                    .map(|u| (u, s)),
            )
        })
    })
    .await
}

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: crate::body::Form<LogoutForm>,
) -> Result<HttpResponse, ApiError> {
    match signed_in(&req, &state).await? {
        Some((_, s)) if s.csrf == form.csrf => {
            let st = state.into_inner();
            blocking(move || {
                store::write(st.store.as_ref(), |tx| {
                    tx.end_dashboard_session(&session::id_hash(&s.sid))
                })
                .map_err(ApiError::from)
            })
            .await?;
            let mut resp = redirect("/dashboard/login");
            let _ = resp.add_removal_cookie(&cookie(&req, session::COOKIE, String::new(), 0));
            Ok(resp)
        }
        Some(_) => Ok(HttpResponse::Forbidden().body("forged request refused")),
        None => Ok(redirect("/dashboard/login")),
    }
}

/// Filters of a report page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    period: Option<String>,
    team: Option<String>,
    by: Option<GroupBy>,
    section: Option<String>,
}

fn page_kind(name: &str) -> Option<ReportKind> {
    ReportKind::parse(name).filter(|k| {
        matches!(
            k,
            ReportKind::Scorecard | ReportKind::Feedback | ReportKind::Visits
        )
    })
}

async fn build(
    state: &web::Data<AppState>,
    user: UserRow,
    kind: ReportKind,
    q: &PageQuery,
) -> Result<(reports::Report, Vec<String>, String), ApiError> {
    let now = chrono::Utc::now();
    let period_text = q
        .period
        .clone()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| Period::month_of(now.date_naive()).to_string());
    let period = Period::parse(&period_text).map_err(|e| {
        ApiError::field(
            sync_protocol::ErrorCode::MalformedRequest,
            "period",
            e.to_string(),
        )
    })?;
    let req = ReportRequest {
        kind,
        period,
        team: q.team.clone().filter(|t| !t.is_empty()),
        by: q.by.unwrap_or_default(),
    };
    let st = state.clone().into_inner();
    blocking(move || {
        let report = reports::generate(st.store.as_ref(), &user, &req, now)?;
        // The pickers' team names: a second, tiny read.
        store::read(st.store.as_ref(), |tx| {
            let teams: Vec<String> = match user.role {
                Role::Supervisor => user
                    .team_id
                    .and_then(|t| tx.team(t).ok().flatten())
                    .map(|t| t.name)
                    .into_iter()
                    .collect(),
                _ => tx.teams()?.into_iter().map(|t| t.name).collect(),
            };
            Ok::<_, ApiError>((report, teams, period_text))
        })
    })
    .await
}

async fn report_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(kind) = page_kind(&path) else {
        return Ok(HttpResponse::NotFound().body("no such dashboard page"));
    };
    let Some((user, s)) = signed_in(&req, &state).await? else {
        return Ok(redirect("/dashboard/login"));
    };
    let q = query.into_inner();
    let username = user.username.clone();
    match build(&state, user, kind, &q).await {
        Ok((report, teams, period)) => {
            let by = match q.by.unwrap_or_default() {
                GroupBy::Rep => "rep",
                GroupBy::Team => "team",
                GroupBy::Region => "region",
            };
            let filters = page::Filters {
                period: &period,
                team: q.team.as_deref().filter(|t| !t.is_empty()),
                teams: &teams,
                by,
            };
            Ok(html(page::report(&report, &filters, &username, &s.csrf)))
        }
        Err(ApiError::Client {
            message, status, ..
        }) => {
            let mut r = html(page::frame(
                "Error",
                Some((kind.as_str(), &username, &s.csrf)),
                &format!(
                    "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/dashboard/{}\">Back</a></p>",
                    page::esc(&message),
                    kind.as_str()
                ),
            ));
            *r.status_mut() = status;
            Ok(r)
        }
        Err(e) => Err(e),
    }
}

async fn report_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let Some(kind) = page_kind(&path) else {
        return Ok(HttpResponse::NotFound().body("no such report"));
    };
    let Some((user, _)) = signed_in(&req, &state).await? else {
        // A download, often by a script: say so rather than send a form.
        return Ok(HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body("not signed in (or the session ended); sign in at /dashboard/login\n"));
    };
    let q = query.into_inner();
    let (report, _, _) = build(&state, user, kind, &q).await?;
    let table = match &q.section {
        None => report.tables.first(),
        Some(s) => report.tables.iter().find(|t| &t.name == s),
    }
    .ok_or_else(|| ApiError::not_found("no such section"))?;
    let body = reports::csv::render(table).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8; header=present")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}-{}-{}.csv\"",
                kind.as_str(),
                report.period.replace("..", "_"),
                table.name
            ),
        ))
        .body(body))
}
