//! `fieldsync work-report ...`: weekly and monthly reports, pre-filled with
//! the rep's own figures computed from the local store (works offline).

use super::goal::{fact_index, parse_period, require_access, resolve_user, today, who};
use super::{Ctx, cell, mark, record_json};
use crate::error::{fail, fail_hint};
use crate::store::{Rec, Store};
use anyhow::{Context, Result};
use chrono::{Datelike, Days, NaiveDate, Utc};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sync_protocol::metrics::{GoalSubject, Metric, Period, compute};
use sync_protocol::money::Currency;
use sync_protocol::schema::{self, Relation, Role, rules};
use sync_protocol::time::{format_ts, parse_ts};
use sync_protocol::{Fields, OpKind, RecordId, UserId};

/// `fieldsync work-report ...`
#[derive(Debug, Subcommand)]
pub enum WorkReportCmd {
    /// Submit your weekly or monthly report (reps). Visits, customers, sales
    /// and feedback for the period are filled in from your own records.
    #[command(
        after_help = "The period defaults to the current week (weekly) or month (monthly). A report is late when written after the day following its period.\n\nExamples:\n  fieldsync work-report submit --kind weekly --summary \"good week\" --plan \"call the three new leads\"\n  fieldsync work-report submit --kind monthly --period 2026-11 --summary \"...\" --market \"competitor cut prices\""
    )]
    Submit {
        /// Weekly or monthly.
        #[arg(long, value_enum)]
        kind: ReportKind,
        /// Period: 2026-W48 (weekly) or 2026-11 (monthly).
        #[arg(long)]
        period: Option<String>,
        /// Summary of the period.
        #[arg(long)]
        summary: String,
        /// Market observations.
        #[arg(long)]
        market: Option<String>,
        /// Issues met.
        #[arg(long)]
        issues: Option<String>,
        /// Plan for the next period.
        #[arg(long)]
        plan: Option<String>,
    },
    /// List reports, or with --missing the reps who owe one.
    #[command(
        after_help = "--missing checks the last ended week and month.\n\nExamples:\n  fieldsync work-report list\n  fieldsync work-report list --rep mei --json\n  fieldsync work-report list --missing"
    )]
    List {
        /// Only this rep's reports (username or id).
        #[arg(long)]
        rep: Option<String>,
        /// Reps without a report for the last ended week or month.
        #[arg(long)]
        missing: bool,
    },
    /// Comment on a rep's report (supervisors).
    #[command(
        after_help = "Examples:\n  fieldsync work-report comment 0193a1b2 --text \"good plan, follow up on Acme\""
    )]
    Comment {
        /// Report id or prefix.
        report: String,
        /// The comment.
        #[arg(long)]
        text: String,
    },
}

/// Kinds of work report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportKind {
    /// A week (ISO week period).
    Weekly,
    /// A calendar month.
    Monthly,
}

impl ReportKind {
    fn as_str(self) -> &'static str {
        match self {
            ReportKind::Weekly => "weekly",
            ReportKind::Monthly => "monthly",
        }
    }

    fn current(self, day: NaiveDate) -> Period {
        match self {
            ReportKind::Weekly => {
                let w = day.iso_week();
                Period::Week(w.year(), w.week())
            }
            ReportKind::Monthly => Period::month_of(day),
        }
    }
}

/// Whether a report for `period` written at `written` is late: reports are
/// due by the end of the day after the period (UTC).
pub fn is_late(period: &Period, written: NaiveDate) -> bool {
    written > period.end()
}

fn late_of(r: &Rec) -> Option<bool> {
    let p = Period::parse(r.str("period")?).ok()?;
    let w = parse_ts(r.str("written_at")?)?;
    Some(is_late(&p, w.date_naive()))
}

fn report_json(store: &Store, r: &Rec) -> Result<Value> {
    let mut m = record_json(r);
    m.insert("rep".into(), json!(who(store, r.str("rep_id"))?));
    m.insert("late".into(), json!(late_of(r)));
    Ok(Value::Object(m))
}

