//! `GET /v1/info`.

use actix_web::web;
use sync_protocol::version::{
    CAPABILITIES, MIN_SCHEMA_VERSION, PROTOCOL_VERSION, SCHEMA_VERSION, ServerInfo,
};

/// Versions and capabilities.
#[utoipa::path(get, path = "/v1/info", tag = "meta", responses((status = 200, body = ServerInfo)))]
pub async fn info() -> web::Json<ServerInfo> {
    web::Json(ServerInfo {
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: PROTOCOL_VERSION,
        schema_version: SCHEMA_VERSION,
        min_schema_version: MIN_SCHEMA_VERSION,
        capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
    })
}
