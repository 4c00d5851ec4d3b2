//! `fieldsync problems list|show|retry|discard`.

use super::Ctx;
use crate::cli::ProblemsCmd;
use crate::error::{fail, fail_hint};
use crate::output::{clip, local_time};
use crate::store::{ProblemRow, Store};
use anyhow::Result;
use rusqlite::params;

fn get(store: &Store, id: i64) -> Result<ProblemRow> {
    match store.problem(id)? {
        Some(p) => Ok(p),
        None => fail_hint(
            format!("there is no problem #{id}"),
            "see them with: fieldsync problems list",
        ),
    }
}

fn open(store: &Store, id: i64) -> Result<ProblemRow> {
    let p = get(store, id)?;
    if p.resolution.is_some() {
        return fail(format!("problem #{id} was already {}", done(&p)));
    }
    Ok(p)
}

/// What became of a problem, in words (empty while open).
fn done(p: &ProblemRow) -> String {
    let Some(r) = &p.resolution else {
        return String::new();
    };
    match (&p.decided_by, &p.reason) {
        (Some(by), Some(why)) => format!("{r} by {by}: {why}"),
        (Some(by), None) => format!("{r} by {by}"),
        _ => r.clone(),
    }
}

/// Run a problems command.
pub fn run(ctx: &Ctx, cmd: ProblemsCmd) -> Result<()> {
    match cmd {
        ProblemsCmd::List { all } => {
            let store = ctx.read_store()?;
            let rows = store.problems(all)?;
            if ctx.printer.json {
                return ctx.printer.json(&rows);
            }
            if rows.is_empty() {
                ctx.printer.say("No problems.");
                return Ok(());
            }
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|p| {
                    vec![
                        p.id.to_string(),
                        local_time(&p.created_at),
                        format!("{} {}", p.op.kind.as_str(), p.collection),
                        p.code.clone(),
                        p.field.clone().unwrap_or_default(),
                        clip(&p.message, 60),
                        clip(&done(p), 40),
                    ]
                })
                .collect();
            ctx.printer.table(
                &["#", "REPORTED", "CHANGE", "CODE", "FIELD", "WHY", "DONE"],
                &table,
            )?;
            ctx.printer
                .say("Send again: fieldsync problems retry N   Drop: fieldsync problems discard N");
            Ok(())
        }
        ProblemsCmd::Show { id } => {
            let store = ctx.read_store()?;
            let p = get(&store, id)?;
            if ctx.printer.json {
                return ctx.printer.json(&p);
            }
            ctx.printer.pairs(&[
                ("problem", format!("#{}", p.id)),
                (
                    "change",
                    format!("{} {} {}", p.op.kind.as_str(), p.collection, p.record_id),
                ),
                ("code", p.code.clone()),
                ("why", p.message.clone()),
                ("field", p.field.clone().unwrap_or_default()),
                ("reported", local_time(&p.created_at)),
                (
                    "done",
                    if p.resolution.is_some() {
                        done(&p)
                    } else {
                        "no".into()
                    },
                ),
            ])?;
            ctx.printer.line(&serde_json::to_string_pretty(&p.op)?)
        }
        ProblemsCmd::Retry { id } => {
            let (mut store, _) = ctx.store()?;
            let p = open(&store, id)?;
            let draft = store.retry_draft(&p)?;
            let ops = store.write_with(vec![draft], |conn| {
                conn.execute(
                    "UPDATE problems SET resolved_at = ?2, resolution = 'retried' WHERE id = ?1",
                    params![id, sync_protocol::time::format_ts(chrono::Utc::now())],
                )?;
                Ok(())
            })?;
            if ctx.printer.json {
                return ctx.printer.json(&get(&store, id)?);
            }
            let seq = ops.first().map_or(0, |o| o.device_seq);
            ctx.printer.say(&format!(
                "Problem #{id} will be sent again as change #{seq} at the next sync."
            ));
            Ok(())
        }
        ProblemsCmd::Discard { id } => {
            let (mut store, _) = ctx.store()?;
            let p = open(&store, id)?;
            store.resolve_problem(id, "discarded", &p.op.record_id)?;
            if ctx.printer.json {
                return ctx.printer.json(&get(&store, id)?);
            }
            ctx.printer.say(&format!("Discarded problem #{id}."));
            Ok(())
        }
    }
}
