//! `fieldsync feedback ...`

use super::{Ctx, cell, customer_name, mark, record_json};
use crate::cli::{FeedbackCmd, FeedbackKind};
use crate::output::{clip, local_time};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::{Map, Value, json};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId, StateChange};

/// Whether a survey's scores call for a follow-up complaint.
pub fn needs_follow_up(csat: Option<i64>, nps: Option<i64>) -> bool {
    csat.is_some_and(|c| c <= 2) || nps.is_some_and(|n| n <= 6)
}

/// The record as JSON with its customer's name.
pub fn feedback_json(store: &Store, f: &Rec) -> Result<Map<String, Value>> {
    let mut m = record_json(f);
    m.insert("customer_name".into(), json!(customer_name(store, f)?));
    Ok(m)
}

fn score(f: &Rec) -> String {
    let mut parts = Vec::new();
    if let Some(c) = f.get("csat").and_then(Value::as_i64) {
        parts.push(format!("CSAT {c}"));
    }
    if let Some(n) = f.get("nps").and_then(Value::as_i64) {
        parts.push(format!("NPS {n}"));
    }
    parts.join(" ")
}

/// Print feedback as a table.
pub fn table(ctx: &Ctx, store: &Store, items: &[Rec], with_customer: bool) -> Result<()> {
    let short = store.shortener_for("feedback", items.iter().map(|r| r.id))?;
    let mut rows = Vec::new();
    for f in items {
        let mut row = vec![
            short.get(&f.id),
            format!(
                "{}{}",
                f.str("opened_at").map(local_time).unwrap_or_default(),
                mark(f)
            ),
        ];
        if with_customer {
            row.push(customer_name(store, f)?);
        }
        let kind = if f.get("follow_up_of").is_some() {
            format!("{} (follow-up)", cell(f, "kind"))
        } else {
            cell(f, "kind")
        };
        row.extend([
            kind,
            cell(f, "status"),
            score(f),
            clip(&cell(f, "text"), 40),
        ]);
        rows.push(row);
    }
    let header: &[&str] = if with_customer {
        &[
            "ID", "OPENED", "CUSTOMER", "KIND", "STATUS", "SCORE", "TEXT",
        ]
    } else {
        &["ID", "OPENED", "KIND", "STATUS", "SCORE", "TEXT"]
    };
    ctx.printer.table(header, &rows)
}

