//! What every request handler shares: the store, the metrics, the password
//! hashing cost and the trusted proxies. Built by [`crate::startup`]; it
//! depends on nothing that handles requests.

use crate::config::HashCost;
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;

/// Shared by every worker (built once, outside the app factory).
pub struct AppState {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Metrics.
    pub metrics: Metrics,
    /// Password hashing cost.
    pub hash_cost: HashCost,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}
