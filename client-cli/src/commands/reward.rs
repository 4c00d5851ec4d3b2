//! `fieldsync reward ...`: suggested rewards from the active incentive plan
//! (tier arithmetic spelled out), rewards granted by supervisors and HQ.

use super::evaluation::basis_value;
use super::goal::{num, parse_period, require_access, resolve_rep, resolve_user, who};
use super::incentive_plan::active_plan;
use super::{Ctx, cell, mark, record_json};
use crate::error::{Failure, fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sync_protocol::metrics::GoalSubject;
use sync_protocol::metrics::incentive::suggest;
use sync_protocol::money::{Currency, Money};
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId, UserId};

/// Kinds of reward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RewardKind {
    /// Money.
    Bonus,
    /// Public recognition.
    Recognition,
    /// A promotion.
    Promotion,
    /// A development opportunity (course, conference).
    Development,
}

impl RewardKind {
    fn as_str(self) -> &'static str {
        match self {
            RewardKind::Bonus => "bonus",
            RewardKind::Recognition => "recognition",
            RewardKind::Promotion => "promotion",
            RewardKind::Development => "development",
        }
    }
}

/// `fieldsync reward ...`
#[derive(Debug, Subcommand)]
pub enum RewardCmd {
    /// Per rep, the reward the active incentive plan suggests for a period,
    /// from their evaluation, with the tier arithmetic.
    #[command(
        after_help = "The evaluation's score (calibrated when HQ calibrated it) or its weighted attainment is compared with the plan's tiers.\n\nExamples:\n  fieldsync reward suggest --period 2026-11\n  fieldsync reward suggest --period 2026-Q4 --team north --json"
    )]
    Suggest {
        /// Period: 2026-11, 2026-Q4, 2026-W48, 2026 or FROM..TO.
        #[arg(long)]
        period: String,
        /// Only this team's reps (name or id).
        #[arg(long)]
        team: Option<String>,
    },
    /// Grant a reward to a rep (supervisors for their team, HQ for anyone).
    #[command(
        after_help = "Examples:\n  fieldsync reward grant mei --kind bonus --amount 3000 --period 2026-11 --reason \"Gold tier, November\"\n  fieldsync reward grant mei --kind recognition --reason \"Star of the month\""
    )]
    Grant {
        /// The rep (username or id).
        rep: String,
        /// What kind of reward.
        #[arg(long, value_enum)]
        kind: RewardKind,
        /// Amount (required for a bonus).
        #[arg(long)]
        amount: Option<String>,
        /// Currency of the amount (default: the active plan's, else CNY).
        #[arg(long)]
        currency: Option<String>,
        /// The period it rewards.
        #[arg(long)]
        period: Option<String>,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Rewards granted.
    List {
        /// Only this rep's (username or id).
        #[arg(long)]
        rep: Option<String>,
        /// Only for this period.
        #[arg(long)]
        period: Option<String>,
    },
}

/// The reps a suggestion covers: a team's, else the supervisor's own team,
/// else (HQ) every rep.
fn reps_in_scope(store: &Store, team: Option<&str>, own_team: Option<String>) -> Result<Vec<Rec>> {
    let users = store.list("users")?;
    let team_id = match team {
        None => own_team,
        Some(q) => {
            let q = q.trim();
            let hit = store.list("teams")?.into_iter().find(|t| {
                t.id.to_string().eq_ignore_ascii_case(q)
                    || t.str("name").is_some_and(|n| n.eq_ignore_ascii_case(q))
            });
            match hit {
                Some(t) => Some(t.id.to_string()),
                None => {
                    return fail_hint(
                        format!("no team {q:?} in the local directory"),
                        "run fieldsync sync to fetch the directory",
                    );
                }
            }
        }
    };
    let mut reps: Vec<Rec> = users
        .into_iter()
        .filter(|u| !u.archived && u.str("role") == Some("rep"))
        .filter(|u| {
            team_id
                .as_deref()
                .is_none_or(|t| u.str("team_id") == Some(t))
        })
        .collect();
    reps.sort_by(|a, b| a.str("username").cmp(&b.str("username")));
    Ok(reps)
}

