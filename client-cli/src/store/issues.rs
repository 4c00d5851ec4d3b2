//! Conflicts (values of ours that lost to a write that had not seen them)
//! and problems (ops the server rejected), as sync reported them.

use super::{Draft, Store, view};
use anyhow::{Context, Result};
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;
use sync_protocol::merge::FieldConflict;
use sync_protocol::time::format_ts;
use sync_protocol::wire::{ConflictInfo, DecidedOp, Keep, Settlement};
use sync_protocol::{Op, OpId, OpKind, RecordId};

/// One stored conflict.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictRow {
    /// Local number.
    pub id: i64,
    /// The op that lost, when this laptop learnt of the conflict from its
    /// outcome (empty when the server's conflict list told it).
    pub op_id: String,
    /// Collection.
    pub collection: String,
    /// Record.
    pub record_id: String,
    /// Field.
    pub field: String,
    /// Our value (lost).
    pub mine: Value,
    /// The kept value.
    pub theirs: Value,
    /// Clock of our write.
    pub mine_hlc: String,
    /// Clock of the winner.
    pub theirs_hlc: String,
    /// Who wrote the kept value (username), when the server said.
    pub winner: Option<String>,
    /// When sync reported it.
    pub created_at: String,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// `mine` or `theirs`.
    pub resolution: Option<String>,
}

/// One stored problem.
#[derive(Clone, Debug, Serialize)]
pub struct ProblemRow {
    /// Local number.
    pub id: i64,
    /// Collection.
    pub collection: String,
    /// Record.
    pub record_id: String,
    /// The op as sent.
    pub op: Op,
    /// Stable code.
    pub code: String,
    /// Why.
    pub message: String,
    /// Field concerned.
    pub field: Option<String>,
    /// When sync reported it.
    pub created_at: String,
    /// When it was retried, discarded, or decided on the server.
    pub resolved_at: Option<String>,
    /// `retried` or `discarded` here; `applied` or `discarded` by a
    /// reviewer on the server.
    pub resolution: Option<String>,
    /// The reviewer who decided it on the server.
    pub decided_by: Option<String>,
    /// Why the reviewer discarded it.
    pub reason: Option<String>,
}

/// Store a conflict our op lost (from its push outcome); `false` when this
/// laptop already holds it.
pub(crate) fn insert_conflict(conn: &Connection, op: &Op, c: &FieldConflict) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO conflicts (op_id, collection, record_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
         WHERE NOT EXISTS (SELECT 1 FROM conflicts WHERE record_id = ?3 AND field = ?4 AND losing_hlc = ?7)",
        params![
            op.op_id.to_string(),
            op.collection,
            op.record_id.to_string(),
            c.field,
            c.losing_value.to_string(),
            c.winning_value.to_string(),
            c.losing_hlc.to_string(),
            c.winning_hlc.to_string(),
            format_ts(Utc::now())
        ],
    )?;
    Ok(n > 0)
}

/// What one exchange of conflicts with the server changed here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FeedApplied {
    /// Conflicts new to this laptop.
    pub new: u64,
    /// Open ones here that the server no longer lists (settled on another
    /// of the user's devices).
    pub settled_elsewhere: u64,
}

pub(crate) fn insert_problem(
    conn: &Connection,
    op: &Op,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Result<()> {
    conn.execute(
        "INSERT INTO problems (op_id, collection, record_id, op, code, message, field, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![op.op_id.to_string(), op.collection, op.record_id.to_string(), serde_json::to_string(op)?, code, message, field, format_ts(Utc::now())],
    )?;
    Ok(())
}

const CONFLICT_COLS: &str = "id, op_id, collection, record_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at, resolved_at, resolution, winner";
const PROBLEM_COLS: &str = "id, collection, record_id, op, code, message, field, created_at, resolved_at, resolution, \
     decided_by, reason";

fn conflict_row(r: &Row<'_>) -> rusqlite::Result<ConflictRow> {
    let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::String(s));
    Ok(ConflictRow {
        id: r.get(0)?,
        op_id: r.get(1)?,
        collection: r.get(2)?,
        record_id: r.get(3)?,
        field: r.get(4)?,
        mine: parse(r.get(5)?),
        theirs: parse(r.get(6)?),
        mine_hlc: r.get(7)?,
        theirs_hlc: r.get(8)?,
        created_at: r.get(9)?,
        resolved_at: r.get(10)?,
        resolution: r.get(11)?,
        winner: r.get(12)?,
    })
}

fn problem_row(r: &Row<'_>) -> rusqlite::Result<(ProblemRaw, String)> {
    Ok((
        ProblemRaw {
            id: r.get(0)?,
            collection: r.get(1)?,
            record_id: r.get(2)?,
            code: r.get(4)?,
            message: r.get(5)?,
            field: r.get(6)?,
            created_at: r.get(7)?,
            resolved_at: r.get(8)?,
            resolution: r.get(9)?,
            decided_by: r.get(10)?,
            reason: r.get(11)?,
        },
        r.get(3)?,
    ))
}

