//! The limit: the same visits inserted straight into a SQLite file in one
//! transaction with one prepared statement, with the server's settings
//! (WAL, `synchronous=FULL`). No sync system on this disk can beat it.

use crate::workload::VisitRow;
use anyhow::Result;
use rusqlite::{Connection, params};
use std::time::Instant;
use sync_protocol::RecordId;
use sync_protocol::time::format_ts;

/// Insert `rows` into a fresh file; returns records per second.
pub fn insert_rate(rows: &[VisitRow]) -> Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut conn = Connection::open(dir.path().join("limit.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE visits (
            id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, started_at TEXT NOT NULL,
            ended_at TEXT NOT NULL, purpose TEXT NOT NULL, outcome TEXT NOT NULL,
            lat REAL NOT NULL, lon REAL NOT NULL
        ) STRICT",
    )?;
    let customer = RecordId::new_v7(chrono::Utc::now()).to_string();
    let ids: Vec<String> = rows
        .iter()
        .map(|r| RecordId::new_v7(r.at).to_string())
        .collect();
    let start = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO visits (id, customer_id, started_at, ended_at, purpose, outcome, lat, lon)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (r, id) in rows.iter().zip(&ids) {
            stmt.execute(params![
                id,
                customer,
                format_ts(r.at),
                format_ts(r.at + chrono::Duration::minutes(r.minutes)),
                r.purpose,
                r.outcome,
                r.lat,
                r.lon
            ])?;
        }
    }
    tx.commit()?;
    Ok(rows.len() as f64 / start.elapsed().as_secs_f64())
}