fn suggest_cmd(ctx: &Ctx, period: &str, team: Option<&str>) -> Result<()> {
    let store = ctx.read_store()?;
    let cfg = ctx.require_config()?;
    let period = parse_period(period)?.to_string();
    let Some(plan) = active_plan(&store)? else {
        return fail_hint(
            "there is no active incentive plan on this device",
            "HQ sets one with fieldsync incentive-plan set; then fieldsync sync",
        );
    };
    let evaluations = store.list("evaluations")?;
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let own_team = (cfg.user.role == Role::Supervisor)
        .then(|| cfg.user.team_id.map(|t| t.to_string()))
        .flatten();
    for rep in reps_in_scope(&store, team, own_team)? {
        // A rep sees only their own suggestion; supervisors their team's (the
        // device only holds evaluations in its scope anyway).
        if cfg.user.role == Role::Rep && rep.id.0 != cfg.user.id.0 {
            continue;
        }
        let rid = rep.id.to_string();
        let e = evaluations.iter().find(|e| {
            !e.archived
                && e.str("rep_id") == Some(rid.as_str())
                && e.str("period") == Some(period.as_str())
        });
        let username = cell(&rep, "username");
        let mut item = serde_json::Map::new();
        item.insert("rep".into(), json!(username));
        item.insert("rep_id".into(), json!(rid));
        item.insert("period".into(), json!(period));
        item.insert("plan".into(), json!(plan.name));
        item.insert("basis".into(), json!(plan.plan.basis.as_str()));
        item.insert("currency".into(), json!(plan.currency.as_str()));
        let Some(e) = e else {
            item.insert("evaluation_id".into(), Value::Null);
            item.insert("note".into(), json!("no evaluation for the period"));
            rows.push(vec![
                username,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "no evaluation for the period".into(),
            ]);
            out.push(Value::Object(item));
            continue;
        };
        item.insert("evaluation_id".into(), json!(e.id));
        item.insert("status".into(), json!(e.str("status")));
        let Some(value) = basis_value(e, plan.plan.basis) else {
            item.insert("note".into(), json!("the evaluation is not rated yet"));
            rows.push(vec![
                username,
                cell(e, "status"),
                "-".into(),
                "-".into(),
                "-".into(),
                "not rated yet".into(),
            ]);
            out.push(Value::Object(item));
            continue;
        };
        let s = suggest(&plan.plan, value, plan.minor_digits());
        rows.push(vec![
            username,
            cell(e, "status"),
            num(value),
            s.tier.clone().unwrap_or_else(|| "-".into()),
            match (s.payout, &s.recognition) {
                (Some(p), _) => format!("{} {}", num(p), plan.currency),
                (None, Some(r)) => r.clone(),
                (None, None) => "-".into(),
            },
            s.steps.join("; "),
        ]);
        item.insert("suggestion".into(), serde_json::to_value(&s)?);
        out.push(Value::Object(item));
    }
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if rows.is_empty() {
        ctx.printer.say("No reps.");
        return Ok(());
    }
    ctx.printer.say(&format!(
        "Plan {} by {}, period {period}:",
        plan.name,
        plan.plan.basis.as_str()
    ));
    let basis = plan.plan.basis.as_str().to_uppercase();
    ctx.printer.table(
        &["REP", "EVALUATION", &basis, "TIER", "REWARD", "ARITHMETIC"],
        &rows,
    )
}

