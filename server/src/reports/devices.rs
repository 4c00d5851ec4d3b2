//! Devices and sync health: per device of a rep in view, its last sync,
//! whether that is older than 48 hours, its stored ops, clock drift and
//! the problems (rejected ops) it has left.

use super::data::Audience;
use super::{STALE_AFTER_HOURS, Table, count, text};
use crate::error::ApiError;
use crate::store::ReadTx;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use std::collections::HashMap;
use sync_protocol::DeviceId;
use sync_protocol::time::parse_ts;

/// A device whose clock was more than this far ahead is listed as drifting.
pub const DRIFT_LIMIT_MS: i64 = 60_000;

pub(super) fn build(
    tx: &mut dyn ReadTx,
    audience: &Audience,
    now: DateTime<Utc>,
) -> Result<Vec<Table>, ApiError> {
    let ids: Vec<_> = audience.reps.iter().map(|r| r.id).collect();
    let mut problems: HashMap<DeviceId, usize> = HashMap::new();
    for p in tx.problems(Some(&ids), true)? {
        *problems.entry(p.device_id).or_default() += 1;
    }
    let mut table = Table::new(
        "rows",
        &[
            "rep",
            "team",
            "device",
            "device_id",
            "last_sync",
            "stale",
            "acked_through",
            "clock_drift_ms",
            "clock_drift",
            "problems",
            "revoked",
        ],
    );
    let limit = now - Duration::hours(STALE_AFTER_HOURS);
    let (mut stale_n, mut drift_n, mut problems_n) = (0, 0, 0);
    for rep in &audience.reps {
        for d in tx.devices(Some(rep.id))? {
            let seen = d.last_seen_at.as_deref().and_then(parse_ts);
            let stale = d.revoked_at.is_none() && seen.is_none_or(|s| s < limit);
            let drifting = d.clock_drift_ms.is_some_and(|m| m.abs() > DRIFT_LIMIT_MS);
            let n = problems.get(&d.id).copied().unwrap_or(0);
            stale_n += usize::from(stale);
            drift_n += usize::from(drifting);
            problems_n += n;
            table.rows.push(vec![
                text(rep.username.clone()),
                audience.team_name(rep.team_id).map_or(Value::Null, text),
                text(d.name.clone()),
                text(d.id.to_string()),
                d.last_seen_at.clone().map_or(Value::Null, text),
                Value::Bool(stale),
                Value::from(d.acked_through),
                d.clock_drift_ms.map_or(Value::Null, Value::from),
                Value::Bool(drifting),
                count(n),
                Value::Bool(d.revoked_at.is_some()),
            ]);
        }
    }
    table.totals = Some(vec![
        text("total"),
        Value::Null,
        count(table.rows.len()),
        Value::Null,
        Value::Null,
        count(stale_n),
        Value::Null,
        Value::Null,
        count(drift_n),
        count(problems_n),
        Value::Null,
    ]);
    Ok(vec![table])
}
