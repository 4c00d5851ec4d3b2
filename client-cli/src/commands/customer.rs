//! `fieldsync customer ...`

use super::{Ctx, cell, mark, record_json};
use crate::cli::CustomerCmd;
use crate::input::{pos_of, pos_value, position};
use crate::output::{clip, local_time};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::{Value, json};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId};

/// Run a customer command.
pub fn run(ctx: &Ctx, cmd: CustomerCmd) -> Result<()> {
    match cmd {
        CustomerCmd::Add {
            name,
            segment,
            address,
            position: pos,
            phone,
            contact,
        } => {
            let (mut store, _) = ctx.store()?;
            let now = Utc::now();
            let id = RecordId::new_v7(now);
            let mut f = Fields::new();
            f.insert("name".into(), json!(name.trim()));
            f.insert("created_at".into(), json!(format_ts(now)));
            for (k, v) in [
                ("segment", segment),
                ("address", address),
                ("phone", phone),
                ("contact", contact),
            ] {
                if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                    f.insert(k.into(), json!(v.trim()));
                }
            }
            if let Some(p) = position(pos)? {
                f.insert("location".into(), pos_value(p));
            }
            store.write(vec![Draft::create("customers", id, f)])?;
            let rec = store
                .get(&id)?
                .context("the new customer is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&record_json(&rec));
            }
            ctx.printer.say(&format!(
                "Added customer {} ({}).",
                name.trim(),
                store.shortener("customers")?.get(&id)
            ));
            Ok(())
        }
        CustomerCmd::List { search, all } => {
            let store = ctx.read_store()?;
            let needle = search.as_deref().map(str::to_lowercase);
            let hits: Vec<Rec> = store
                .list("customers")?
                .into_iter()
                .filter(|r| all || !r.archived)
                .filter(|r| {
                    needle.as_ref().is_none_or(|n| {
                        ["name", "segment", "address", "contact", "phone"]
                            .iter()
                            .any(|f| {
                                r.str(f)
                                    .is_some_and(|v| v.to_lowercase().contains(n.as_str()))
                            })
                    })
                })
                .collect();
            if ctx.printer.json {
                let out: Vec<_> = hits.iter().map(record_json).collect();
                return ctx.printer.json(&out);
            }
            if hits.is_empty() {
                ctx.printer.say(if needle.is_some() {
                    "No customer matches."
                } else {
                    "No customers yet. Add one: fieldsync customer add NAME"
                });
                return Ok(());
            }
            let short = store.shortener("customers")?;
            let rows: Vec<Vec<String>> = hits
                .iter()
                .map(|r| {
                    let mut name = format!("{}{}", cell(r, "name"), mark(r));
                    if r.archived {
                        name.push_str(" (archived)");
                    }
                    vec![
                        short.get(&r.id),
                        name,
                        cell(r, "segment"),
                        cell(r, "contact"),
                        cell(r, "phone"),
                        clip(&cell(r, "address"), 40),
                    ]
                })
                .collect();
            ctx.printer.table(
                &["ID", "NAME", "SEGMENT", "CONTACT", "PHONE", "ADDRESS"],
                &rows,
            )?;
            if hits.iter().any(|r| r.pending) {
                ctx.printer.say("* not yet synced");
            }
            Ok(())
        }
        CustomerCmd::Show { customer, last } => {
            let store = ctx.read_store()?;
            let c = store.resolve_customer(&customer)?;
            show(ctx, &store, &c, last)
        }
        CustomerCmd::Edit {
            customer,
            name,
            segment,
            address,
            position: pos,
            phone,
            contact,
        } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            let mut f = Fields::new();
            if let Some(n) = name {
                let n = n.trim().to_owned();
                if c.str("name") != Some(n.as_str()) {
                    f.insert("name".into(), json!(n));
                }
            }
            for (k, v) in [
                ("segment", segment),
                ("address", address),
                ("phone", phone),
                ("contact", contact),
            ] {
                let Some(v) = v else { continue };
                let v = v.trim();
                // An empty value clears the field.
                let new = if v.is_empty() { Value::Null } else { json!(v) };
                if c.get(k).unwrap_or(&Value::Null) != &new {
                    f.insert(k.into(), new);
                }
            }
            if let Some(p) = position(pos)?
                && pos_of(c.get("location")) != Some(p)
            {
                f.insert("location".into(), pos_value(p));
            }
            if f.is_empty() {
                if ctx.printer.json {
                    return ctx.printer.json(&record_json(&c));
                }
                ctx.printer.say("Nothing to change.");
                return Ok(());
            }
            let changed: Vec<String> = f.keys().cloned().collect();
            store.write(vec![Draft::patch("customers", c.id, f)])?;
            let rec = store
                .get(&c.id)?
                .context("the customer is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&record_json(&rec));
            }
            ctx.printer.say(&format!(
                "Updated {} of {}.",
                changed.join(", "),
                cell(&rec, "name")
            ));
            Ok(())
        }
        CustomerCmd::Archive { customer } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            if !c.archived {
                store.write(vec![Draft::archive("customers", c.id)])?;
            }
            let rec = store
                .get(&c.id)?
                .context("the customer is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&record_json(&rec));
            }
            if c.archived {
                ctx.printer
                    .say(&format!("{} was already archived.", cell(&c, "name")));
            } else {
                ctx.printer.say(&format!(
                    "Archived {}; its history stays.",
                    cell(&c, "name")
                ));
            }
            Ok(())
        }
    }
}

