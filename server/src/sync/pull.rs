//! `POST /v1/sync/pull`: the changes in the device's scope after its cursor,
//! in commit order, up to the head read at the start (one snapshot).

use super::{ServerClock, decode_state};
use crate::error::ApiError;
use crate::scope::scope_filter;
use crate::store::{ChangeRow, ReadTx, UserRow};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use sync_protocol::integrity::Tally;
use sync_protocol::schema;
use sync_protocol::wire::{
    Change, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, PullRequest, PullResponse, ScopeSummary,
};

/// Answer one pull page inside a read transaction.
pub fn pull(
    tx: &mut dyn ReadTx,
    user: &UserRow,
    req: &PullRequest,
    now: DateTime<Utc>,
) -> Result<PullResponse, ApiError> {
    let limit = req
        .limit
        .unwrap_or(DEFAULT_PULL_LIMIT)
        .clamp(1, MAX_PULL_LIMIT);
    let head = tx.head_seq()?;
    let scope = scope_filter(tx, user)?;
    let mut rows = tx.changes(&scope, req.cursor, head, limit + 1)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let cursor = if more {
        rows.last().map_or(req.cursor, ChangeRow::seq)
    } else {
        head
    };
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.push(match row {
            ChangeRow::Upsert { seq, state } => Change::Upsert {
                seq,
                record: decode_state(&state)?,
            },
            ChangeRow::Evict { seq, customer_id } => Change::Evict { seq, customer_id },
        });
    }
    let scope_summary = if req.checksums && !more {
        let mut tallies: BTreeMap<String, Tally> = schema::ALL
            .iter()
            .map(|c| (c.name.to_owned(), Tally::default()))
            .collect();
        tx.scope_records(&scope, &mut |collection, state| {
            tallies
                .entry(collection.to_owned())
                .or_default()
                .add(state.as_bytes());
        })?;
        let order = |name: &str| {
            schema::ALL
                .iter()
                .position(|c| c.name == name)
                .unwrap_or(usize::MAX)
        };
        let mut out: Vec<ScopeSummary> = tallies
            .into_iter()
            .map(|(collection, t)| ScopeSummary {
                collection,
                count: t.count,
                checksum: t.checksum_hex(),
            })
            .collect();
        out.sort_by_key(|s| order(&s.collection));
        Some(out)
    } else {
        None
    };
    let server_clock = ServerClock::load(tx)?.now(now);
    Ok(PullResponse {
        changes,
        cursor,
        checkpoint: head,
        more,
        scope: scope_summary,
        server_clock,
    })
}
