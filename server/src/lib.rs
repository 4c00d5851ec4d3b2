//! `fieldsync-server`: accounts, scopes and the sync endpoints.
//!
//! Map: [`config`] → [`telemetry`] → [`startup::Application`] (actix-web,
//! [`routes`]) → the rules in [`accounts`] and [`sync`] (with [`scope`]) →
//! the [`store::Store`] trait and its SQLite implementation. Handlers never
//! write SQL; the rules never see SQL either.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod scope;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