fn grant(
    ctx: &Ctx,
    rep: &str,
    kind: RewardKind,
    amount: Option<&str>,
    currency: Option<&str>,
    period: Option<&str>,
    reason: &str,
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let rep = resolve_rep(&store, rep)?;
    let rep_id = UserId(rep.id.0);
    require_access(
        &store,
        &cfg,
        "rewards",
        GoalSubject::Rep(rep_id),
        true,
        "grant rewards",
    )?;
    let reason = reason.trim();
    if reason.is_empty() {
        return fail("--reason must not be empty");
    }
    let period = period.map(parse_period).transpose()?.map(|p| p.to_string());
    let money = match amount {
        None if kind == RewardKind::Bonus => {
            return fail_hint(
                "a bonus needs an amount",
                "add --amount, e.g. --amount 3000",
            );
        }
        None => None,
        Some(a) => {
            let code = match currency {
                Some(c) => c.to_owned(),
                None => active_plan(&store)?
                    .map_or_else(|| "CNY".to_owned(), |p| p.currency.as_str().to_owned()),
            };
            let cur = Currency::parse(code.trim()).map_err(|e| {
                Failure::new(format!("{e} (nothing was saved)")).code("invalid_money")
            })?;
            let m = Money::parse(a, cur).map_err(|e| {
                Failure::new(format!("{e} (nothing was saved)")).code("invalid_money")
            })?;
            if m.minor <= 0 {
                return Err(Failure::new(format!(
                    "the amount must be more than zero, got {m} (nothing was saved)"
                ))
                .code("invalid_money")
                .into());
            }
            Some(m)
        }
    };
    let now = Utc::now();
    let id = RecordId::new_v7(now);
    let mut f = Fields::new();
    f.insert("rep_id".into(), json!(rep_id));
    f.insert("kind".into(), json!(kind.as_str()));
    if let Some(m) = &money {
        f.insert("amount".into(), serde_json::to_value(m)?);
    }
    if let Some(p) = &period {
        f.insert("period".into(), json!(p));
    }
    f.insert("reason".into(), json!(reason));
    f.insert("granted_at".into(), json!(format_ts(now)));
    store.write(vec![Draft::create("rewards", id, f)])?;
    let rec = store
        .get(&id)?
        .context("the reward is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&reward_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Granted {} {}to {}.",
        kind.as_str(),
        money.map(|m| format!("of {m} ")).unwrap_or_default(),
        cell(&rep, "username")
    ));
    Ok(())
}

fn reward_json(store: &Store, r: &Rec) -> Result<Value> {
    let mut m = record_json(r);
    m.insert("rep".into(), json!(who(store, r.str("rep_id"))?));
    Ok(Value::Object(m))
}

fn amount_text(r: &Rec) -> String {
    r.get("amount")
        .and_then(|a| serde_json::from_value::<Money>(a.clone()).ok())
        .map(|m| m.to_string())
        .unwrap_or_default()
}

fn list(ctx: &Ctx, rep: Option<&str>, period: Option<&str>) -> Result<()> {
    let store = ctx.read_store()?;
    let rep = rep
        .map(|r| resolve_user(&store, r))
        .transpose()?
        .map(|r| r.id.to_string());
    let period = period.map(parse_period).transpose()?.map(|p| p.to_string());
    let mut items: Vec<Rec> = store
        .list("rewards")?
        .into_iter()
        .filter(|r| !r.archived)
        .filter(|r| rep.as_deref().is_none_or(|x| r.str("rep_id") == Some(x)))
        .filter(|r| period.as_deref().is_none_or(|p| r.str("period") == Some(p)))
        .collect();
    items.sort_by(|a, b| a.str("granted_at").cmp(&b.str("granted_at")));
    if ctx.printer.json {
        let out: Vec<Value> = items
            .iter()
            .map(|r| reward_json(&store, r))
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    if items.is_empty() {
        ctx.printer.say("No rewards.");
        return Ok(());
    }
    let mut rows = Vec::new();
    for r in &items {
        rows.push(vec![
            format!(
                "{}{}",
                r.str("granted_at")
                    .map(crate::output::local_time)
                    .unwrap_or_default(),
                mark(r)
            ),
            who(&store, r.str("rep_id"))?,
            cell(r, "kind"),
            amount_text(r),
            cell(r, "period"),
            crate::output::clip(&cell(r, "reason"), 40),
        ]);
    }
    ctx.printer.table(
        &["GRANTED", "REP", "KIND", "AMOUNT", "PERIOD", "REASON"],
        &rows,
    )
}

/// Run a reward command.
pub fn run(ctx: &Ctx, cmd: RewardCmd) -> Result<()> {
    match cmd {
        RewardCmd::Suggest { period, team } => suggest_cmd(ctx, &period, team.as_deref()),
        RewardCmd::Grant {
            rep,
            kind,
            amount,
            currency,
            period,
            reason,
        } => grant(
            ctx,
            &rep,
            kind,
            amount.as_deref(),
            currency.as_deref(),
            period.as_deref(),
            &reason,
        ),
        RewardCmd::List { rep, period } => list(ctx, rep.as_deref(), period.as_deref()),
    }
}
