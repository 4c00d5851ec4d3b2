//! `fieldsync incentive-plan ...`: HQ's tiers by evaluation score or
//! attainment. The arithmetic lives in `sync_protocol::metrics::incentive`.

use super::goal::num;
use super::{Ctx, cell, mark, record_json};
use crate::error::{Failure, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sync_protocol::metrics::incentive::{Basis, Plan};
use sync_protocol::money::Currency;
use sync_protocol::schema::{self, Reach};
use sync_protocol::{Fields, RecordId};

/// What the tiers compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BasisArg {
    /// The evaluation's overall score (0-100).
    Score,
    /// The evaluation's weighted attainment (%).
    Attainment,
}

/// `fieldsync incentive-plan ...`
#[derive(Debug, Subcommand)]
pub enum IncentivePlanCmd {
    /// HQ: create or change a plan and make it the active one.
    #[command(
        after_help = "A tier is name=NAME,min=N[,payout=AMOUNT][,recognition=TEXT][,accel=A][,cap=AMOUNT]: the highest tier whose min the value reaches applies; above --target each point adds accel % of the payout; cap limits the payout.\n\nExamples:\n  fieldsync incentive-plan set standard --basis score --target 80 --currency CNY \\\n    --tier name=bronze,min=50,payout=500 \\\n    --tier name=silver,min=65,payout=1500 \\\n    --tier name=gold,min=80,payout=3000,accel=4,cap=4500\n  fieldsync incentive-plan set stars --basis attainment --tier \"name=star,min=120,recognition=Star of the quarter\""
    )]
    Set {
        /// The plan's name.
        name: String,
        /// What the tiers compare: the overall score or the weighted attainment.
        #[arg(long, value_enum)]
        basis: BasisArg,
        /// A tier (repeat), see below.
        #[arg(long = "tier", required = true)]
        tiers: Vec<String>,
        /// Where the accelerator starts (score points or attainment %).
        #[arg(long, default_value_t = 100.0)]
        target: f64,
        /// Currency of the payouts.
        #[arg(long, default_value = "CNY")]
        currency: String,
    },
    /// Every plan; the active one is marked.
    List,
}

/// The active plan, read from the store.
pub(crate) struct ActivePlan {
    /// Its record.
    pub rec: Rec,
    /// Its name.
    pub name: String,
    /// Its tiers.
    pub plan: Plan,
    /// Currency of its payouts.
    pub currency: Currency,
}

impl ActivePlan {
    /// Decimals of the plan's currency.
    pub fn minor_digits(&self) -> u32 {
        self.currency.minor_digits()
    }
}

fn read_plan(rec: &Rec) -> Option<ActivePlan> {
    let basis = Basis::parse(rec.str("basis")?)?;
    let tiers: Vec<String> = rec
        .get("tiers")?
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    let target = rec.get("target").and_then(Value::as_f64).unwrap_or(100.0);
    Some(ActivePlan {
        rec: rec.clone(),
        name: rec.str("name")?.to_owned(),
        plan: Plan::parse(basis, target, &tiers).ok()?,
        currency: Currency::parse(rec.str("currency").unwrap_or("CNY")).ok()?,
    })
}

/// The active plan (the most recently created when several are active).
pub(crate) fn active_plan(store: &Store) -> Result<Option<ActivePlan>> {
    Ok(store
        .list("incentive_plans")?
        .iter()
        .filter(|p| !p.archived && p.get("active") == Some(&json!(true)))
        .filter_map(read_plan)
        .max_by_key(|p| p.rec.id))
}

