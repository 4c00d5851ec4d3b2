//! Conflicts as the API shows them: the supervisors' and HQ's review
//! (`GET /v1/admin/conflicts`) and, later, the losers' own devices.

use crate::accounts::{review_users, usernames};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::store::{ConflictFilter, ConflictRow, ReadTx, Side};
use std::collections::HashMap;
use std::hash::BuildHasher;
use sync_protocol::UserId;
use sync_protocol::wire::{ConflictInfo, ConflictSide};

/// Most conflicts one answer lists (newest first).
pub const MAX_LISTED: u32 = 1_000;

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
    let rows = tx.open_conflicts(filter, MAX_LISTED)?;
    let names = usernames(tx)?;
    rows.iter().map(|c| info(c, &names)).collect()
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
