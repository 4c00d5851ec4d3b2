//! `/v1/admin/*`.

use crate::accounts::{self, require_admin};
use crate::auth::{self, Actor};
use crate::error::{ApiError, blocking};
use crate::state::AppState;
use crate::store::{self, WriteTx};
use crate::sync::{assign, conflicts, problems};
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sync_protocol::wire::{
    AssignCustomerRequest, AssignCustomerResponse, AssignCustomersResponse, ConflictInfo,
    CreateTeamRequest, CreateUserRequest, DeviceInfo, DiscardProblemRequest, ProblemInfo,
    ResetPasswordRequest, TeamInfo, UserInfo,
};
use sync_protocol::{DeviceId, RecordId};

type ApiResult<T> = Result<web::Json<T>, ApiError>;

/// Run `f` in one write transaction on a blocking thread, with the time of
/// the request, and answer its result as JSON.
async fn written<T: serde::Serialize + Send + 'static>(
    state: web::Data<AppState>,
    f: impl FnOnce(&mut dyn WriteTx, DateTime<Utc>) -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    let st = state.into_inner();
    let now = Utc::now();
    Ok(web::Json(
        blocking(move || store::write(st.store.as_ref(), |tx| f(tx, now))).await?,
    ))
}

/// List teams.
#[utoipa::path(get, path = "/v1/admin/teams", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [TeamInfo]), (status = 403, body = sync_protocol::wire::ApiError)))]
pub async fn list_teams(actor: Actor, state: web::Data<AppState>) -> ApiResult<Vec<TeamInfo>> {
    require_admin(&actor)?;
    let st = state.into_inner();
    Ok(web::Json(
        blocking(move || store::read(st.store.as_ref(), accounts::teams)).await?,
    ))
}

/// Create a team (and its `teams` directory record).
#[utoipa::path(post, path = "/v1/admin/teams", tag = "admin", security(("bearer" = [])), request_body = CreateTeamRequest,
    responses((status = 200, body = TeamInfo), (status = 403, body = sync_protocol::wire::ApiError), (status = 409, body = sync_protocol::wire::ApiError)))]