fn set(
    ctx: &Ctx,
    name: &str,
    basis: BasisArg,
    tiers: &[String],
    target: f64,
    currency: &str,
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let coll = schema::collection("incentive_plans").context("unknown collection")?;
    if coll.access_for(cfg.user.role).create == Reach::None {
        return fail_hint(
            format!("a {} cannot set incentive plans", cfg.user.role),
            "HQ sets incentive plans; `fieldsync incentive-plan list` shows them",
        );
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(Failure::new("the plan needs a name (nothing was saved)").into());
    }
    if !target.is_finite() || target < 0.0 {
        return Err(Failure::new(format!(
            "--target must be a number of 0 or more, got {target} (nothing was saved)"
        ))
        .into());
    }
    let currency = Currency::parse(currency.trim())
        .map_err(|e| Failure::new(format!("{e} (nothing was saved)")))?;
    let basis = match basis {
        BasisArg::Score => Basis::Score,
        BasisArg::Attainment => Basis::Attainment,
    };
    let plan = Plan::parse(basis, target, tiers).map_err(|e| {
        Failure::new(format!("{e} (nothing was saved)"))
            .hint("e.g. --tier name=gold,min=80,payout=3000,accel=4,cap=4500")
    })?;
    let canonical: Vec<String> = plan.tiers.iter().map(ToString::to_string).collect();
    let mut f = Fields::new();
    f.insert("basis".into(), json!(basis.as_str()));
    f.insert("tiers".into(), json!(canonical));
    f.insert("target".into(), json!(target));
    f.insert("currency".into(), json!(currency.as_str()));
    f.insert("active".into(), json!(true));
    let plans = store.list("incentive_plans")?;
    let existing = plans
        .iter()
        .find(|p| !p.archived && p.str("name").is_some_and(|n| n.eq_ignore_ascii_case(name)));
    let mut drafts = Vec::new();
    let id = if let Some(p) = existing {
        drafts.push(Draft::patch("incentive_plans", p.id, f));
        p.id
    } else {
        let id = RecordId::new_v7(Utc::now());
        f.insert("name".into(), json!(name));
        drafts.push(Draft::create("incentive_plans", id, f));
        id
    };
    for p in &plans {
        if p.id != id && !p.archived && p.get("active") == Some(&json!(true)) {
            let mut off = Fields::new();
            off.insert("active".into(), json!(false));
            drafts.push(Draft::patch("incentive_plans", p.id, off));
        }
    }
    store.write(drafts)?;
    let rec = store
        .get(&id)?
        .context("the plan is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&record_json(&rec));
    }
    ctx.printer.say(&format!(
        "Incentive plan {name} is active: {} tiers by {}, accelerator from {}, payouts in {currency}.",
        canonical.len(),
        basis.as_str(),
        num(target)
    ));
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let store = ctx.read_store()?;
    let plans: Vec<Rec> = store
        .list("incentive_plans")?
        .into_iter()
        .filter(|p| !p.archived)
        .collect();
    if ctx.printer.json {
        let out: Vec<Value> = plans
            .iter()
            .map(|p| Value::Object(record_json(p)))
            .collect();
        return ctx.printer.json(&out);
    }
    if plans.is_empty() {
        ctx.printer.say("No incentive plans.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = plans
        .iter()
        .map(|p| {
            vec![
                format!("{}{}", cell(p, "name"), mark(p)),
                if p.get("active") == Some(&json!(true)) {
                    "active".to_owned()
                } else {
                    String::new()
                },
                cell(p, "basis"),
                p.get("target")
                    .and_then(Value::as_f64)
                    .map_or_else(|| "100".to_owned(), num),
                cell(p, "currency"),
                p.get("tiers")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" | ")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    ctx.printer
        .table(&["PLAN", "", "BASIS", "TARGET", "CURRENCY", "TIERS"], &rows)
}

/// Run an incentive-plan command.
pub fn run(ctx: &Ctx, cmd: IncentivePlanCmd) -> Result<()> {
    match cmd {
        IncentivePlanCmd::Set {
            name,
            basis,
            tiers,
            target,
            currency,
        } => set(ctx, &name, basis, &tiers, target, &currency),
        IncentivePlanCmd::List => list(ctx),
    }
}
