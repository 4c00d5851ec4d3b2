//! Liveness, readiness and metrics.

use crate::error::{ApiError, blocking};
use crate::state::AppState;
use crate::store;
use actix_web::{HttpResponse, web};

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "ok", body = String)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// `GET /readyz`: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "ok", body = String), (status = 503, body = sync_protocol::wire::ApiError)))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.into_inner();
    blocking(move || st.store.ping().map_err(ApiError::Unavailable)).await?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("ok"))
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text exposition", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let st = state.clone().into_inner();
    let n = blocking(move || {
        store::read(st.store.as_ref(), |tx| {
            Ok::<_, ApiError>(tx.active_device_count()?)
        })
    })
    .await?;
    state.metrics.active_devices.set(n as i64);
    let text = state
        .metrics
        .render(crate::auth::hashes_done())
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}
