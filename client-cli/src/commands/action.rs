//! `fieldsync action ...`: improvement actions with a metric baseline
//! captured at creation and a review that measures the effect. The verdict
//! rule lives in `sync_protocol::metrics::effect`.

use super::goal::{
    fact_index, num, parse_day, require_access, resolve_rep, resolve_subject, resolve_user,
    subject_facts, today, who,
};
use super::{Ctx, cell, mark, record_json};
use crate::error::{fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::{Days, NaiveDate, Utc};
use clap::Subcommand;
use serde_json::{Value, json};
use sync_protocol::metrics::effect::{verdict, window};
use sync_protocol::metrics::{GoalSubject, Metric, compute};
use sync_protocol::schema::{self, Role};
use sync_protocol::time::{format_ts, parse_date};
use sync_protocol::{Fields, RecordId, StateChange};

/// `fieldsync action ...`
#[derive(Debug, Subcommand)]
pub enum ActionCmd {
    /// Add an improvement action for a rep or a team; captures the metric's
    /// baseline over the last --window days.
    #[command(
        after_help = "The effect check (action review) measures the metric over the same number of days ending on the review day. The check date defaults to --due plus the window.\n\nExamples:\n  fieldsync action add --problem \"CSAT fell after the price change\" --action \"Call every detractor within 48 h\" \\\n    --owner mei --due 2026-12-15 --metric csat --rep mei --complaint 0193ab\n  fieldsync action add --problem \"Low coverage\" --action \"Weekly route plan\" --owner lin --due 2026-12-31 --metric coverage --team north"
    )]
    Add {
        /// What is wrong.
        #[arg(long)]
        problem: String,
        /// What will be done.
        #[arg(long)]
        action: String,
        /// Who does it (username or id).
        #[arg(long)]
        owner: String,
        /// By when (YYYY-MM-DD).
        #[arg(long)]
        due: String,
        /// The metric that should move (e.g. csat, visits, resolution_hours).
        #[arg(long)]
        metric: String,
        /// The rep it is about (username or id).
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        rep: Option<String>,
        /// The team it is about (name or id).
        #[arg(long)]
        team: Option<String>,
        /// Days the baseline and the effect are measured over.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
        window: u32,
        /// When to check the effect (default: --due plus the window).
        #[arg(long)]
        check_on: Option<String>,
        /// A complaint this action answers (repeat).
        #[arg(long = "complaint")]
        complaints: Vec<String>,
    },
    /// Improvement actions.
    List {
        /// Only open actions whose due date or effect-check date has come.
        #[arg(long)]
        due: bool,
    },
    /// Measure the metric again, record the effect and a verdict
    /// (improved, no_change, worse); closes the action when it improved.
    #[command(
        after_help = "Examples:\n  fieldsync action review 0193ab\n  fieldsync action review 0193ab --close\n  fieldsync action review 0193ab --keep-open"
    )]
    Review {
        /// Action id or prefix.
        action: String,
        /// Close it whatever the verdict.
        #[arg(long, conflicts_with = "keep_open")]
        close: bool,
        /// Keep it open whatever the verdict.
        #[arg(long)]
        keep_open: bool,
    },
}

fn subject_of(a: &Rec) -> Option<GoalSubject> {
    match (a.str("rep_id"), a.str("team_id")) {
        (Some(r), _) => r.parse().ok().map(GoalSubject::Rep),
        (None, Some(t)) => t.parse().ok().map(GoalSubject::Team),
        _ => None,
    }
}

fn measure(
    store: &Store,
    me: sync_protocol::UserId,
    subject: GoalSubject,
    metric: Metric,
    day: NaiveDate,
    days: u32,
) -> Result<Option<f64>> {
    let ix = fact_index(store, Some(me))?;
    Ok(compute(metric, &window(day, days), &subject_facts(&ix, subject)).value())
}

fn action_json(store: &Store, a: &Rec) -> Result<Value> {
    let mut m = record_json(a);
    m.insert("owner".into(), json!(who(store, a.str("owner_id"))?));
    m.insert(
        "subject".into(),
        json!(who(store, a.str("rep_id").or(a.str("team_id")))?),
    );
    let id = a.id.to_string();
    let complaints: Vec<String> = store
        .list("feedback")?
        .iter()
        .filter(|f| f.str("action_id") == Some(id.as_str()))
        .map(|f| f.id.to_string())
        .collect();
    m.insert("complaints".into(), json!(complaints));
    Ok(Value::Object(m))
}

