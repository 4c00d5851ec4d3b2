//! API tests: the real server on 127.0.0.1 port 0 with a real SQLite store
//! in a temporary directory, driven over HTTP.

#[path = "api/helpers.rs"]
mod helpers;

#[path = "api/auth.rs"]
mod auth;
#[path = "api/bad_input.rs"]
mod bad_input;
#[path = "api/conflicts.rs"]
mod conflicts;
#[path = "api/crash.rs"]
mod crash;
#[path = "api/deactivation.rs"]
mod deactivation;
#[path = "api/forgery.rs"]
mod forgery;
#[path = "api/matrix.rs"]
mod matrix;
#[path = "api/ops.rs"]
mod ops;
#[path = "api/problems.rs"]
mod problems;
#[path = "api/reassign.rs"]
mod reassign;
#[path = "api/reports.rs"]
mod reports;
#[path = "api/restore.rs"]
mod restore;
#[path = "api/sync.rs"]
mod sync;
