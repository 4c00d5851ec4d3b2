//! The OpenAPI 3 document, generated from the handlers' annotations.

use super::{admin, auth, health, info, reports, sync};
use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every endpoint and the error body.
#[derive(OpenApi)]
#[openapi(
    info(title = "fieldsync", description = "The fieldsync sync protocol v1 (see docs/protocol.md)."),
    paths(
        health::healthz, health::readyz, health::metrics, info::info,
        auth::login, auth::logout, auth::whoami, auth::register_device, sync::push, sync::pull, sync::conflicts, sync::problem_decisions,
        admin::list_teams, admin::create_team, admin::list_users, admin::create_user, admin::deactivate_user, admin::activate_user,
        admin::reset_password, admin::list_devices, admin::revoke_device, admin::assign_customer, admin::assign_customers_of, admin::list_problems, admin::apply_problem, admin::discard_problem, admin::list_conflicts,
        reports::report, reports::get_gps_rules, reports::put_gps_rules,
        openapi_json,
    ),
    components(schemas(sync_protocol::wire::ApiError, sync_protocol::ErrorCode)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "this document")))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