/// A customer's records of one collection, oldest first (only the latest
/// `last` with `--last`), and how many there are in all.
fn history(
    store: &Store,
    c: &Rec,
    collection: &str,
    last: Option<usize>,
) -> Result<(Vec<Rec>, u64)> {
    Ok(match last {
        None => {
            let all = store.list_for_customer(collection, &c.id)?;
            let n = all.len() as u64;
            (all, n)
        }
        Some(n) => (
            store.last_for_customer(collection, &c.id, n)?,
            store.count_for_customer(collection, &c.id)?,
        ),
    })
}

/// A section heading: `Visits (3)`, or `Visits (120; the last 10)`.
fn heading(title: &str, shown: usize, total: u64) -> String {
    if shown as u64 == total {
        format!("{title} ({total})")
    } else {
        format!("{title} ({total}; the last {shown})")
    }
}

fn show(ctx: &Ctx, store: &Store, c: &Rec, last: Option<usize>) -> Result<()> {
    let (visits, visits_total) = history(store, c, "visits", last)?;
    let (feedback, feedback_total) = history(store, c, "feedback", last)?;
    let (sales, sales_total) = history(store, c, "sales", last)?;
    if ctx.printer.json {
        let v: Vec<Value> = visits
            .iter()
            .map(|v| super::visit::visit_json(store, v).map(Value::Object))
            .collect::<Result<_>>()?;
        let out = json!({
            "customer": record_json(c),
            "visits": v,
            "feedback": feedback.iter().map(|f| super::feedback::feedback_json(store, f).map(Value::Object)).collect::<Result<Vec<_>>>()?,
            "sales": sales.iter().map(|s| super::sale::sale_json(store, s).map(Value::Object)).collect::<Result<Vec<_>>>()?,
            "visits_total": visits_total,
            "feedback_total": feedback_total,
            "sales_total": sales_total,
        });
        return ctx.printer.json(&out);
    }
    let loc = pos_of(c.get("location"))
        .map(|p| format!("{:.5}, {:.5}", p.lat, p.lon))
        .unwrap_or_default();
    let mut pairs = vec![
        ("name", cell(c, "name")),
        ("id", c.id.to_string()),
        ("segment", cell(c, "segment")),
        ("address", cell(c, "address")),
        ("location", loc),
        ("phone", cell(c, "phone")),
        ("contact", cell(c, "contact")),
        (
            "created",
            c.str("created_at").map(local_time).unwrap_or_default(),
        ),
    ];
    if c.archived {
        pairs.push(("archived", "yes".into()));
    }
    if c.pending {
        pairs.push(("sync", "has changes not yet synced".into()));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    ctx.printer.pairs(&pairs)?;
    ctx.printer.line("")?;
    ctx.printer
        .line(&heading("Visits", visits.len(), visits_total))?;
    if !visits.is_empty() {
        super::visit::table(ctx, store, &visits, false)?;
    }
    ctx.printer.line("")?;
    ctx.printer
        .line(&heading("Feedback", feedback.len(), feedback_total))?;
    if !feedback.is_empty() {
        super::feedback::table(ctx, store, &feedback, false)?;
    }
    ctx.printer.line("")?;
    ctx.printer
        .line(&heading("Sales", sales.len(), sales_total))?;
    if !sales.is_empty() {
        super::sale::table(ctx, store, &sales, false)?;
    }
    Ok(())
}