struct ProblemRaw {
    id: i64,
    collection: String,
    record_id: String,
    code: String,
    message: String,
    field: Option<String>,
    created_at: String,
    resolved_at: Option<String>,
    resolution: Option<String>,
    decided_by: Option<String>,
    reason: Option<String>,
}

fn build_problem((p, op): (ProblemRaw, String)) -> Result<ProblemRow> {
    let op: Op =
        serde_json::from_str(&op).with_context(|| format!("problem {} is damaged", p.id))?;
    Ok(ProblemRow {
        id: p.id,
        collection: p.collection,
        record_id: p.record_id,
        op,
        code: p.code,
        message: p.message,
        field: p.field,
        created_at: p.created_at,
        resolved_at: p.resolved_at,
        resolution: p.resolution,
        decided_by: p.decided_by,
        reason: p.reason,
    })
}

impl Store {
    /// Conflicts, unresolved only unless `all`.
    pub fn conflicts(&self, all: bool) -> Result<Vec<ConflictRow>> {
        let filter = if all { "" } else { "WHERE resolved_at IS NULL" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {CONFLICT_COLS} FROM conflicts {filter} ORDER BY id"
        ))?;
        Ok(stmt
            .query_map([], conflict_row)?
            .collect::<Result<_, _>>()?)
    }

    /// One conflict.
    pub fn conflict(&self, id: i64) -> Result<Option<ConflictRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {CONFLICT_COLS} FROM conflicts WHERE id = ?1"),
                [id],
                conflict_row,
            )
            .optional()?)
    }

    /// Mark a conflict resolved.
    pub fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE conflicts SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
            params![id, format_ts(Utc::now()), resolution],
        )?;
        Ok(())
    }

    /// Problems, unresolved only unless `all`.
    pub fn problems(&self, all: bool) -> Result<Vec<ProblemRow>> {
        let filter = if all { "" } else { "WHERE resolved_at IS NULL" };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {PROBLEM_COLS} FROM problems {filter} ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([], problem_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(build_problem).collect()
    }

    /// One problem.
    pub fn problem(&self, id: i64) -> Result<Option<ProblemRow>> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {PROBLEM_COLS} FROM problems WHERE id = ?1"),
                [id],
                problem_row,
            )
            .optional()?;
        row.map(build_problem).transpose()
    }

    /// The change that sends problem `p`'s op again: the same fields, a
    /// transition from the state this device sees now.
    pub fn retry_draft(&self, p: &ProblemRow) -> Result<Draft> {
        let mut draft = Draft {
            collection: p.op.collection.clone(),
            record_id: p.op.record_id,
            kind: p.op.kind,
            fields: p.op.fields.clone(),
            transition: p.op.transition.clone(),
        };
        if let (OpKind::Transition, Some(t)) = (draft.kind, draft.transition.as_mut())
            && let Some(rec) = self.get(&p.op.record_id)?
            && let Some(cur) = rec.str(&t.field)
        {
            t.from = cur.to_owned();
        }
        Ok(draft)
    }

    /// Open problems that are only waiting for another change of this
    /// laptop: refused `not_found` while a record they refer to (or their
    /// own record) still has a change in the outbox, as when that change
    /// was held up behind a divergence (see `fieldsync sync`).
    pub fn problems_waiting_on_the_outbox(&self) -> Result<Vec<ProblemRow>> {
        let mut pending = self
            .conn
            .prepare_cached("SELECT 1 FROM outbox WHERE record_id = ?1 LIMIT 1")?;
        let mut out = Vec::new();
        for p in self.problems(false)? {
            if p.code != "not_found" {
                continue;
            }
            let mentioned = std::iter::once(p.op.record_id.to_string()).chain(
                p.op.fields
                    .values()
                    .filter_map(Value::as_str)
                    .filter_map(|s| uuid::Uuid::try_parse(s).ok())
                    .map(|u| u.to_string()),
            );
            let mut waits = false;
            for id in mentioned {
                if pending.exists([&id])? {
                    waits = true;
                    break;
                }
            }
            if waits {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The op ids of open problems (at most `limit`, oldest first): the
    /// ones to ask the server about.
    pub fn open_problem_ops(&self, limit: usize) -> Result<Vec<OpId>> {
        let mut stmt = self
            .conn
            .prepare("SELECT op_id FROM problems WHERE resolved_at IS NULL ORDER BY id LIMIT ?1")?;
        let ids = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| anyhow::anyhow!("a problem's op id {s:?} is damaged"))
            })
            .collect()
    }

    /// Take reviewers' decisions on open problems of this laptop: each
    /// becomes resolved as the reviewer decided, and its record is shown
    /// again as it now stands. Returns how many were open here.
    pub fn apply_problem_decisions(&mut self, decided: &[DecidedOp]) -> Result<u64> {
        let tx = self.write_tx()?;
        let mut n = 0;
        for d in decided {
            let op_id = d.op_id.to_string();
            let record: Option<String> = tx
                .query_row(
                    "SELECT record_id FROM problems WHERE op_id = ?1 AND resolved_at IS NULL",
                    [&op_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(record) = record else { continue };
            tx.execute(
                "UPDATE problems SET resolved_at = ?2, resolution = ?3, decided_by = ?4, reason = ?5 WHERE op_id = ?1 AND resolved_at IS NULL",
                params![
                    op_id,
                    d.decision.at,
                    d.decision.verdict.as_str(),
                    d.decision.by,
                    d.decision.reason
                ],
            )?;
            view::refresh(&tx, &record)?;
            n += 1;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Mark a problem resolved and refresh its record in the view.
    pub fn resolve_problem(&mut self, id: i64, resolution: &str, record: &RecordId) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE problems SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
            params![id, format_ts(Utc::now()), resolution],
        )?;
        view::refresh(&tx, &record.to_string())?;
        tx.commit()?;
        Ok(())
    }

    /// Conflicts settled here that the server has not been told of yet
    /// (at most `limit`, oldest first).
    pub fn unsent_settlements(&self, limit: usize) -> Result<Vec<Settlement>> {
        let mut stmt = self.conn.prepare(
            "SELECT record_id, field, losing_hlc, resolution FROM conflicts
             WHERE resolved_at IS NOT NULL AND settle_sent_at IS NULL AND resolution IN ('mine', 'theirs')
             ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (record, field, losing, resolution) = row?;
            let (Ok(record_id), Ok(losing_hlc)) = (record.parse(), losing.parse()) else {
                continue; // not a conflict the server can name
            };
            let keep = if resolution == "mine" {
                Keep::Mine
            } else {
                Keep::Theirs
            };
            out.push(Settlement {
                record_id,
                field,
                losing_hlc,
                keep,
            });
        }
        Ok(out)
    }

    /// Take the server's answer to an exchange, in one transaction: the
    /// settlements `sent` are delivered; every listed open conflict is
    /// held here (new ones added, the winner's name filled in); and, when
    /// the list is `complete`, an open conflict here that the server no
    /// longer lists was settled on another of the user's devices.
    pub fn apply_conflict_feed(
        &mut self,
        sent: &[Settlement],
        open: &[ConflictInfo],
        complete: bool,
    ) -> Result<FeedApplied> {
        let now = format_ts(Utc::now());
        let tx = self.write_tx()?;
        let mut out = FeedApplied::default();
        for s in sent {
            tx.execute(
                "UPDATE conflicts SET settle_sent_at = ?4 WHERE record_id = ?1 AND field = ?2 AND losing_hlc = ?3 AND resolved_at IS NOT NULL",
                params![s.record_id.to_string(), s.field, s.losing_hlc.to_string(), now],
            )?;
        }
        let mut listed = std::collections::HashSet::new();
        for c in open {
            let key = (
                c.record_id.to_string(),
                c.field.clone(),
                c.losing_hlc.to_string(),
            );
            let winner = c.winner.username.clone();
            let held = tx.execute(
                "UPDATE conflicts SET winner = coalesce(?4, winner) WHERE record_id = ?1 AND field = ?2 AND losing_hlc = ?3",
                params![key.0, key.1, key.2, winner],
            )?;
            if held == 0 {
                tx.execute(
                    "INSERT INTO conflicts (op_id, collection, record_id, field, losing_value, winning_value, losing_hlc, winning_hlc, created_at, winner)
                     VALUES ('', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        c.collection,
                        key.0,
                        key.1,
                        c.losing_value.to_string(),
                        c.winning_value.to_string(),
                        key.2,
                        c.winning_hlc.to_string(),
                        now,
                        winner
                    ],
                )?;
                out.new += 1;
            }
            listed.insert(key);
        }
        if complete {
            let mut stmt = tx.prepare(
                "SELECT id, record_id, field, losing_hlc FROM conflicts WHERE resolved_at IS NULL",
            )?;
            let open_here: Vec<(i64, (String, String, String))> = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
                })?
                .collect::<Result<_, _>>()?;
            let gone: Vec<i64> = open_here
                .into_iter()
                .filter(|(_, key)| !listed.contains(key))
                .map(|(id, _)| id)
                .collect();
            drop(stmt);
            for id in gone {
                tx.execute(
                    "UPDATE conflicts SET resolved_at = ?2, resolution = 'elsewhere', settle_sent_at = ?2 WHERE id = ?1",
                    params![id, now],
                )?;
                out.settled_elsewhere += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Unresolved conflict and problem counts.
    pub fn issue_counts(&self) -> Result<(u64, u64)> {
        let c: i64 = self.conn.query_row(
            "SELECT count(*) FROM conflicts WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        let p: i64 = self.conn.query_row(
            "SELECT count(*) FROM problems WHERE resolved_at IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok((c as u64, p as u64))
    }
}
