//! The one error type of the HTTP boundary. Every failure becomes a JSON
//! body `{"code", "message", "field"?}` (`wire::ApiError`); internal errors
//! are logged with their full chain and answered with an opaque 500.

use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sync_protocol::{ErrorCode, ValidationError, wire};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A 4xx with a stable code.
    #[error("{message}")]
    Client {
        /// HTTP status.
        status: StatusCode,
        /// Stable code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
        /// The field concerned.
        field: Option<String>,
    },
    /// `429 rate_limited`, with `Retry-After`.
    #[error("{message}")]
    Throttled {
        /// Human sentence.
        message: String,
        /// Seconds until an attempt may succeed.
        retry_after_secs: u64,
    },
    /// The database is not reachable.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else: a bug or an I/O failure. Details go to the log only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A client error with the status the protocol assigns to `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            status: status_of(code),
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A client error about one field.
    pub fn field(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        ApiError::Client {
            status: status_of(code),
            code,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// `400 malformed_request`.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, message)
    }

    /// `404 not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `403 forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// An internal error from anything.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Client { code, .. } => *code,
            ApiError::Throttled { .. } => ErrorCode::RateLimited,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// The HTTP status of each code (see docs/protocol.md).
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as E;
    match code {
        E::Unauthenticated | E::InvalidCredentials | E::DeviceRevoked | E::UserDeactivated => {
            StatusCode::UNAUTHORIZED
        }
        E::Forbidden | E::OutOfScope | E::WrongDevice => StatusCode::FORBIDDEN,
        E::NotFound => StatusCode::NOT_FOUND,
        E::Conflict | E::AlreadyExists => StatusCode::CONFLICT,
        E::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        E::ClientTooOld => StatusCode::UPGRADE_REQUIRED,
        E::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        E::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        E::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(what) => {
                ApiError::new(ErrorCode::Conflict, format!("{what} is already taken"))
            }
            StoreError::Backend(_) | StoreError::TimedOut { .. } => ApiError::Unavailable(e),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Client {
            status: status_of(e.code),
            code: e.code,
            message: e.message,
            field: e.field,
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(anyhow::anyhow!("blocking task failed: {e}"))
    }
}

/// The error with its whole `source` chain, for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Client { status, .. } => *status,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Client {
                code,
                message,
                field,
                ..
            } => wire::ApiError {
                code: *code,
                message: message.clone(),
                field: field.clone(),
            },
            ApiError::Throttled { message, .. } => wire::ApiError {
                code: ErrorCode::RateLimited,
                message: message.clone(),
                field: None,
            },
            ApiError::Unavailable(e @ StoreError::TimedOut { .. }) => {
                tracing::warn!(error = %chain(e), "a store wait passed its deadline");
                wire::ApiError {
                    code: ErrorCode::Unavailable,
                    message: format!("the server is busy: {e}; retry"),
                    field: None,
                }
            }
            ApiError::Unavailable(e) => {
                tracing::error!(error = %chain(e), "database unavailable");
                wire::ApiError {
                    code: ErrorCode::Unavailable,
                    message: "the database is unavailable; try again shortly".into(),
                    field: None,
                }
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                wire::ApiError {
                    code: ErrorCode::Internal,
                    message: "internal server error; details are in the server log".into(),
                    field: None,
                }
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            // Whatever made it unavailable is expected to pass.
            ApiError::Unavailable(_) => {
                response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
            }
            ApiError::Throttled {
                retry_after_secs, ..
            } => {
                response.insert_header((
                    actix_web::http::header::RETRY_AFTER,
                    retry_after_secs.to_string(),
                ));
            }
            _ => {}
        }
        response.json(body)
    }
}

/// Run blocking store work off the async executor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    actix_web::web::block(f).await?
}
