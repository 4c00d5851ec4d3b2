//! `/v1/auth/*`.

use crate::accounts;
use crate::auth::Actor;
use crate::error::{ApiError, blocking};
use crate::state::AppState;
use crate::store;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use sync_protocol::DeviceId;
use sync_protocol::wire::{LoginRequest, LoginResponse, RegisterDeviceRequest, UserInfo};

/// Answer of `GET /v1/auth/whoami`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The user.
    pub user: UserInfo,
    /// The calling device.
    pub device_id: DeviceId,
}

/// Log in: registers a device and returns its token (shown only here).
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 201, body = LoginResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError), (status = 413, body = sync_protocol::wire::ApiError),
              (status = 429, body = sync_protocol::wire::ApiError, headers(("Retry-After" = u64, description = "seconds until an attempt may succeed")))))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::body::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let address = crate::throttle::request_address(&req);
    let st = state.into_inner();
    let body = body.into_inner();
    let res =
        blocking(move || accounts::login(st.store.as_ref(), &body, address, chrono::Utc::now()))
            .await?;
    Ok(HttpResponse::Created().json(res))
}

/// Log out: revokes the caller's token.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = sync_protocol::wire::ApiError)))]
pub async fn logout(actor: Actor, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.into_inner();
    blocking(move || {
        store::write(st.store.as_ref(), |tx| {
            accounts::logout(tx, &actor, chrono::Utc::now())
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Register another device of the caller's user (a profile restored from a
/// backup, or copied to a second laptop); its token is shown only here.
#[utoipa::path(post, path = "/v1/auth/devices", tag = "auth", security(("bearer" = [])), request_body = RegisterDeviceRequest,
    responses((status = 201, body = LoginResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError), (status = 409, body = sync_protocol::wire::ApiError),
              (status = 413, body = sync_protocol::wire::ApiError)))]
pub async fn register_device(
    actor: Actor,
    state: web::Data<AppState>,
    body: crate::body::Json<RegisterDeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    let st = state.into_inner();
    let body = body.into_inner();
    let res = blocking(move || {
        store::write(st.store.as_ref(), |tx| {
            accounts::register_device(tx, &actor, &body, chrono::Utc::now())
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(res))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/v1/auth/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = WhoAmI), (status = 401, body = sync_protocol::wire::ApiError)))]
pub async fn whoami(actor: Actor) -> web::Json<WhoAmI> {
    web::Json(WhoAmI {
        user: accounts::user_info(&actor.user),
        device_id: actor.device.id,
    })
}