/// The sales of `rep` in `period`, in minor units of their one currency.
fn sales_total(store: &Store, rep: UserId, period: &Period) -> Result<Option<(i64, Currency)>> {
    let owner = rep.to_string();
    let mut total: Option<(i64, Currency)> = None;
    for s in store.list("sales")? {
        if s.archived || s.get("voided_at").is_some() {
            continue;
        }
        if !s
            .str("sold_at")
            .and_then(parse_ts)
            .is_some_and(|t| period.contains(t))
        {
            continue;
        }
        let Some(customer) = s.customer_id.map(|c| store.get(&c)).transpose()?.flatten() else {
            continue;
        };
        if customer.str("owner_id").is_some_and(|o| o != owner) {
            continue;
        }
        let amount = s.get("amount");
        let minor = amount.and_then(|a| a.get("minor")).and_then(Value::as_i64);
        let cur = amount
            .and_then(|a| a.get("currency"))
            .and_then(Value::as_str)
            .and_then(|c| Currency::parse(c).ok());
        let (Some(minor), Some(cur)) = (minor, cur) else {
            continue;
        };
        total = match total {
            None => Some((minor, cur)),
            Some((t, c)) if c == cur => Some((t.saturating_add(minor), c)),
            Some(_) => {
                return fail_hint(
                    format!("your sales in {period} are in more than one currency"),
                    "the report carries one sales total; mention the rest in --market or --issues",
                );
            }
        };
    }
    Ok(total)
}

fn submit(
    ctx: &Ctx,
    kind: ReportKind,
    period: Option<&str>,
    texts: [(&str, Option<String>); 4],
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let reports = schema::collection("work_reports").context("the schema has work reports")?;
    if rules::may_act(reports, OpKind::Create, cfg.user.role, Relation::Own).is_err() {
        return fail_hint(
            format!("a {} does not submit work reports", cfg.user.role),
            "reps submit reports; supervisors comment with fieldsync work-report comment",
        );
    }
    let now = Utc::now();
    let period = match period {
        Some(p) => parse_period(p)?,
        None => kind.current(now.date_naive()),
    };
    match (kind, period) {
        (ReportKind::Weekly, Period::Week(..)) | (ReportKind::Monthly, Period::Month(..)) => {}
        _ => {
            return fail_hint(
                format!(
                    "a {} report needs a {} period, got {period}",
                    kind.as_str(),
                    match kind {
                        ReportKind::Weekly => "week",
                        ReportKind::Monthly => "month",
                    }
                ),
                "e.g. --period 2026-W48 for weekly, --period 2026-11 for monthly",
            );
        }
    }
    if period.start() > now.date_naive() {
        return fail(format!("{period} has not started yet"));
    }
    let me = cfg.user.id.to_string();
    let period_text = period.to_string();
    if store.list("work_reports")?.iter().any(|r| {
        r.str("rep_id") == Some(me.as_str())
            && r.str("kind") == Some(kind.as_str())
            && r.str("period") == Some(period_text.as_str())
    }) {
        return fail_hint(
            format!(
                "you already submitted the {} report for {period}",
                kind.as_str()
            ),
            "fieldsync work-report list shows it",
        );
    }
    let mut f = Fields::new();
    for (name, text) in texts {
        let text = text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        match (name, text) {
            ("summary", None) => return fail("--summary is empty"),
            (_, Some(t)) => {
                f.insert(name.into(), json!(t));
            }
            (_, None) => {}
        }
    }
    require_access(
        &store,
        &cfg,
        "work_reports",
        GoalSubject::Rep(cfg.user.id),
        true,
        "submit work reports",
    )?;
    let ix = fact_index(&store, Some(cfg.user.id))?;
    let facts = ix.facts_for_rep(cfg.user.id);
    let count = |m| compute(m, &period, &facts).value().unwrap_or(0.0) as i64;
    let feedback = facts
        .feedback
        .iter()
        .filter(|x| period.contains(x.opened_at))
        .count();
    f.insert("rep_id".into(), json!(cfg.user.id));
    f.insert("kind".into(), json!(kind.as_str()));
    f.insert("period".into(), json!(period_text));
    f.insert("written_at".into(), json!(format_ts(now)));
    f.insert("visits".into(), json!(count(Metric::Visits)));
    f.insert(
        "customers_visited".into(),
        json!(count(Metric::CustomersVisited)),
    );
    f.insert("feedback".into(), json!(feedback));
    if let Some((minor, cur)) = sales_total(&store, cfg.user.id, &period)? {
        f.insert("sales".into(), json!({"minor": minor, "currency": cur}));
    }
    let id = RecordId::new_v7(now);
    store.write(vec![crate::store::Draft::create("work_reports", id, f)])?;
    let rec = store.get(&id)?.context("the report is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&report_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Submitted the {} report {} for {period}: {} visits, {} customers, {} feedback.",
        kind.as_str(),
        store.shortener("work_reports")?.get(&id),
        count(Metric::Visits),
        count(Metric::CustomersVisited),
        feedback
    ));
    Ok(())
}

