//! Conflicts as the API shows them: to the supervisors' and HQ's review
//! (`GET /v1/admin/conflicts`) and to the losers' own devices, which
//! settle them (`POST /v1/sync/conflicts`).

use crate::accounts::{review_users, usernames};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::store::{self, ConflictFilter, ConflictRow, ReadTx, Side, Store};
use std::collections::HashMap;
use std::hash::BuildHasher;
use sync_protocol::ErrorCode;
use sync_protocol::UserId;
use sync_protocol::time::format_ts;
use sync_protocol::wire::{
    ConflictInfo, ConflictSide, ConflictsRequest, ConflictsResponse, MAX_OPEN_CONFLICTS,
    MAX_SETTLEMENTS,
};

/// `GET /v1/admin/conflicts?team=NAME`: the open conflicts in which a user
/// the actor reviews lost or won (see [`review_users`]).
pub fn review(
    tx: &mut dyn ReadTx,
    actor: &Actor,
    team: Option<&str>,
) -> Result<Vec<ConflictInfo>, ApiError> {
    let users = review_users(tx, actor, team, "conflicts")?;
    let filter = users
        .as_deref()
        .map_or(ConflictFilter::All, ConflictFilter::Involving);
    let rows = tx.open_conflicts(filter, MAX_OPEN_CONFLICTS)?;
    let names = usernames(tx)?;
    rows.iter().map(|c| info(c, &names)).collect()
}

/// `POST /v1/sync/conflicts`: settle the conflicts the caller's device
/// names (only those the caller lost), then list the open ones the
/// caller's values lost, with the winners' usernames.
pub fn exchange(
    st: &dyn Store,
    actor: &Actor,
    req: &ConflictsRequest,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ConflictsResponse, ApiError> {
    if req.settle.len() > MAX_SETTLEMENTS {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "settle at most {MAX_SETTLEMENTS} conflicts at a time; this request names {}",
                req.settle.len()
            ),
        ));
    }
    let me = actor.user.id;
    let settled = if req.settle.is_empty() {
        0
    } else {
        let at = format_ts(now);
        store::write(st, |tx| -> Result<u64, ApiError> {
            let mut n = 0;
            for s in &req.settle {
                n += u64::from(tx.settle_conflict(me, s, &at)?);
            }
            Ok(n)
        })?
    };
    let open = store::read(st, |tx| -> Result<Vec<ConflictInfo>, ApiError> {
        let rows = tx.open_conflicts(ConflictFilter::LostBy(me), MAX_OPEN_CONFLICTS)?;
        let mut names = HashMap::new();
        for id in rows
            .iter()
            .flat_map(|c| [c.loser.user, c.winner.user])
            .flatten()
        {
            if !names.contains_key(&id)
                && let Some(u) = tx.user(id)?
            {
                names.insert(id, u.username);
            }
        }
        rows.iter().map(|c| info(c, &names)).collect()
    })?;
    Ok(ConflictsResponse { settled, open })
}

/// The API form of a stored conflict.
pub fn info<S: BuildHasher>(
    c: &ConflictRow,
    names: &HashMap<UserId, String, S>,
) -> Result<ConflictInfo, ApiError> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        ApiError::internal(anyhow::anyhow!("stored conflict {}: {what}: {e}", c.id))
    };
    let value = |text: &str| serde_json::from_str(text).map_err(|e| corrupt("value", &e));
    let clock = |text: &str| text.parse().map_err(|e| corrupt("clock", &e));
    let side = |s: &Side| ConflictSide {
        user_id: s.user,
        username: s.user.and_then(|u| names.get(&u).cloned()),
        device_id: s.device,
    };
    Ok(ConflictInfo {
        id: c.id,
        collection: c.collection.clone(),
        record_id: c.record_id,
        field: c.field.clone(),
        losing_value: value(&c.losing_value)?,
        winning_value: value(&c.winning_value)?,
        losing_hlc: clock(&c.losing_hlc)?,
        winning_hlc: clock(&c.winning_hlc)?,
        loser: side(&c.loser),
        winner: side(&c.winner),
        created_at: c.created_at.clone(),
    })
}