/// Run a feedback command.
pub fn run(ctx: &Ctx, cmd: FeedbackCmd) -> Result<()> {
    match cmd {
        FeedbackCmd::Add {
            customer,
            kind,
            csat,
            nps,
            category,
            text,
            visit,
        } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            let visit = visit
                .map(|v| store.resolve_record("visits", "visit", &v))
                .transpose()?;
            if let Some(v) = &visit
                && v.customer_id != Some(c.id)
            {
                return crate::error::fail(format!(
                    "that visit was at {}, not {}",
                    customer_name(&store, v)?,
                    cell(&c, "name")
                ));
            }
            let now = Utc::now();
            let id = RecordId::new_v7(now);
            let mut f = Fields::new();
            f.insert("customer_id".into(), json!(c.id));
            f.insert("kind".into(), json!(kind.as_str()));
            f.insert("text".into(), json!(text));
            f.insert("opened_at".into(), json!(format_ts(now)));
            if let Some(v) = csat {
                f.insert("csat".into(), json!(v));
            }
            if let Some(v) = nps {
                f.insert("nps".into(), json!(v));
            }
            if let Some(v) = &category {
                f.insert("category".into(), json!(v));
            }
            if let Some(v) = &visit {
                f.insert("visit_id".into(), json!(v.id));
            }
            let mut drafts = vec![Draft::create("feedback", id, f)];
            let follow_up = (kind == FeedbackKind::Survey && needs_follow_up(csat, nps))
                .then(|| RecordId::new_v7(now));
            if let Some(fid) = follow_up {
                let mut g = Fields::new();
                g.insert("customer_id".into(), json!(c.id));
                g.insert("kind".into(), json!("complaint"));
                g.insert(
                    "text".into(),
                    json!(format!(
                        "Follow-up of a low survey score ({}): {text}",
                        score_of(csat, nps)
                    )),
                );
                g.insert("opened_at".into(), json!(format_ts(now)));
                g.insert("follow_up_of".into(), json!(id));
                if let Some(v) = &category {
                    g.insert("category".into(), json!(v));
                }
                if let Some(v) = &visit {
                    g.insert("visit_id".into(), json!(v.id));
                }
                drafts.push(Draft::create("feedback", fid, g));
            }
            store.write(drafts)?;
            let rec = store
                .get(&id)?
                .context("the feedback is missing from the local view")?;
            if ctx.printer.json {
                let mut m = feedback_json(&store, &rec)?;
                m.insert("follow_up_id".into(), json!(follow_up));
                return ctx.printer.json(&m);
            }
            let short = store.shortener("feedback")?;
            ctx.printer.say(&format!(
                "Recorded {} {} for {}.",
                kind.as_str(),
                short.get(&id),
                cell(&c, "name")
            ));
            if let Some(fid) = follow_up {
                ctx.printer.say(&format!(
                    "The low score opened follow-up complaint {}.",
                    short.get(&fid)
                ));
            }
            Ok(())
        }
        FeedbackCmd::List { open } => {
            let store = ctx.read_store()?;
            let items: Vec<Rec> = store
                .list("feedback")?
                .into_iter()
                .filter(|f| !open || matches!(f.str("status"), Some("open" | "in_progress")))
                .collect();
            if ctx.printer.json {
                let out: Vec<Value> = items
                    .iter()
                    .map(|f| feedback_json(&store, f).map(Value::Object))
                    .collect::<Result<_>>()?;
                return ctx.printer.json(&out);
            }
            if items.is_empty() {
                ctx.printer.say("No feedback.");
                return Ok(());
            }
            table(ctx, &store, &items, true)
        }
        FeedbackCmd::Show { feedback } => {
            let store = ctx.read_store()?;
            let f = store.resolve_record("feedback", "feedback", &feedback)?;
            if ctx.printer.json {
                return ctx.printer.json(&feedback_json(&store, &f)?);
            }
            let mut pairs = vec![
                ("feedback", f.id.to_string()),
                ("customer", customer_name(&store, &f)?),
                ("kind", cell(&f, "kind")),
                ("status", cell(&f, "status")),
                ("score", score(&f)),
                ("category", cell(&f, "category")),
                ("text", cell(&f, "text")),
                (
                    "opened",
                    f.str("opened_at").map(local_time).unwrap_or_default(),
                ),
                ("visit", cell(&f, "visit_id")),
                ("follow-up of", cell(&f, "follow_up_of")),
                ("note", cell(&f, "status_note")),
                ("resolution", cell(&f, "resolution")),
                (
                    "resolved",
                    f.str("resolved_at").map(local_time).unwrap_or_default(),
                ),
            ];
            if f.pending {
                pairs.push(("sync", "not yet synced".into()));
            }
            pairs.retain(|(_, v)| !v.is_empty());
            ctx.printer.pairs(&pairs)
        }
        FeedbackCmd::Move {
            feedback,
            to,
            note,
            resolution,
        } => {
            let (mut store, _) = ctx.store()?;
            let f = store.resolve_record("feedback", "feedback", &feedback)?;
            let from = f.str("status").unwrap_or("open").to_owned();
            let mut fields = Fields::new();
            if let Some(n) = note {
                fields.insert("status_note".into(), json!(n));
            }
            if let Some(r) = resolution.filter(|r| !r.trim().is_empty()) {
                fields.insert("resolution".into(), json!(r));
            }
            if to == "resolved" {
                fields.insert("resolved_at".into(), json!(format_ts(Utc::now())));
            }
            let change = StateChange {
                field: "status".into(),
                from: from.clone(),
                to: to.clone(),
            };
            store.write(vec![Draft::transition("feedback", f.id, change, fields)])?;
            let rec = store
                .get(&f.id)?
                .context("the feedback is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&feedback_json(&store, &rec)?);
            }
            ctx.printer.say(&format!(
                "Moved {} from {from} to {to}.",
                store.shortener("feedback")?.get(&f.id)
            ));
            Ok(())
        }
    }
}

fn score_of(csat: Option<i64>, nps: Option<i64>) -> String {
    let mut parts = Vec::new();
    if let Some(c) = csat {
        parts.push(format!("CSAT {c}"));
    }
    if let Some(n) = nps {
        parts.push(format!("NPS {n}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::needs_follow_up;

    #[test]
    fn low_scores_need_a_follow_up() {
        assert!(needs_follow_up(Some(2), None));
        assert!(needs_follow_up(None, Some(6)));
        assert!(!needs_follow_up(Some(3), Some(7)));
        assert!(!needs_follow_up(None, None));
    }
}
