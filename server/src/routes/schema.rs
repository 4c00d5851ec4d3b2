//! The `fieldsync-schema` header every `/v1/` request may carry: a client
//! too old or too new for this server is told so before any handler runs.

use crate::error::ApiError;
use actix_web::ResponseError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use sync_protocol::ErrorCode;
use sync_protocol::version::{MIN_SCHEMA_VERSION, SCHEMA_HEADER, SCHEMA_VERSION};

/// Check the `fieldsync-schema` header of every `/v1/` request.
pub async fn schema_header(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if let Some(v) = req.headers().get(SCHEMA_HEADER) {
        let err = match v.to_str().ok().and_then(|s| s.trim().parse::<u32>().ok()) {
            None => Some(ApiError::malformed(format!(
                "{SCHEMA_HEADER} must be a whole number"
            ))),
            Some(n) if n < MIN_SCHEMA_VERSION => Some(ApiError::new(
                ErrorCode::ClientTooOld,
                format!(
                    "client schema {n} is older than the oldest this server accepts ({MIN_SCHEMA_VERSION}); upgrade fieldsync (your outbox is kept)"
                ),
            )),
            Some(n) if n > SCHEMA_VERSION => Some(ApiError::new(
                ErrorCode::UnsupportedSchemaVersion,
                format!(
                    "client schema {n} is newer than this server understands ({SCHEMA_VERSION}); the server must be upgraded"
                ),
            )),
            Some(_) => None,
        };
        if let Some(e) = err {
            let resp = e.error_response();
            return Ok(req.into_response(resp));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}