#[allow(clippy::too_many_arguments)]
fn add(
    ctx: &Ctx,
    problem: &str,
    action: &str,
    owner: &str,
    due: &str,
    metric: &str,
    subject: (Option<&str>, Option<&str>),
    window_days: u32,
    check_on: Option<&str>,
    complaints: &[String],
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let (problem, action) = (problem.trim(), action.trim());
    if problem.is_empty() || action.is_empty() {
        return fail("--problem and --action must not be empty");
    }
    let Some(metric) = Metric::parse(metric.trim()) else {
        return fail_hint(
            format!("{metric:?} is not a metric"),
            format!("use one of {}", schema::METRIC_IDS.join(", ")),
        );
    };
    let due = parse_day(due, "--due")?;
    let check_on = match check_on {
        Some(c) => parse_day(c, "--check-on")?,
        None => due
            .checked_add_days(Days::new(u64::from(window_days)))
            .unwrap_or(due),
    };
    let owner = resolve_user(&store, owner)?;
    let subj = match subject {
        (Some(r), _) => GoalSubject::Rep(sync_protocol::UserId(resolve_rep(&store, r)?.id.0)),
        (None, Some(t)) => match resolve_subject(&store, t)? {
            (s @ GoalSubject::Team(_), _) => s,
            (GoalSubject::Rep(_), _) => {
                return fail_hint(
                    format!("{t:?} is a user, not a team"),
                    "use --rep for a rep, --team for a team name",
                );
            }
        },
        (None, None) => return fail("give --rep REP or --team TEAM"),
    };
    require_access(
        &store,
        &cfg,
        "improvement_actions",
        subj,
        true,
        "add improvement actions",
    )?;
    let mut linked = Vec::new();
    for c in complaints {
        let f = store.resolve_record("feedback", "complaint", c)?;
        if f.str("kind") != Some("complaint") {
            return fail(format!(
                "{c} is a {}, not a complaint (nothing was saved)",
                cell(&f, "kind")
            ));
        }
        linked.push(f);
    }
    let now = Utc::now();
    let day = now.date_naive();
    let Some(baseline) = measure(&store, cfg.user.id, subj, metric, day, window_days)? else {
        return fail_hint(
            format!(
                "{} has no data over the last {window_days} days, so there is no baseline to check the effect against (nothing was saved)",
                metric.as_str()
            ),
            "choose a metric with data, or a longer --window",
        );
    };
    let id = RecordId::new_v7(now);
    let mut f = Fields::new();
    match subj {
        GoalSubject::Rep(u) => f.insert("rep_id".into(), json!(u)),
        GoalSubject::Team(t) => f.insert("team_id".into(), json!(t)),
    };
    f.insert("problem".into(), json!(problem));
    f.insert("action".into(), json!(action));
    f.insert("owner_id".into(), json!(owner.id));
    f.insert("due".into(), json!(due.to_string()));
    f.insert("metric".into(), json!(metric.as_str()));
    f.insert("baseline".into(), json!(baseline));
    f.insert("check_on".into(), json!(check_on.to_string()));
    f.insert("window_days".into(), json!(window_days));
    f.insert("created_at".into(), json!(format_ts(now)));
    let mut drafts = vec![Draft::create("improvement_actions", id, f)];
    for c in &linked {
        let mut p = Fields::new();
        p.insert("action_id".into(), json!(id));
        drafts.push(Draft::patch("feedback", c.id, p));
    }
    store.write(drafts)?;
    let rec = store
        .get(&id)?
        .context("the action is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&action_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Added action {}: {} baseline {} over the last {window_days} days; effect check on {check_on}{}.",
        store.shortener("improvement_actions")?.get(&id),
        metric.as_str(),
        num(baseline),
        if linked.is_empty() {
            String::new()
        } else {
            format!("; linked {} complaint(s)", linked.len())
        }
    ));
    Ok(())
}

