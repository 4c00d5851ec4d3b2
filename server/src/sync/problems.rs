//! Problems (ops the server rejected) as reviewers decide them: listed
//! (`GET /v1/admin/problems`), applied (`POST .../{id}/apply`: the op is
//! admitted again under the current rules, with the reviewer's role and
//! scope standing in for the author's; it stays the author's op) or
//! discarded (`POST .../{id}/discard`, with a reason). A decision is
//! recorded once, with who and when, and the row stays: the audit trail.
//! The author's devices ask what became of the problems they hold
//! (`POST /v1/sync/problems`).

use super::ServerClock;
use super::push::{OpError, Pusher, Seen, admit_and_apply};
use crate::accounts::{review_users, usernames};
use crate::auth::Actor;
use crate::error::ApiError;
use crate::scope::scope_filter;
use crate::store::{DecisionRow, ProblemRow, ReadTx, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use sync_protocol::time::format_ts;
use sync_protocol::wire::{
    DecidedOp, MAX_PROBLEM_QUERIES, MAX_REASON_CHARS, ProblemDecision, ProblemDecisionsRequest,
    ProblemDecisionsResponse, ProblemInfo, Verdict,
};
use sync_protocol::{ErrorCode as E, Op, UserId, ValidationError};

/// `GET /v1/admin/problems?team=NAME&all=BOOL`: the problems of the users
/// the actor reviews (see [`review_users`]), undecided ones unless `all`.
pub fn list(
    tx: &mut dyn ReadTx,
    actor: &Actor,
    team: Option<&str>,
    all: bool,
) -> Result<Vec<ProblemInfo>, ApiError> {
    let users = review_users(tx, actor, team, "problems")?;
    let names = usernames(tx)?;
    tx.problems(users.as_deref(), !all)?
        .into_iter()
        .map(|p| info(p, &names))
        .collect()
}

/// `POST /v1/admin/problems/{id}/apply`: admit the problem's op again, as
/// `actor`'s decision, and apply it; refused with the rejection when it
/// still does not pass.
pub fn apply(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> Result<ProblemInfo, ApiError> {
    let p = undecided(tx, actor, id)?;
    let op = op_of(&p)?;
    let author = tx
        .user(p.user_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("problem {id}: no user {}", p.user_id)))?;
    let scope = scope_filter(tx, &actor.user)?;
    let who = Pusher {
        author: &author,
        judge: &actor.user,
        device: p.device_id,
        scope: &scope,
        at: op.hlc,
    };
    let mut server = ServerClock::load(tx)?;
    match admit_and_apply(tx, &who, &mut server, &mut Seen::default(), &op, now) {
        Ok(_) => {}
        Err(OpError::Store(e)) => return Err(e.into()),
        Err(OpError::Reject(e)) => {
            return Err(ValidationError {
                message: format!(
                    "problem {id} still does not pass, now as your decision: {}",
                    e.message
                ),
                ..e
            }
            .into());
        }
    }
    server.save(tx)?;
    decide(tx, actor, p, Verdict::Applied, None, now)
}

/// `POST /v1/admin/problems/{id}/discard`: drop the problem's op, saying
/// why.
pub fn discard(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<ProblemInfo, ApiError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::field(
            E::MalformedRequest,
            "reason",
            format!("say why, in 1 to {MAX_REASON_CHARS} characters: the rep sees it"),
        ));
    }
    let p = undecided(tx, actor, id)?;
    decide(
        tx,
        actor,
        p,
        Verdict::Discarded,
        Some(reason.to_owned()),
        now,
    )
}

/// `POST /v1/sync/problems`: the decided ones among the caller's problems
/// of these ops.
pub fn decisions(
    tx: &mut dyn ReadTx,
    actor: &Actor,
    req: &ProblemDecisionsRequest,
) -> Result<ProblemDecisionsResponse, ApiError> {
    if req.op_ids.len() > MAX_PROBLEM_QUERIES {
        return Err(ApiError::new(
            E::PayloadTooLarge,
            format!(
                "ask about at most {MAX_PROBLEM_QUERIES} ops at a time; this request names {}",
                req.op_ids.len()
            ),
        ));
    }
    let rows = tx.decided_problems(actor.user.id, &req.op_ids)?;
    let mut names = HashMap::new();
    let mut decided = Vec::with_capacity(rows.len());
    for p in rows {
        let Some(d) = &p.decision else { continue };
        if !names.contains_key(&d.by)
            && let Some(u) = tx.user(d.by)?
        {
            names.insert(d.by, u.username);
        }
        decided.push(DecidedOp {
            op_id: p.op_id,
            decision: decision_info(d, &names),
        });
    }
    Ok(ProblemDecisionsResponse { decided })
}

/// Problem `id`, if `actor` reviews its user and it is undecided.
fn undecided(tx: &mut dyn ReadTx, actor: &Actor, id: i64) -> Result<ProblemRow, ApiError> {
    let users = review_users(tx, actor, None, "problems")?;
    let p = tx
        .problem(id)?
        .filter(|p| users.as_ref().is_none_or(|u| u.contains(&p.user_id)))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "there is no problem {id} among those you review (see GET /v1/admin/problems)"
            ))
        })?;
    if let Some(d) = &p.decision {
        let by = tx
            .user(d.by)?
            .map_or_else(|| d.by.to_string(), |u| u.username);
        return Err(ApiError::new(
            E::Conflict,
            format!(
                "problem {id} was already {} by {by} at {}",
                d.verdict.as_str(),
                d.at
            ),
        ));
    }
    Ok(p)
}

fn decide(
    tx: &mut dyn WriteTx,
    actor: &Actor,
    mut p: ProblemRow,
    verdict: Verdict,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Result<ProblemInfo, ApiError> {
    let d = DecisionRow {
        verdict,
        by: actor.user.id,
        at: format_ts(now),
        reason,
    };
    if !tx.decide_problem(p.id, &d)? {
        return Err(ApiError::new(
            E::Conflict,
            format!("problem {} was decided by someone else meanwhile", p.id),
        ));
    }
    p.decision = Some(d);
    let mut names = HashMap::from([(actor.user.id, actor.user.username.clone())]);
    if let Some(u) = tx.user(p.user_id)? {
        names.insert(u.id, u.username);
    }
    info(p, &names)
}

fn op_of(p: &ProblemRow) -> Result<Op, ApiError> {
    serde_json::from_str(&p.op)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored problem op {}: {e}", p.id)))
}

/// The API form of a stored problem.
fn info(p: ProblemRow, names: &HashMap<UserId, String>) -> Result<ProblemInfo, ApiError> {
    let op = op_of(&p)?;
    let code = serde_json::from_value(Value::String(p.code.clone())).unwrap_or(E::Internal);
    Ok(ProblemInfo {
        id: p.id,
        user_id: p.user_id,
        username: names.get(&p.user_id).cloned().unwrap_or_default(),
        op,
        code,
        message: p.message,
        created_at: p.created_at,
        decision: p.decision.as_ref().map(|d| decision_info(d, names)),
    })
}

fn decision_info(d: &DecisionRow, names: &HashMap<UserId, String>) -> ProblemDecision {
    ProblemDecision {
        verdict: d.verdict,
        by: names
            .get(&d.by)
            .cloned()
            .unwrap_or_else(|| d.by.to_string()),
        at: d.at.clone(),
        reason: d.reason.clone(),
    }
}
