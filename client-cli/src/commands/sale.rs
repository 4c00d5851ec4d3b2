//! `fieldsync sale ...`

use super::{Ctx, cell, customer_name, mark, record_json};
use crate::cli::SaleCmd;
use crate::error::{Failure, fail};
use crate::input::{not_future, parse_time};
use crate::output::{clip, local_time};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::{Map, Value, json};
use sync_protocol::money::{Currency, Money};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId};

fn amount(s: &Rec) -> String {
    s.get("amount")
        .and_then(|v| serde_json::from_value::<Money>(v.clone()).ok())
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// The record as JSON with its customer's name.
pub fn sale_json(store: &Store, s: &Rec) -> Result<Map<String, Value>> {
    let mut m = record_json(s);
    m.insert("customer_name".into(), json!(customer_name(store, s)?));
    m.insert("void".into(), json!(s.get("voided_at").is_some()));
    Ok(m)
}

/// Print sales as a table.
pub fn table(ctx: &Ctx, store: &Store, items: &[Rec], with_customer: bool) -> Result<()> {
    let short = store.shortener_for("sales", items.iter().map(|r| r.id))?;
    let mut rows = Vec::new();
    for s in items {
        let mut row = vec![
            short.get(&s.id),
            format!(
                "{}{}",
                s.str("sold_at").map(local_time).unwrap_or_default(),
                mark(s)
            ),
        ];
        if with_customer {
            row.push(customer_name(store, s)?);
        }
        let void = s
            .str("void_reason")
            .map(|r| format!("void: {}", clip(r, 30)))
            .unwrap_or_default();
        row.extend([amount(s), clip(&cell(s, "product"), 30), void]);
        rows.push(row);
    }
    let header: &[&str] = if with_customer {
        &["ID", "SOLD", "CUSTOMER", "AMOUNT", "PRODUCT", "NOTE"]
    } else {
        &["ID", "SOLD", "AMOUNT", "PRODUCT", "NOTE"]
    };
    ctx.printer.table(header, &rows)
}

/// Run a sale command.
pub fn run(ctx: &Ctx, cmd: SaleCmd) -> Result<()> {
    match cmd {
        SaleCmd::Add {
            customer,
            amount: text,
            currency,
            product,
            at,
        } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            let cur = Currency::parse(currency.trim()).map_err(|e| {
                Failure::new(format!("{e} (nothing was saved)")).code("invalid_money")
            })?;
            let money = Money::parse(&text, cur).map_err(|e| {
                Failure::new(format!("{e} (nothing was saved)")).code("invalid_money")
            })?;
            if money.minor <= 0 {
                return Err(Failure::new(format!(
                    "the amount must be more than zero, got {money} (nothing was saved)"
                ))
                .code("invalid_money")
                .hint("to cancel a sale, void it: fieldsync sale void SALE --reason TEXT")
                .into());
            }
            let now = Utc::now();
            let sold_at = match at {
                Some(a) => {
                    let t = parse_time(&a, "--at")?;
                    not_future(t, "--at")?;
                    t
                }
                None => now,
            };
            let id = RecordId::new_v7(now);
            let mut f = Fields::new();
            f.insert("customer_id".into(), json!(c.id));
            f.insert("amount".into(), serde_json::to_value(money)?);
            f.insert("product".into(), json!(product));
            f.insert("sold_at".into(), json!(format_ts(sold_at)));
            store.write(vec![Draft::create("sales", id, f)])?;
            let rec = store
                .get(&id)?
                .context("the sale is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&sale_json(&store, &rec)?);
            }
            ctx.printer.say(&format!(
                "Recorded sale {} of {money} to {}.",
                store.shortener("sales")?.get(&id),
                cell(&c, "name")
            ));
            Ok(())
        }
        SaleCmd::List => {
            let store = ctx.read_store()?;
            let items = store.list("sales")?;
            if ctx.printer.json {
                let out: Vec<Value> = items
                    .iter()
                    .map(|s| sale_json(&store, s).map(Value::Object))
                    .collect::<Result<_>>()?;
                return ctx.printer.json(&out);
            }
            if items.is_empty() {
                ctx.printer.say("No sales.");
                return Ok(());
            }
            table(ctx, &store, &items, true)
        }
        SaleCmd::Void { sale, reason } => {
            let (mut store, _) = ctx.store()?;
            let s = store.resolve_record("sales", "sale", &sale)?;
            if s.get("voided_at").is_some() {
                return fail(format!(
                    "sale {} is already void ({})",
                    store.shortener("sales")?.get(&s.id),
                    cell(&s, "void_reason")
                ));
            }
            let mut f = Fields::new();
            f.insert("void_reason".into(), json!(reason));
            f.insert("voided_at".into(), json!(format_ts(Utc::now())));
            store.write(vec![Draft::patch("sales", s.id, f)])?;
            let rec = store
                .get(&s.id)?
                .context("the sale is missing from the local view")?;
            if ctx.printer.json {
                return ctx.printer.json(&sale_json(&store, &rec)?);
            }
            ctx.printer.say(&format!(
                "Voided sale {} of {}; it stays in the history.",
                store.shortener("sales")?.get(&s.id),
                amount(&rec)
            ));
            Ok(())
        }
    }
}