fn list(ctx: &Ctx, due_only: bool) -> Result<()> {
    let store = ctx.read_store()?;
    let day = today();
    let is_due = |a: &Rec| {
        a.str("status").unwrap_or("open") == "open"
            && [a.str("due"), a.str("check_on")]
                .into_iter()
                .flatten()
                .filter_map(parse_date)
                .any(|d| d <= day)
    };
    let mut items: Vec<Rec> = store
        .list("improvement_actions")?
        .into_iter()
        .filter(|a| !a.archived && (!due_only || is_due(a)))
        .collect();
    items.sort_by(|a, b| a.str("due").cmp(&b.str("due")));
    if ctx.printer.json {
        let out: Vec<Value> = items
            .iter()
            .map(|a| action_json(&store, a))
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    if items.is_empty() {
        ctx.printer.say(if due_only {
            "No actions due."
        } else {
            "No improvement actions."
        });
        return Ok(());
    }
    let short = store.shortener("improvement_actions")?;
    let n = |a: &Rec, f: &str| {
        a.get(f)
            .and_then(Value::as_f64)
            .map(num)
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for a in &items {
        rows.push(vec![
            format!("{}{}", short.get(&a.id), mark(a)),
            who(&store, a.str("rep_id").or(a.str("team_id")))?,
            who(&store, a.str("owner_id"))?,
            cell(a, "due"),
            cell(a, "check_on"),
            cell(a, "metric"),
            n(a, "baseline"),
            n(a, "measured"),
            cell(a, "verdict"),
            cell(a, "status"),
            crate::output::clip(&cell(a, "action"), 30),
        ]);
    }
    ctx.printer.table(
        &[
            "ID", "FOR", "OWNER", "DUE", "CHECK", "METRIC", "BASELINE", "MEASURED", "VERDICT",
            "STATUS", "ACTION",
        ],
        &rows,
    )
}

fn review(ctx: &Ctx, query: &str, close: bool, keep_open: bool) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let a = store.resolve_record("improvement_actions", "action", query)?;
    let subj = subject_of(&a).context("the action has no readable rep or team")?;
    require_access(
        &store,
        &cfg,
        "improvement_actions",
        subj,
        false,
        "review improvement actions",
    )?;
    if a.str("status").unwrap_or("open") != "open" {
        return fail_hint(
            "the action is already closed",
            if matches!(cfg.user.role, Role::Rep) {
                "ask your supervisor to reopen it".to_owned()
            } else {
                "`fieldsync action list` shows the open ones".to_owned()
            },
        );
    }
    let metric = a
        .str("metric")
        .and_then(Metric::parse)
        .context("the action has no readable metric")?;
    let Some(baseline) = a.get("baseline").and_then(Value::as_f64) else {
        return fail("the action has no baseline to compare with");
    };
    let days = a
        .get("window_days")
        .and_then(Value::as_u64)
        .map_or(30, |d| d as u32);
    let now = Utc::now();
    let measured = measure(&store, cfg.user.id, subj, metric, now.date_naive(), days)?;
    let Some(measured) = measured else {
        return fail_hint(
            format!(
                "{} has no data over the last {days} days; nothing was recorded",
                metric.as_str()
            ),
            "review again once there is data",
        );
    };
    let v = verdict(metric, baseline, measured);
    let shut = close || (!keep_open && v == sync_protocol::metrics::effect::Verdict::Improved);
    let mut f = Fields::new();
    f.insert("measured".into(), json!(measured));
    f.insert("verdict".into(), json!(v.as_str()));
    f.insert("reviewed_at".into(), json!(format_ts(now)));
    let draft = if shut {
        Draft::transition(
            "improvement_actions",
            a.id,
            StateChange {
                field: "status".into(),
                from: "open".into(),
                to: "closed".into(),
            },
            f,
        )
    } else {
        Draft::patch("improvement_actions", a.id, f)
    };
    store.write(vec![draft])?;
    let rec = store
        .get(&a.id)?
        .context("the action is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&action_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "{}: baseline {} -> measured {} over the last {days} days: {}; the action is {}.",
        metric.as_str(),
        num(baseline),
        num(measured),
        v.as_str(),
        if shut { "closed" } else { "still open" }
    ));
    Ok(())
}

/// Run an action command.
pub fn run(ctx: &Ctx, cmd: ActionCmd) -> Result<()> {
    match cmd {
        ActionCmd::Add {
            problem,
            action,
            owner,
            due,
            metric,
            rep,
            team,
            window,
            check_on,
            complaints,
        } => add(
            ctx,
            &problem,
            &action,
            &owner,
            &due,
            &metric,
            (rep.as_deref(), team.as_deref()),
            window,
            check_on.as_deref(),
            &complaints,
        ),
        ActionCmd::List { due } => list(ctx, due),
        ActionCmd::Review {
            action,
            close,
            keep_open,
        } => review(ctx, &action, close, keep_open),
    }
}
