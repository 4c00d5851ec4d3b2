//! Building and running the application. [`Application::build`] binds its
//! own listener, so tests start it on port 0.

use crate::accounts;
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes;
use crate::state::AppState;
use crate::store::Store;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Compress, Next};
use actix_web::{App, HttpServer, ResponseError, web};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;
use sync_protocol::ErrorCode;
use tracing_actix_web::TracingLogger;

/// A bound, not yet running server.
pub struct Application {
    addr: std::net::SocketAddr,
    server: Server,
    /// The password generated for `admin` on first start, if any.
    pub generated_admin_password: Option<String>,
}

impl Application {
    /// Open the store (creating and migrating it), create the first admin on
    /// an empty database, and bind the listener.
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        // The PostgreSQL client blocks on its own runtime, which must not run
        // inside the caller's async runtime: open and bootstrap on a plain thread.
        let (store, generated) = std::thread::scope(|s| {
            s.spawn(|| open_store(&settings))
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("opening the store panicked")))
        })?;
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(AppState {
            store,
            metrics: Metrics::new()?,
            hash_cost: settings.hash_cost,
            trusted_proxies: settings.trusted_proxies.clone(),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(method_not_allowed_as_json))
                .wrap(actix_web::middleware::from_fn(record_metrics))
                .wrap(Compress::default())
                .wrap(TracingLogger::default())
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    ApiError::malformed(format!("bad query string: {e}")).into()
                }))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|e, _| ApiError::malformed(format!("bad path: {e}")).into()),
                )
                .configure(routes::configure)
                .configure(crate::dashboard::configure)
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(ApiError::not_found(
                        "no such endpoint; see GET /v1/openapi.json",
                    ))
                }))
        })
        .listen(listener)?;
        if let Some(w) = settings.workers {
            server = server.workers(w);
        }
        Ok(Self {
            addr,
            server: server.run(),
            generated_admin_password: generated,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn address(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped (SIGTERM/Ctrl-C drain in-flight requests, then return).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The store the settings choose, migrated, with the first admin created.
fn open_store(settings: &Settings) -> anyhow::Result<(Arc<dyn Store>, Option<String>)> {
    let store: Arc<dyn Store> = if let Some(url) = &settings.database {
        Arc::new(PostgresStore::open(url)?)
    } else {
        create_data_dir(&settings.data_dir)?;
        let store = SqliteStore::open(&settings.db_path())?;
        restrict_to_owner(&settings.db_path(), 0o600);
        Arc::new(store)
    };
    let generated = accounts::bootstrap(
        store.as_ref(),
        settings.admin_password.as_deref(),
        settings.hash_cost,
        chrono::Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("cannot create the first admin account: {e}"))?;
    let credited = crate::sync::credits::backfill(store.as_ref(), chrono::Utc::now())
        .map_err(|e| anyhow::anyhow!("cannot credit earlier work on reassigned customers: {e}"))?;
    if credited > 0 {
        tracing::info!(
            records = credited,
            "credited earlier visits and sales of reassigned customers to who did them"
        );
    }
    Ok((store, generated))
}

fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    restrict_to_owner(dir, 0o700);
    Ok(())
}

/// Data directory `0700`, database `0600` (SQLite gives its -wal/-shm files the database's mode).
fn restrict_to_owner(path: &std::path::Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict permissions");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let start = Instant::now();
    let res = next.call(req).await?;
    if let Some(state) = state {
        state
            .metrics
            .observe(&route, res.status().as_u16(), start.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// actix answers a wrong method with an empty 405: give it the JSON error body.
async fn method_not_allowed_as_json(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    if res.status() != actix_web::http::StatusCode::METHOD_NOT_ALLOWED {
        return Ok(res.map_into_boxed_body());
    }
    let (req, _) = res.into_parts();
    let err = ApiError::Client {
        status: actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        code: ErrorCode::MalformedRequest,
        message: format!(
            "{} is not allowed on {}; see GET /v1/openapi.json",
            req.method(),
            req.path()
        ),
        field: None,
    };
    Ok(ServiceResponse::new(req, err.error_response()))
}