fn money_text(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    let (Some(minor), Some(cur)) = (
        v.get("minor").and_then(Value::as_i64),
        v.get("currency")
            .and_then(Value::as_str)
            .and_then(|c| Currency::parse(c).ok()),
    ) else {
        return String::new();
    };
    let d = cur.minor_digits();
    let scale = 10i64.pow(d);
    if d == 0 {
        format!("{minor} {cur}")
    } else {
        format!(
            "{}{}.{:0width$} {cur}",
            if minor < 0 { "-" } else { "" },
            (minor / scale).abs(),
            (minor % scale).abs(),
            width = d as usize
        )
    }
}

/// The last ended week and month before `day`.
fn last_ended(day: NaiveDate) -> [(ReportKind, Period); 2] {
    let week_ago = day - Days::new(7);
    let last_month = day.with_day(1).unwrap_or(day) - Days::new(1);
    [
        (ReportKind::Weekly, ReportKind::Weekly.current(week_ago)),
        (ReportKind::Monthly, ReportKind::Monthly.current(last_month)),
    ]
}

fn missing(ctx: &Ctx, store: &Store) -> Result<()> {
    let cfg = ctx.require_config()?;
    let my_team = cfg.user.team_id.map(|t| t.to_string());
    let reps: Vec<Rec> = store
        .list("users")?
        .into_iter()
        .filter(|u| {
            !u.archived
                && u.str("role") == Some("rep")
                && u.get("active").and_then(Value::as_bool) != Some(false)
        })
        .filter(|u| match cfg.user.role {
            Role::Rep => u.id.0 == cfg.user.id.0,
            Role::Supervisor => my_team.is_some() && u.str("team_id") == my_team.as_deref(),
            Role::Hq | Role::Admin => true,
        })
        .collect();
    let reports = store.list("work_reports")?;
    let mut out = Vec::new();
    for (kind, period) in last_ended(today()) {
        let p = period.to_string();
        for u in &reps {
            let rid = u.id.to_string();
            let has = reports.iter().any(|r| {
                r.str("rep_id") == Some(rid.as_str())
                    && r.str("kind") == Some(kind.as_str())
                    && r.str("period") == Some(p.as_str())
            });
            if !has {
                out.push(json!({"rep_id": rid, "rep": cell(u, "username"),
                    "kind": kind.as_str(), "period": p}));
            }
        }
    }
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if out.is_empty() {
        ctx.printer.say("No missing reports.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|v| {
            ["rep", "kind", "period"]
                .iter()
                .map(|k| v[*k].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .collect();
    ctx.printer.table(&["REP", "KIND", "PERIOD"], &rows)
}

fn list(ctx: &Ctx, rep: Option<&str>, only_missing: bool) -> Result<()> {
    let store = ctx.read_store()?;
    if only_missing {
        return missing(ctx, &store);
    }
    let rep = rep.map(|r| resolve_user(&store, r)).transpose()?;
    let items: Vec<Rec> = store
        .list("work_reports")?
        .into_iter()
        .filter(|r| {
            rep.as_ref()
                .is_none_or(|u| r.str("rep_id") == Some(u.id.to_string().as_str()))
        })
        .collect();
    let out: Vec<Value> = items
        .iter()
        .map(|r| report_json(&store, r))
        .collect::<Result<_>>()?;
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if out.is_empty() {
        ctx.printer.say("No work reports.");
        return Ok(());
    }
    let short = store.shortener("work_reports")?;
    let rows: Vec<Vec<String>> = items
        .iter()
        .zip(&out)
        .map(|(r, j)| {
            let n = |k: &str| j[k].as_i64().map(|v| v.to_string()).unwrap_or_default();
            vec![
                short.get(&r.id),
                format!("{}{}", j["rep"].as_str().unwrap_or(""), mark(r)),
                cell(r, "kind"),
                cell(r, "period"),
                if j["late"] == json!(true) {
                    "late"
                } else {
                    "on time"
                }
                .to_owned(),
                n("visits"),
                n("customers_visited"),
                money_text(r.get("sales")),
                n("feedback"),
                crate::output::clip(&cell(r, "summary"), 30),
                if r.get("supervisor_comment").is_some() {
                    "yes"
                } else {
                    ""
                }
                .to_owned(),
            ]
        })
        .collect();
    ctx.printer.table(
        &[
            "ID",
            "REP",
            "KIND",
            "PERIOD",
            "WRITTEN",
            "VISITS",
            "CUSTOMERS",
            "SALES",
            "FEEDBACK",
            "SUMMARY",
            "COMMENT",
        ],
        &rows,
    )
}

fn comment(ctx: &Ctx, report: &str, text: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let r = store.resolve_record("work_reports", "work report", report)?;
    let text = text.trim();
    if text.is_empty() {
        return fail("--text is empty");
    }
    let rep = r
        .str("rep_id")
        .and_then(|s| s.parse::<UserId>().ok())
        .context("the report has no rep")?;
    require_access(
        &store,
        &cfg,
        "work_reports",
        GoalSubject::Rep(rep),
        false,
        "comment on work reports",
    )?;
    let mut f = Fields::new();
    f.insert("supervisor_comment".into(), json!(text));
    store.write(vec![crate::store::Draft::patch("work_reports", r.id, f)])?;
    let rec = store.get(&r.id)?.context("the report is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&report_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Commented on {}'s {} report for {}.",
        who(&store, r.str("rep_id"))?,
        cell(&r, "kind"),
        cell(&r, "period")
    ));
    Ok(())
}

/// Run a work-report command.
pub fn run(ctx: &Ctx, cmd: WorkReportCmd) -> Result<()> {
    match cmd {
        WorkReportCmd::Submit {
            kind,
            period,
            summary,
            market,
            issues,
            plan,
        } => submit(
            ctx,
            kind,
            period.as_deref(),
            [
                ("summary", Some(summary)),
                ("market", market),
                ("issues", issues),
                ("plan", plan),
            ],
        ),
        WorkReportCmd::List { rep, missing } => list(ctx, rep.as_deref(), missing),
        WorkReportCmd::Comment { report, text } => comment(ctx, &report, &text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        sync_protocol::time::parse_date(s).unwrap()
    }

    #[test]
    fn lateness_is_judged_by_the_writing_day() {
        let w = Period::parse("2026-W48").unwrap();
        assert!(!is_late(&w, d("2026-11-29")));
        assert!(!is_late(&w, d("2026-11-30")), "the day after is on time");
        assert!(is_late(&w, d("2026-12-01")));
    }

    #[test]
    fn missing_checks_the_last_ended_week_and_month() {
        let [(_, w), (_, m)] = last_ended(d("2026-12-02"));
        assert_eq!(w.to_string(), "2026-W48");
        assert_eq!(m.to_string(), "2026-11");
        let [(_, _), (_, m)] = last_ended(d("2027-01-01"));
        assert_eq!(m.to_string(), "2026-12");
    }
}
