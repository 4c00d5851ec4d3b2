//! `/v1/sync/*`.

use super::encode::{Body, wants_zstd};
use crate::auth::{self, Actor, BearerHash};
use crate::error::{ApiError, blocking};
use crate::state::AppState;
use crate::store;
use crate::sync::{
    conflicts as conflict_rules, problems as problem_rules, pull as pull_rules, push as push_rules,
};
use actix_web::http::header::AcceptEncoding;
use actix_web::{HttpResponse, web};
use sync_protocol::ErrorCode;
use sync_protocol::wire::{
    ConflictsRequest, ConflictsResponse, MAX_PUSH_OPS, PULL_CURSOR_HEADER, PULL_MORE_HEADER,
    ProblemDecisionsRequest, ProblemDecisionsResponse, PullRequest, PushRequest, PushResponse,
};

/// Push ops; one transaction per request.
#[utoipa::path(post, path = "/v1/sync/push", tag = "sync", security(("bearer" = [])), request_body = PushRequest,
    responses((status = 200, body = PushResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError), (status = 413, body = sync_protocol::wire::ApiError),
              (status = 426, body = sync_protocol::wire::ApiError)))]
pub async fn push(
    auth::Pusher(actor): auth::Pusher,
    state: web::Data<AppState>,
    accept: Option<web::Header<AcceptEncoding>>,
    body: crate::body::Json<PushRequest, { crate::body::MAX_BODY_BYTES }>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    if req.ops.len() > MAX_PUSH_OPS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "a push holds at most {MAX_PUSH_OPS} ops; this one has {}",
                req.ops.len()
            ),
        ));
    }
    let st = state.into_inner();
    let zstd = wants_zstd(accept.as_deref());
    // Counted on the blocking thread: the work completes (and is counted)
    // even when the client hangs up before the answer.
    let body = blocking(move || {
        let pushed = store::write(st.store.as_ref(), |tx| {
            push_rules::push(tx, &actor, &req, chrono::Utc::now())
        })?;
        st.metrics.count_push(&pushed.counts);
        let json = serde_json::to_vec(&pushed.response).map_err(ApiError::internal)?;
        Ok(Body::new(json, zstd))
    })
    .await?;
    Ok(body.respond(&[]))
}

/// Settle conflicts the caller lost, and list the open ones.
#[utoipa::path(post, path = "/v1/sync/conflicts", tag = "sync", security(("bearer" = [])), request_body = ConflictsRequest,
    responses((status = 200, body = ConflictsResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError), (status = 413, body = sync_protocol::wire::ApiError)))]
pub async fn conflicts(
    actor: Actor,
    state: web::Data<AppState>,
    body: crate::body::Json<ConflictsRequest>,
) -> Result<web::Json<ConflictsResponse>, ApiError> {
    let req = body.into_inner();
    let st = state.into_inner();
    let answer = blocking(move || {
        conflict_rules::exchange(st.store.as_ref(), &actor, &req, chrono::Utc::now())
    })
    .await?;
    Ok(web::Json(answer))
}

/// What became of the caller's problems among these ops: the applied or
/// discarded ones, with who decided, when and why.
#[utoipa::path(post, path = "/v1/sync/problems", tag = "sync", security(("bearer" = [])), request_body = ProblemDecisionsRequest,
    responses((status = 200, body = ProblemDecisionsResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError), (status = 413, body = sync_protocol::wire::ApiError)))]
pub async fn problem_decisions(
    actor: Actor,
    state: web::Data<AppState>,
    body: crate::body::Json<ProblemDecisionsRequest>,
) -> Result<web::Json<ProblemDecisionsResponse>, ApiError> {
    let req = body.into_inner();
    let st = state.into_inner();
    let answer = blocking(move || {
        store::read(st.store.as_ref(), |tx| {
            problem_rules::decisions(tx, &actor, &req)
        })
    })
    .await?;
    Ok(web::Json(answer))
}

/// Pull one page of changes (the body is written from the stored states
/// without decoding them; it is the serde form of `PullResponse`).
#[utoipa::path(post, path = "/v1/sync/pull", tag = "sync", security(("bearer" = [])), request_body = PullRequest,
    responses((status = 200, body = sync_protocol::wire::PullResponse), (status = 400, body = sync_protocol::wire::ApiError),
              (status = 401, body = sync_protocol::wire::ApiError)))]
pub async fn pull(
    token: BearerHash,
    state: web::Data<AppState>,
    accept: Option<web::Header<AcceptEncoding>>,
    body: crate::body::Json<PullRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let st = state.into_inner();
    let st2 = st.clone();
    let zstd = wants_zstd(accept.as_deref());
    let (body, cursor, more) = blocking(move || {
        // Authenticated in the pull's own snapshot: one transaction, not two.
        let page = store::read(st.store.as_ref(), |tx| {
            // A page reaches its rows from keys; the scope checksums scan
            // the whole scope and are planned for it.
            if !req.checksums {
                tx.reuse_plans();
            }
            let actor = auth::authenticate(tx, &token.0)?;
            pull_rules::page(tx, &actor.user, &req, chrono::Utc::now())
        })?;
        let body = Body::new(page.to_json()?.into_bytes(), zstd);
        Ok::<_, ApiError>((body, page.rest.cursor, page.rest.more))
    })
    .await?;
    st2.metrics.pulls.inc();
    // The body's `cursor` and `more` also as headers, so a client can ask
    // for the next page before it has read this one.
    Ok(body.respond(&[
        (PULL_CURSOR_HEADER, cursor.to_string()),
        (PULL_MORE_HEADER, more.to_string()),
    ]))
}
