//! HTTP handlers. They parse, authorise the role, hand the work to the rules
//! (`accounts`, `sync`) on a blocking thread, and shape the answer; they
//! never write SQL.

pub mod admin;
pub mod auth;
pub mod encode;
pub mod health;
pub mod info;
pub mod openapi;
pub mod reports;
pub mod schema;
pub mod sync;

use actix_web::web;

/// Mount the API (health, metrics and `/v1`; the dashboard mounts its own).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/v1")
                .wrap(actix_web::middleware::from_fn(schema::schema_header))
                .route("/info", web::get().to(info::info))
                .route("/openapi.json", web::get().to(openapi::openapi_json))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/auth/whoami", web::get().to(auth::whoami))
                .route("/auth/devices", web::post().to(auth::register_device))
                .route("/sync/push", web::post().to(sync::push))
                .route("/sync/pull", web::post().to(sync::pull))
                .route("/sync/conflicts", web::post().to(sync::conflicts))
                .route("/sync/problems", web::post().to(sync::problem_decisions))
                .route("/admin/teams", web::get().to(admin::list_teams))
                .route("/admin/teams", web::post().to(admin::create_team))
                .route("/admin/users", web::get().to(admin::list_users))
                .route("/admin/users", web::post().to(admin::create_user))
                .route(
                    "/admin/users/{username}/deactivate",
                    web::post().to(admin::deactivate_user),
                )
                .route(
                    "/admin/users/{username}/activate",
                    web::post().to(admin::activate_user),
                )
                .route(
                    "/admin/users/{username}/customers/assign",
                    web::post().to(admin::assign_customers_of),
                )
                .route(
                    "/admin/users/{username}/password",
                    web::post().to(admin::reset_password),
                )
                .route("/admin/devices", web::get().to(admin::list_devices))
                .route(
                    "/admin/devices/{id}/revoke",
                    web::post().to(admin::revoke_device),
                )
                .route(
                    "/admin/customers/{id}/assign",
                    web::post().to(admin::assign_customer),
                )
                .route("/admin/problems", web::get().to(admin::list_problems))
                .route(
                    "/admin/problems/{id}/apply",
                    web::post().to(admin::apply_problem),
                )
                .route(
                    "/admin/problems/{id}/discard",
                    web::post().to(admin::discard_problem),
                )
                .route("/admin/conflicts", web::get().to(admin::list_conflicts))
                .route(
                    "/reports/gps-rules/{team}",
                    web::get().to(reports::get_gps_rules),
                )
                .route(
                    "/reports/gps-rules/{team}",
                    web::put().to(reports::put_gps_rules),
                )
                .route("/reports/{report}", web::get().to(reports::report)),
        );
}
