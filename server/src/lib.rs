//! `fieldsync-server`: accounts, scopes and the sync endpoints.
//!
//! Map: [`config`] → [`telemetry`] → [`startup::Application`] (actix-web,
//! [`routes`]) → the rules in [`accounts`] and [`sync`] (with [`scope`]) →
//! the [`store::Store`] trait and its SQLite and PostgreSQL
//! implementations. Handlers never write SQL; the rules never see SQL
//! either.

pub mod accounts;
pub mod auth;
pub mod body;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod reports;
pub mod routes;
pub mod scope;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod throttle;