pub async fn create_team(
    actor: Actor,
    state: web::Data<AppState>,
    body: crate::body::Json<CreateTeamRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&actor)?;
    let st = state.into_inner();
    let req = body.into_inner();
    let team = blocking(move || {
        store::write(st.store.as_ref(), |tx| {
            accounts::create_team(tx, &actor, &req, chrono::Utc::now())
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// List users.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [UserInfo]), (status = 403, body = sync_protocol::wire::ApiError)))]
pub async fn list_users(actor: Actor, state: web::Data<AppState>) -> ApiResult<Vec<UserInfo>> {
    require_admin(&actor)?;
    let st = state.into_inner();
    Ok(web::Json(
        blocking(move || store::read(st.store.as_ref(), accounts::users)).await?,
    ))
}

/// Create a user (and its `users` directory record).
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUserRequest,
    responses((status = 200, body = UserInfo), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 403, body = sync_protocol::wire::ApiError), (status = 409, body = sync_protocol::wire::ApiError)))]
pub async fn create_user(
    actor: Actor,
    state: web::Data<AppState>,
    body: crate::body::Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&actor)?;
    let st = state.into_inner();
    let req = body.into_inner();
    accounts::check_new_user(&req)?;
    let user = blocking(move || {
        let hash = auth::hash_password(&req.password, st.hash_cost)?;
        store::write(st.store.as_ref(), |tx| {
            accounts::create_user(tx, &actor, &req, hash, chrono::Utc::now())
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Deactivate a user: they cannot log in, and their devices can only hand
/// over (push) what they wrote before this moment.
#[utoipa::path(post, path = "/v1/admin/users/{username}/deactivate", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "login name")),
    responses((status = 200, body = UserInfo), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn deactivate_user(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<UserInfo> {
    require_admin(&actor)?;
    let username = path.into_inner();
    written(state, move |tx, now| {
        accounts::deactivate(tx, &actor, &username, now)
    })
    .await
}

/// Reactivate a user: they may log in and sync again.
#[utoipa::path(post, path = "/v1/admin/users/{username}/activate", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "login name")),
    responses((status = 200, body = UserInfo), (status = 403, body = sync_protocol::wire::ApiError), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn activate_user(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<UserInfo> {
    require_admin(&actor)?;
    let username = path.into_inner();
    written(state, move |tx, now| {
        accounts::reactivate(tx, &actor, &username, now)
    })
    .await
}

/// Reassign every customer of a user (with their histories) to another, in
/// one transaction: what a deactivated rep leaves behind.
#[utoipa::path(post, path = "/v1/admin/users/{username}/customers/assign", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "login name of the current owner")), request_body = AssignCustomerRequest,
    responses((status = 200, body = AssignCustomersResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 403, body = sync_protocol::wire::ApiError), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn assign_customers_of(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: crate::body::Json<AssignCustomerRequest>,
) -> ApiResult<AssignCustomersResponse> {
    require_admin(&actor)?;
    let from = path.into_inner();
    let req = body.into_inner();
    written(state, move |tx, now| {
        assign::assign_all(tx, &from, &req.to, now)
    })
    .await
}

/// Set a user's password.
#[utoipa::path(post, path = "/v1/admin/users/{username}/password", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, description = "login name")), request_body = ResetPasswordRequest,
    responses((status = 204), (status = 400, body = sync_protocol::wire::ApiError), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn reset_password(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: crate::body::Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&actor)?;
    auth::check_password_rules(&body.password)?;
    let st = state.into_inner();
    let username = path.into_inner();
    let req = body.into_inner();
    blocking(move || {
        let hash = auth::hash_password(&req.password, st.hash_cost)?;
        store::write(st.store.as_ref(), |tx| {
            accounts::reset_password(tx, &username, &hash)
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?user=NAME`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    /// Only this user's devices.
    pub user: Option<String>,
}

/// List devices.
#[utoipa::path(get, path = "/v1/admin/devices", tag = "admin", security(("bearer" = [])), params(DevicesQuery),
    responses((status = 200, body = [DeviceInfo]), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn list_devices(
    actor: Actor,
    state: web::Data<AppState>,
    q: web::Query<DevicesQuery>,
) -> ApiResult<Vec<DeviceInfo>> {
    require_admin(&actor)?;
    let st = state.into_inner();
    let q = q.into_inner();
    Ok(web::Json(
        blocking(move || {
            store::read(st.store.as_ref(), |tx| {
                accounts::devices(tx, q.user.as_deref())
            })
        })
        .await?,
    ))
}

/// Revoke a device: it is refused everything from now on.
#[utoipa::path(post, path = "/v1/admin/devices/{id}/revoke", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceInfo), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn revoke_device(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<DeviceId>,
) -> ApiResult<DeviceInfo> {
    require_admin(&actor)?;
    let id = path.into_inner();
    written(state, move |tx, now| accounts::revoke(tx, id, now)).await
}

/// Reassign a customer with its whole history.
#[utoipa::path(post, path = "/v1/admin/customers/{id}/assign", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "customer record id")), request_body = AssignCustomerRequest,
    responses((status = 200, body = AssignCustomerResponse), (status = 404, body = sync_protocol::wire::ApiError)))]
pub async fn assign_customer(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<RecordId>,
    body: crate::body::Json<AssignCustomerRequest>,
) -> ApiResult<AssignCustomerResponse> {
    require_admin(&actor)?;
    let id = path.into_inner();
    let req = body.into_inner();
    written(state, move |tx, now| assign::assign(tx, id, &req.to, now)).await
}

/// `?team=NAME`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProblemsQuery {
    /// Only this team's problems.
    pub team: Option<String>,
}

/// Open conflicts for review: values that lost to a write that had not
/// seen them.
#[utoipa::path(get, path = "/v1/admin/conflicts", tag = "admin", security(("bearer" = [])), params(ProblemsQuery),
    responses((status = 200, body = [ConflictInfo]), (status = 403, body = sync_protocol::wire::ApiError)))]
pub async fn list_conflicts(
    actor: Actor,
    state: web::Data<AppState>,
    q: web::Query<ProblemsQuery>,
) -> ApiResult<Vec<ConflictInfo>> {
    let st = state.into_inner();
    let q = q.into_inner();
    Ok(web::Json(
        blocking(move || {
            store::read(st.store.as_ref(), |tx| {
                conflicts::review(tx, &actor, q.team.as_deref())
            })
        })
        .await?,
    ))
}

/// `?team=NAME&all=BOOL`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProblemListQuery {
    /// Only this team's problems.
    pub team: Option<String>,
    /// Decided ones too (applied or discarded).
    #[serde(default)]
    pub all: bool,
}

/// Rejected ops kept for review: the undecided ones, or with `all` every
/// one with its decision.
#[utoipa::path(get, path = "/v1/admin/problems", tag = "admin", security(("bearer" = [])), params(ProblemListQuery),
    responses((status = 200, body = [ProblemInfo]), (status = 403, body = sync_protocol::wire::ApiError)))]
pub async fn list_problems(
    actor: Actor,
    state: web::Data<AppState>,
    q: web::Query<ProblemListQuery>,
) -> ApiResult<Vec<ProblemInfo>> {
    let st = state.into_inner();
    let q = q.into_inner();
    Ok(web::Json(
        blocking(move || {
            store::read(st.store.as_ref(), |tx| {
                problems::list(tx, &actor, q.team.as_deref(), q.all)
            })
        })
        .await?,
    ))
}

/// Apply a problem's op, as the caller's decision: it is checked again
/// under the current rules with the caller's role and scope (a supervisor
/// for their own team; HQ and admins for everyone).
#[utoipa::path(post, path = "/v1/admin/problems/{id}/apply", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "problem number")),
    responses((status = 200, body = ProblemInfo), (status = 403, body = sync_protocol::wire::ApiError),
              (status = 404, body = sync_protocol::wire::ApiError), (status = 409, body = sync_protocol::wire::ApiError),
              (status = 422, body = sync_protocol::wire::ApiError)))]
pub async fn apply_problem(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> ApiResult<ProblemInfo> {
    let id = path.into_inner();
    written(state, move |tx, now| problems::apply(tx, &actor, id, now)).await
}

/// Discard a problem's op, saying why; it stays listed with `all`.
#[utoipa::path(post, path = "/v1/admin/problems/{id}/discard", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "problem number")), request_body = DiscardProblemRequest,
    responses((status = 200, body = ProblemInfo), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 403, body = sync_protocol::wire::ApiError), (status = 404, body = sync_protocol::wire::ApiError),
              (status = 409, body = sync_protocol::wire::ApiError)))]
pub async fn discard_problem(
    actor: Actor,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    body: crate::body::Json<DiscardProblemRequest>,
) -> ApiResult<ProblemInfo> {
    let id = path.into_inner();
    let req = body.into_inner();
    written(state, move |tx, now| {
        problems::discard(tx, &actor, id, &req.reason, now)
    })
    .await
}
