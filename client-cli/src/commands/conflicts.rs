//! `fieldsync conflicts list|show|resolve`.

use super::Ctx;
use crate::cli::{ConflictsCmd, Keep};
use crate::error::{fail, fail_hint};
use crate::output::{clip, local_time};
use crate::store::{ConflictRow, Draft, Store};
use anyhow::Result;
use rusqlite::params;
use sync_protocol::schema::{self, Policy};
use sync_protocol::{Fields, RecordId};

fn get(store: &Store, id: i64) -> Result<ConflictRow> {
    match store.conflict(id)? {
        Some(c) => Ok(c),
        None => fail_hint(
            format!("there is no conflict #{id}"),
            "see them with: fieldsync conflicts list",
        ),
    }
}

fn label(store: &Store, c: &ConflictRow) -> String {
    let Ok(id) = c.record_id.parse::<RecordId>() else {
        return c.record_id.clone();
    };
    let rec = store.get(&id).ok().flatten();
    let name = rec.as_ref().and_then(|r| {
        r.str("name")
            .or_else(|| r.str("product"))
            .or_else(|| r.str("text"))
            .map(str::to_owned)
    });
    let short = store
        .shortener(&c.collection)
        .map_or_else(|_| c.record_id.clone(), |s| s.get(&id));
    match name {
        Some(n) => format!("{} {short} ({})", c.collection, clip(&n, 30)),
        None => format!("{} {short}", c.collection),
    }
}

/// How a resolution reads.
fn resolution(r: &str) -> String {
    match r {
        "mine" => "kept yours".into(),
        "theirs" => "kept theirs".into(),
        "elsewhere" => "on another device".into(),
        other => other.to_owned(),
    }
}

/// Run a conflicts command.
pub fn run(ctx: &Ctx, cmd: ConflictsCmd) -> Result<()> {
    match cmd {
        ConflictsCmd::List { all } => {
            let store = ctx.read_store()?;
            let rows = store.conflicts(all)?;
            if ctx.printer.json {
                return ctx.printer.json(&rows);
            }
            if rows.is_empty() {
                ctx.printer.say("No conflicts.");
                return Ok(());
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|c| {
                    vec![
                        c.id.to_string(),
                        label(&store, c),
                        c.field.clone(),
                        clip(&c.mine.to_string(), 30),
                        clip(&c.theirs.to_string(), 30),
                        c.winner.clone().unwrap_or_default(),
                        c.resolution.as_deref().map(resolution).unwrap_or_default(),
                    ]
                })
                .collect();
            ctx.printer.table(
                &[
                    "#",
                    "RECORD",
                    "FIELD",
                    "YOURS (LOST)",
                    "KEPT",
                    "BY",
                    "RESOLVED",
                ],
                &table,
            )?;
            ctx.printer
                .say("Keep one side: fieldsync conflicts resolve N --keep mine|theirs");
            Ok(())
        }
        ConflictsCmd::Show { id } => {
            let store = ctx.read_store()?;
            let c = get(&store, id)?;
            if ctx.printer.json {
                return ctx.printer.json(&c);
            }
            ctx.printer.pairs(&[
                ("conflict", format!("#{}", c.id)),
                ("record", label(&store, &c)),
                ("field", c.field.clone()),
                ("yours (lost)", c.mine.to_string()),
                ("kept", c.theirs.to_string()),
                (
                    "kept value by",
                    c.winner.clone().unwrap_or_else(|| "-".into()),
                ),
                ("your clock", c.mine_hlc.clone()),
                ("winner's clock", c.theirs_hlc.clone()),
                ("reported", local_time(&c.created_at)),
                (
                    "resolved",
                    c.resolution
                        .as_deref()
                        .map_or_else(|| "no".into(), resolution),
                ),
            ])
        }
        ConflictsCmd::Resolve { id, keep } => {
            let (mut store, _) = ctx.store()?;
            let c = get(&store, id)?;
            if c.resolved_at.is_some() {
                return fail(format!(
                    "conflict #{id} is already resolved ({})",
                    c.resolution.as_deref().map(resolution).unwrap_or_default()
                ));
            }
            let mark = |conn: &rusqlite::Connection| -> Result<()> {
                conn.execute(
                    "UPDATE conflicts SET resolved_at = ?2, resolution = ?3 WHERE id = ?1",
                    params![
                        id,
                        sync_protocol::time::format_ts(chrono::Utc::now()),
                        if keep == Keep::Mine { "mine" } else { "theirs" }
                    ],
                )?;
                Ok(())
            };
            if keep == Keep::Theirs {
                store.resolve_conflict(id, "theirs")?;
            } else {
                let policy = schema::collection(&c.collection)
                    .and_then(|coll| coll.field(&c.field))
                    .map(|f| f.policy);
                if !matches!(policy, Some(Policy::Lww)) {
                    return fail_hint(
                        format!(
                            "{} keeps the first value written, so yours cannot replace it",
                            c.field
                        ),
                        format!("accept it: fieldsync conflicts resolve {id} --keep theirs"),
                    );
                }
                let record: RecordId = c.record_id.parse()?;
                if store.get(&record)?.is_none() {
                    return fail_hint(
                        "that record is no longer on this device",
                        format!("fieldsync conflicts resolve {id} --keep theirs"),
                    );
                }
                let mut f = Fields::new();
                f.insert(c.field.clone(), c.mine.clone());
                store.write_with(vec![Draft::patch(&c.collection, record, f)], mark)?;
            }
            let row = get(&store, id)?;
            if ctx.printer.json {
                return ctx.printer.json(&row);
            }
            ctx.printer.say(&match keep {
                Keep::Mine => format!("Kept your {}; it syncs as a new change.", c.field),
                Keep::Theirs => format!("Kept the other {}.", c.field),
            });
            Ok(())
        }
    }
}
