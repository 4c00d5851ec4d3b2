//! `fieldsync evaluation ...`: scorecards that join measured figures with a
//! supervisor's rating, and the templates (HQ) they are computed from. The
//! arithmetic lives in `sync_protocol::metrics::evaluation`.

use super::goal::{fact_index, num, parse_period, require_access, resolve_rep, team_of, who};
use super::incentive_plan::{ActivePlan, active_plan};
use super::{Ctx, cell, mark, record_json};
use crate::error::{Failure, fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use sync_protocol::metrics::evaluation::{
    ScoreLine, Template, overall, rating_score, round1, scorecard,
};
use sync_protocol::metrics::incentive::{Basis, suggest};
use sync_protocol::metrics::{GoalSpec, GoalSubject, Metric, PlainRecord};
use sync_protocol::schema::{self, Reach, Role};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId, StateChange, TeamId, UserId};

/// `fieldsync evaluation ...`
#[derive(Debug, Subcommand)]
pub enum EvaluationCmd {
    /// Draft a rep's evaluation for a period: computes the scorecard from the
    /// team's template, the rep's goals and the synced figures (works offline).
    #[command(
        after_help = "Drafting again while the evaluation is still a draft recomputes its figures.\n\nExamples:\n  fieldsync evaluation draft mei --period 2026-11\n  fieldsync evaluation draft mei --period 2026-Q4 --json"
    )]
    Draft {
        /// The rep (username or id).
        rep: String,
        /// Period: 2026-11, 2026-Q4, 2026-W48, 2026 or FROM..TO.
        #[arg(long)]
        period: String,
    },
    /// Add the supervisor's rating (1-5) and comment to a draft.
    #[command(
        after_help = "Example:\n  fieldsync evaluation rate 0193ab --rating 4 --comment \"Strong month, coverage improving\""
    )]
    Rate {
        /// Evaluation id or prefix.
        evaluation: String,
        /// 1 (poor) to 5 (excellent).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        rating: u8,
        /// Why (required).
        #[arg(long)]
        comment: String,
    },
    /// Submit a rated draft to the rep.
    Submit {
        /// Evaluation id or prefix.
        evaluation: String,
    },
    /// Acknowledge a submitted evaluation (the rep), or dispute it with a comment.
    #[command(
        after_help = "Examples:\n  fieldsync evaluation ack 0193ab\n  fieldsync evaluation ack 0193ab --dispute --comment \"Two visits are missing\""
    )]
    Ack {
        /// Evaluation id or prefix.
        evaluation: String,
        /// Dispute instead of acknowledging (needs --comment).
        #[arg(long)]
        dispute: bool,
        /// The rep's comment.
        #[arg(long)]
        comment: Option<String>,
    },
    /// HQ: set the final score of an acknowledged or disputed evaluation, with a reason.
    #[command(
        after_help = "Calibrating makes the evaluation final; give the computed score to confirm it unchanged.\n\nExample:\n  fieldsync evaluation calibrate 0193ab --score 72 --reason \"Regional calibration: territory was reassigned mid-month\""
    )]
    Calibrate {
        /// Evaluation id or prefix.
        evaluation: String,
        /// The final score, 0-100.
        #[arg(long)]
        score: f64,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Evaluations in this device's scope.
    List {
        /// Only this rep's (username or id).
        #[arg(long)]
        rep: Option<String>,
        /// Only this period.
        #[arg(long)]
        period: Option<String>,
        /// Only in this state (draft, submitted, acknowledged, disputed, final).
        #[arg(long)]
        status: Option<String>,
    },
    /// An evaluation with every line of its arithmetic.
    Show {
        /// Evaluation id or prefix.
        evaluation: String,
    },
    /// Evaluation templates (HQ edits; everybody reads).
    #[command(subcommand)]
    Template(TemplateCmd),
}

/// `fieldsync evaluation template ...`
#[derive(Debug, Subcommand)]
pub enum TemplateCmd {
    /// HQ: set the template of a team (or the default), as a new version.
    #[command(
        after_help = "A line is METRIC:WEIGHT[:RULE[:TARGET]]: weights are relative, RULE is linear (score = min(attainment, 100)) or threshold (100 when the target is met, else 0), TARGET is used when the rep has no goal for the metric.\n\nExamples:\n  fieldsync evaluation template set --line visits:40 --line sales:40 --line csat:20:threshold:4.5 --rating-weight 30\n  fieldsync evaluation template set --team north --line visits:50:linear:40 --line coverage:50:linear:0.8"
    )]
    Set {
        /// The team (name or id); without it, the default template.
        #[arg(long)]
        team: Option<String>,
        /// A metric line, METRIC:WEIGHT[:RULE[:TARGET]] (repeat).
        #[arg(long = "line", required = true)]
        lines: Vec<String>,
        /// Weight of the supervisor's rating in the overall score, 0-100 (%).
        #[arg(long, default_value_t = 30.0)]
        rating_weight: f64,
        /// A note about this version.
        #[arg(long)]
        note: Option<String>,
    },
    /// The current template of each team and the default (`--all`: every version).
    List {
        /// Every version, not only the current ones.
        #[arg(long)]
        all: bool,
    },
}

const STATUSES: &[&str] = &["draft", "submitted", "acknowledged", "disputed", "final"];

/// A template version as read from the store.
pub(crate) struct TemplateVersion {
    /// Its record.
    pub rec: Rec,
    /// Its team (none for the default).
    pub team: Option<TeamId>,
    /// Its version number.
    pub version: i64,
    /// Its parsed lines.
    pub template: Template,
}

fn read_template(rec: &Rec) -> Option<TemplateVersion> {
    let lines: Vec<String> = rec
        .get("lines")?
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let weight = rec.get("rating_weight")?.as_f64()?;
    Some(TemplateVersion {
        rec: rec.clone(),
        team: rec.str("team_id").and_then(|t| t.parse().ok()),
        version: rec.get("version")?.as_i64()?,
        template: Template::parse(&lines, weight).ok()?,
    })
}

fn templates(store: &Store) -> Result<Vec<TemplateVersion>> {
    let mut out: Vec<TemplateVersion> = store
        .list("evaluation_templates")?
        .iter()
        .filter(|r| !r.archived)
        .filter_map(read_template)
        .collect();
    // Concurrent edits may share a version number: the later record id wins.
    out.sort_by_key(|v| (v.version, v.rec.id));
    Ok(out)
}

/// The current template of a team: its own latest version, else the default's.
pub(crate) fn template_for(store: &Store, team: Option<TeamId>) -> Result<Option<TemplateVersion>> {
    let all = templates(store)?;
    let own = team.and_then(|t| all.iter().rposition(|v| v.team == Some(t)));
    let pick = own.or_else(|| all.iter().rposition(|v| v.team.is_none()));
    Ok(pick.map(|i| {
        let mut all = all;
        all.swap_remove(i)
    }))
}

fn template_by_id(store: &Store, id: Option<&str>) -> Result<Option<TemplateVersion>> {
    let Some(id) = id.and_then(|s| s.parse::<RecordId>().ok()) else {
        return Ok(None);
    };
    Ok(store.get(&id)?.as_ref().and_then(read_template))
}

/// The scorecard lines stored in an evaluation.
pub(crate) fn stored_lines(e: &Rec) -> Vec<ScoreLine> {
    e.str("lines")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

fn rep_of(e: &Rec) -> Option<UserId> {
    e.str("rep_id").and_then(|s| s.parse().ok())
}

/// The value an incentive plan compares: the overall score or the attainment.
pub(crate) fn basis_value(e: &Rec, basis: Basis) -> Option<f64> {
    match basis {
        Basis::Score => e.get("score").and_then(Value::as_f64),
        Basis::Attainment => e.get("attainment").and_then(Value::as_f64),
    }
}

fn tier_name(plan: Option<&ActivePlan>, value: Option<f64>) -> Option<String> {
    let plan = plan?;
    plan.plan.tier_for(value?).map(|t| t.name.clone())
}

/// The evaluation as JSON: its fields, the parsed lines with their
/// arithmetic, the rep's name and the overall formula.
pub(crate) fn evaluation_json(store: &Store, e: &Rec) -> Result<Map<String, Value>> {
    let mut m = record_json(e);
    m.insert("rep".into(), json!(who(store, e.str("rep_id"))?));
    let lines: Vec<Value> = stored_lines(e)
        .iter()
        .map(|l| {
            let mut v = serde_json::to_value(l).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("explain".into(), json!(l.explain()));
            }
            v
        })
        .collect();
    m.insert("lines".into(), Value::Array(lines));
    if let Some(t) = template_by_id(store, e.str("template_id"))?
        && let Some(r) = e.get("rating").and_then(Value::as_u64)
    {
        let o = overall(
            e.get("metric_score").and_then(Value::as_f64),
            r as u8,
            t.template.rating_weight,
        );
        m.insert("rating_weight".into(), json!(t.template.rating_weight));
        m.insert("computed_score".into(), json!(o.score));
        m.insert("overall_explain".into(), json!(o.explain));
    }
    Ok(m)
}

fn find_evaluation(store: &Store, query: &str) -> Result<Rec> {
    store.resolve_record("evaluations", "evaluation", query)
}

fn status(e: &Rec) -> &str {
    e.str("status").unwrap_or("draft")
}

fn reload(store: &Store, id: RecordId) -> Result<Rec> {
    store
        .get(&id)?
        .context("the evaluation is missing from the local view")
}

fn done(ctx: &Ctx, store: &Store, id: RecordId, sentence: &str) -> Result<()> {
    let e = reload(store, id)?;
    if ctx.printer.json {
        return ctx.printer.json(&evaluation_json(store, &e)?);
    }
    ctx.printer.say(sentence);
    Ok(())
}

fn subject(e: &Rec) -> Result<GoalSubject> {
    rep_of(e)
        .map(GoalSubject::Rep)
        .context("the evaluation has no readable rep")
}

fn draft(ctx: &Ctx, rep: &str, period: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let period = parse_period(period)?;
    let rep = resolve_rep(&store, rep)?;
    let rep_id = UserId(rep.id.0);
    require_access(
        &store,
        &cfg,
        "evaluations",
        GoalSubject::Rep(rep_id),
        true,
        "draft evaluations",
    )?;
    let Some(tv) = template_for(&store, team_of(&store, rep_id)?)? else {
        return fail_hint(
            "there is no evaluation template yet",
            "HQ sets one: fieldsync evaluation template set --line visits:50 --line sales:50; then fieldsync sync",
        );
    };
    let period_text = period.to_string();
    let rep_text = rep_id.to_string();
    let mut goals = BTreeMap::<Metric, f64>::new();
    for g in store.list("goals")? {
        let values = g.state.values();
        let plain = PlainRecord {
            collection: "goals",
            id: g.id,
            archived: g.archived,
            fields: &values,
        };
        if let Some((GoalSubject::Rep(u), spec)) = GoalSpec::from_record(&plain)
            && !g.archived
            && u == rep_id
            && spec.period == period
        {
            goals.insert(spec.metric, spec.target);
        }
    }
    let ix = fact_index(&store, Some(cfg.user.id))?;
    let card = scorecard(&tv.template, &period, &ix.facts_for_rep(rep_id), &goals);
    let lines = serde_json::to_string(&card.lines)?;
    let existing = store.list("evaluations")?.into_iter().find(|e| {
        !e.archived
            && e.str("rep_id") == Some(rep_text.as_str())
            && e.str("period") == Some(period_text.as_str())
    });
    let mut fields = Fields::new();
    fields.insert("lines".into(), json!(lines));
    fields.insert("metric_score".into(), json!(card.metric_score));
    fields.insert("attainment".into(), json!(card.attainment));
    let now = Utc::now();
    let short_rep = cell(&rep, "username");
    let (id, drafts, verb) = match existing {
        Some(e) if status(&e) != "draft" => {
            return fail_hint(
                format!(
                    "the evaluation of {short_rep} for {period_text} is already {}",
                    status(&e)
                ),
                format!("see it with: fieldsync evaluation show {}", e.id),
            );
        }
        Some(e) if e.str("template_id") == Some(tv.rec.id.to_string().as_str()) => {
            if let Some(r) = e.get("rating").and_then(Value::as_u64) {
                let o = overall(card.metric_score, r as u8, tv.template.rating_weight);
                fields.insert("score".into(), json!(o.score));
                let plan = active_plan(&store)?;
                let value = plan.as_ref().and_then(|p| match p.plan.basis {
                    Basis::Score => Some(o.score),
                    Basis::Attainment => card.attainment,
                });
                fields.insert("tier".into(), json!(tier_name(plan.as_ref(), value)));
            }
            (
                e.id,
                vec![Draft::patch("evaluations", e.id, fields)],
                "Recomputed",
            )
        }
        other => {
            let id = RecordId::new_v7(now);
            fields.retain(|_, v| !v.is_null());
            fields.insert("rep_id".into(), json!(rep_id));
            fields.insert("period".into(), json!(period_text));
            fields.insert("template_id".into(), json!(tv.rec.id));
            fields.insert("template_version".into(), json!(tv.version));
            let mut drafts = Vec::new();
            // A draft made with an older template is replaced by one made with the current one.
            if let Some(old) = other {
                drafts.push(Draft::archive("evaluations", old.id));
            }
            drafts.push(Draft::create("evaluations", id, fields));
            (id, drafts, "Drafted")
        }
    };
    store.write(drafts)?;
    let e = reload(&store, id)?;
    if ctx.printer.json {
        return ctx.printer.json(&evaluation_json(&store, &e)?);
    }
    ctx.printer.say(&format!(
        "{verb} evaluation {} of {short_rep} for {period_text} (template v{}).",
        store.shortener("evaluations")?.get(&id),
        tv.version
    ));
    print_lines(ctx, &stored_lines(&e))?;
    ctx.printer.say(&format!(
        "Metric score: {}. Next: fieldsync evaluation rate {} --rating 1-5 --comment TEXT",
        card.metric_score
            .map_or_else(|| "none (no scored line)".to_owned(), |s| num(round1(s))),
        store.shortener("evaluations")?.get(&id)
    ));
    Ok(())
}

fn print_lines(ctx: &Ctx, lines: &[ScoreLine]) -> Result<()> {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), num);
    let rows: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.metric.as_str().to_owned(),
                num(l.weight),
                match (l.target, l.target_source) {
                    (Some(t), Some(s)) => format!(
                        "{} ({})",
                        num(t),
                        serde_json::to_value(s)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ),
                    _ => "-".to_owned(),
                },
                l.actual.map_or_else(|| "no data".to_owned(), num),
                l.attainment
                    .map_or_else(|| "-".to_owned(), |a| format!("{}%", num(a))),
                opt(l.score),
                l.explain(),
            ]
        })
        .collect();
    ctx.printer.table(
        &[
            "METRIC", "WEIGHT", "TARGET", "ACTUAL", "ATTAINED", "SCORE", "RULE",
        ],
        &rows,
    )
}

fn rate(ctx: &Ctx, query: &str, rating: u8, comment: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let e = find_evaluation(&store, query)?;
    let comment = comment.trim();
    if comment.is_empty() {
        return fail("--comment must not be empty: say why you gave this rating");
    }
    require_access(
        &store,
        &cfg,
        "evaluations",
        subject(&e)?,
        false,
        "rate evaluations",
    )?;
    if !role_writes(cfg.user.role, "rating") {
        return fail_hint(
            format!("a {} cannot rate evaluations", cfg.user.role),
            "your supervisor rates them",
        );
    }
    if status(&e) != "draft" {
        return fail(format!(
            "the evaluation is {}; only a draft can be rated",
            status(&e)
        ));
    }
    let Some(tv) = template_by_id(&store, e.str("template_id"))? else {
        return fail_hint(
            "the template this evaluation was drafted with is not on this device",
            "run fieldsync sync, then try again",
        );
    };
    let o = overall(
        e.get("metric_score").and_then(Value::as_f64),
        rating,
        tv.template.rating_weight,
    );
    let plan = active_plan(&store)?;
    let mut f = Fields::new();
    f.insert("rating".into(), json!(rating));
    f.insert("comment".into(), json!(comment));
    f.insert("score".into(), json!(o.score));
    let value = plan.as_ref().and_then(|p| match p.plan.basis {
        Basis::Score => Some(o.score),
        Basis::Attainment => e.get("attainment").and_then(Value::as_f64),
    });
    let tier = tier_name(plan.as_ref(), value);
    f.insert("tier".into(), json!(tier));
    store.write(vec![Draft::patch("evaluations", e.id, f)])?;
    done(
        ctx,
        &store,
        e.id,
        &format!(
            "Rated {rating} (rating score {}). {}{}",
            num(rating_score(rating)),
            o.explain,
            tier.map(|t| format!("; tier {t}")).unwrap_or_default()
        ),
    )
}

fn transition(store: &mut Store, e: &Rec, to: &str, fields: Fields) -> Result<()> {
    let change = StateChange {
        field: "status".into(),
        from: status(e).to_owned(),
        to: to.to_owned(),
    };
    store.write(vec![Draft::transition("evaluations", e.id, change, fields)])?;
    Ok(())
}

fn submit(ctx: &Ctx, query: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let e = find_evaluation(&store, query)?;
    require_access(
        &store,
        &cfg,
        "evaluations",
        subject(&e)?,
        false,
        "submit evaluations",
    )?;
    if status(&e) != "draft" {
        return fail(format!("the evaluation is already {}", status(&e)));
    }
    let (Some(rating), Some(comment)) = (e.get("rating").cloned(), e.get("comment").cloned())
    else {
        return fail_hint(
            "the evaluation has no rating and comment yet",
            format!(
                "rate it first: fieldsync evaluation rate {} --rating 1-5 --comment TEXT",
                e.id
            ),
        );
    };
    let mut f = Fields::new();
    f.insert("rating".into(), rating);
    f.insert("comment".into(), comment);
    transition(&mut store, &e, "submitted", f)?;
    done(
        ctx,
        &store,
        e.id,
        "Submitted; the rep sees it after both of you sync.",
    )
}

fn ack(ctx: &Ctx, query: &str, dispute: bool, comment: Option<String>) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let e = find_evaluation(&store, query)?;
    if rep_of(&e) != Some(cfg.user.id) {
        return fail_hint(
            "only the rep the evaluation is about can acknowledge or dispute it",
            "`fieldsync evaluation list` shows whose each evaluation is",
        );
    }
    if status(&e) != "submitted" {
        return fail(format!(
            "the evaluation is {}; only a submitted evaluation can be acknowledged or disputed",
            status(&e)
        ));
    }
    let comment = comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if dispute && comment.is_none() {
        return fail_hint(
            "a dispute needs a comment",
            "add --comment \"what is wrong\"",
        );
    }
    let mut f = Fields::new();
    if let Some(c) = &comment {
        f.insert("rep_comment".into(), json!(c));
    }
    let to = if dispute { "disputed" } else { "acknowledged" };
    transition(&mut store, &e, to, f)?;
    done(ctx, &store, e.id, &format!("Evaluation {to}."))
}

/// Whether the write rules let `role` write `field` of an evaluation at all.
fn role_writes(role: Role, field: &str) -> bool {
    schema::collection("evaluations").is_some_and(|c| {
        sync_protocol::schema::rules::grants(c, field, false)
            .iter()
            .any(|g| g.role == role)
    })
}

fn calibrate(ctx: &Ctx, query: &str, score: f64, reason: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let e = find_evaluation(&store, query)?;
    if !role_writes(cfg.user.role, "calibration_reason") {
        return fail_hint(
            format!("a {} cannot calibrate evaluations", cfg.user.role),
            "HQ calibrates evaluations",
        );
    }
    if !(0.0..=100.0).contains(&score) || !score.is_finite() {
        return fail(format!("--score must be between 0 and 100, got {score}"));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return fail("--reason must not be empty: say why the score changes");
    }
    if !matches!(status(&e), "acknowledged" | "disputed") {
        return fail(format!(
            "the evaluation is {}; only an acknowledged or disputed evaluation can be calibrated",
            status(&e)
        ));
    }
    let plan = active_plan(&store)?;
    let value = plan.as_ref().and_then(|p| match p.plan.basis {
        Basis::Score => Some(score),
        Basis::Attainment => e.get("attainment").and_then(Value::as_f64),
    });
    let tier = tier_name(plan.as_ref(), value);
    let mut f = Fields::new();
    f.insert("score".into(), json!(round1(score)));
    f.insert("calibration_reason".into(), json!(reason));
    if let Some(t) = &tier {
        f.insert("tier".into(), json!(t));
    }
    let before = e.get("score").and_then(Value::as_f64);
    transition(&mut store, &e, "final", f)?;
    done(
        ctx,
        &store,
        e.id,
        &format!(
            "Calibrated {} -> {}; the evaluation is final{}.",
            before.map_or_else(|| "-".to_owned(), num),
            num(round1(score)),
            tier.map(|t| format!(" (tier {t})")).unwrap_or_default()
        ),
    )
}

fn list(
    ctx: &Ctx,
    rep: Option<&str>,
    period: Option<&str>,
    status_filter: Option<&str>,
) -> Result<()> {
    let store = ctx.read_store()?;
    if let Some(s) = status_filter
        && !STATUSES.contains(&s)
    {
        return fail(format!(
            "--status {s:?} is not one of {}",
            STATUSES.join(", ")
        ));
    }
    let rep = rep
        .map(|r| super::goal::resolve_user(&store, r))
        .transpose()?
        .map(|r| r.id.to_string());
    let period = period.map(parse_period).transpose()?.map(|p| p.to_string());
    let is_rep = is_rep(ctx)?;
    let items: Vec<Rec> = store
        .list("evaluations")?
        .into_iter()
        .filter(|e| !e.archived)
        .filter(|e| !is_rep || status(e) != "draft")
        .filter(|e| rep.as_deref().is_none_or(|r| e.str("rep_id") == Some(r)))
        .filter(|e| period.as_deref().is_none_or(|p| e.str("period") == Some(p)))
        .filter(|e| status_filter.is_none_or(|s| status(e) == s))
        .collect();
    if ctx.printer.json {
        let out: Vec<Value> = items
            .iter()
            .map(|e| evaluation_json(&store, e).map(Value::Object))
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    if items.is_empty() {
        ctx.printer.say("No evaluations.");
        return Ok(());
    }
    let short = store.shortener("evaluations")?;
    let n = |e: &Rec, f: &str| {
        e.get(f)
            .and_then(Value::as_f64)
            .map(num)
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for e in &items {
        rows.push(vec![
            format!("{}{}", short.get(&e.id), mark(e)),
            who(&store, e.str("rep_id"))?,
            cell(e, "period"),
            status(e).to_owned(),
            n(e, "metric_score"),
            n(e, "rating"),
            n(e, "score"),
            cell(e, "tier"),
        ]);
    }
    ctx.printer.table(
        &[
            "ID", "REP", "PERIOD", "STATUS", "METRICS", "RATING", "SCORE", "TIER",
        ],
        &rows,
    )
}

/// Whether the signed-in user is a rep (reps do not see drafts).
fn is_rep(ctx: &Ctx) -> Result<bool> {
    Ok(ctx.config()?.is_some_and(|c| c.user.role == Role::Rep))
}

fn show(ctx: &Ctx, query: &str) -> Result<()> {
    let store = ctx.read_store()?;
    let e = find_evaluation(&store, query)?;
    if is_rep(ctx)? && status(&e) == "draft" {
        return fail_hint(
            "this evaluation is still a draft",
            "your supervisor submits it when it is ready; then fieldsync sync",
        );
    }
    let m = evaluation_json(&store, &e)?;
    if ctx.printer.json {
        return ctx.printer.json(&m);
    }
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let number = |k: &str| {
        m.get(k)
            .and_then(Value::as_f64)
            .map(num)
            .unwrap_or_default()
    };
    let mut pairs = vec![
        ("evaluation", e.id.to_string()),
        ("rep", text("rep")),
        ("period", cell(&e, "period")),
        ("status", status(&e).to_owned()),
        (
            "template",
            format!(
                "v{}",
                e.get("template_version")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            ),
        ),
    ];
    if e.pending {
        pairs.push(("sync", "not yet synced".into()));
    }
    ctx.printer.pairs(&pairs)?;
    ctx.printer.line("")?;
    print_lines(ctx, &stored_lines(&e))?;
    ctx.printer.line("")?;
    let weights: f64 = stored_lines(&e)
        .iter()
        .filter(|l| l.score.is_some())
        .map(|l| l.weight)
        .sum();
    let mut pairs = vec![
        (
            "metric score",
            if m.get("metric_score").is_some_and(Value::is_f64) {
                format!(
                    "{} = Σ weight × score ÷ Σ weight of scored lines ({})",
                    number("metric_score"),
                    num(weights)
                )
            } else {
                "none (no scored line)".to_owned()
            },
        ),
        ("attainment", number("attainment")),
        ("rating", number("rating")),
        ("comment", text("comment")),
        ("overall", text("overall_explain")),
        ("score", number("score")),
        ("tier", text("tier")),
        ("rep comment", text("rep_comment")),
        ("calibration", text("calibration_reason")),
    ];
    if let Some(plan) = active_plan(&store)?
        && let Some(steps) = suggestion_lines(&plan, &e)
    {
        pairs.push((
            "plan",
            format!("{} ({})", plan.name, plan.plan.basis.as_str()),
        ));
        pairs.push(("tier arithmetic", steps.join("; ")));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    ctx.printer.pairs(&pairs)
}

fn template_set(
    ctx: &Ctx,
    team: Option<&str>,
    lines: &[String],
    rating_weight: f64,
    note: Option<String>,
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let coll = schema::collection("evaluation_templates").context("unknown collection")?;
    if coll.access_for(cfg.user.role).create == Reach::None {
        return fail_hint(
            format!("a {} cannot edit evaluation templates", cfg.user.role),
            "HQ edits templates; `fieldsync evaluation template list` shows them",
        );
    }
    let template = Template::parse(lines, rating_weight)
        .map_err(|e| Failure::new(format!("{e} (nothing was saved)")))?;
    let team = team
        .map(|t| {
            let q = t.trim();
            store
                .list("teams")?
                .into_iter()
                .find(|r| {
                    r.id.to_string().eq_ignore_ascii_case(q)
                        || r.str("name").is_some_and(|n| n.eq_ignore_ascii_case(q))
                })
                .map_or_else(
                    || {
                        fail_hint(
                            format!("no team {q:?} in the local directory"),
                            "run fieldsync sync to fetch the directory",
                        )
                    },
                    Ok,
                )
        })
        .transpose()?;
    let team_id = team.as_ref().map(|t| TeamId(t.id.0));
    let version = templates(&store)?
        .iter()
        .filter(|v| v.team == team_id)
        .map(|v| v.version)
        .max()
        .unwrap_or(0)
        + 1;
    let now = Utc::now();
    let id = RecordId::new_v7(now);
    let mut f = Fields::new();
    if let Some(t) = team_id {
        f.insert("team_id".into(), json!(t));
    }
    f.insert("version".into(), json!(version));
    let canonical: Vec<String> = template.lines.iter().map(ToString::to_string).collect();
    f.insert("lines".into(), json!(canonical));
    f.insert("rating_weight".into(), json!(rating_weight));
    if let Some(n) = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        f.insert("note".into(), json!(n));
    }
    f.insert("created_at".into(), json!(format_ts(now)));
    store.write(vec![Draft::create("evaluation_templates", id, f)])?;
    let rec = store
        .get(&id)?
        .context("the template is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&template_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Set the {} evaluation template, version {version}: {} (rating weight {}%).",
        team.as_ref().map_or_else(
            || "default".to_owned(),
            |t| format!("{} team's", cell(t, "name"))
        ),
        canonical.join(" "),
        num(rating_weight)
    ));
    Ok(())
}

fn template_json(store: &Store, rec: &Rec) -> Result<Value> {
    let mut m = record_json(rec);
    m.insert(
        "team".into(),
        json!(match rec.str("team_id") {
            Some(t) => who(store, Some(t))?,
            None => "default".to_owned(),
        }),
    );
    Ok(Value::Object(m))
}

fn template_list(ctx: &Ctx, all: bool) -> Result<()> {
    let store = ctx.read_store()?;
    let versions = templates(&store)?;
    let shown: Vec<&TemplateVersion> = if all {
        versions.iter().collect()
    } else {
        versions
            .iter()
            .enumerate()
            .filter(|(i, v)| !versions[i + 1..].iter().any(|w| w.team == v.team))
            .map(|(_, v)| v)
            .collect()
    };
    if ctx.printer.json {
        let out: Vec<Value> = shown
            .iter()
            .map(|v| template_json(&store, &v.rec))
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    if shown.is_empty() {
        ctx.printer.say("No evaluation templates.");
        return Ok(());
    }
    let mut rows = Vec::new();
    for v in shown {
        rows.push(vec![
            v.team.map_or_else(
                || Ok("default".to_owned()),
                |t| who(&store, Some(&t.to_string())),
            )?,
            v.version.to_string(),
            v.template
                .lines
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            format!("{}%", num(v.template.rating_weight)),
            cell(&v.rec, "note"),
        ]);
    }
    ctx.printer.table(
        &["TEAM", "VERSION", "LINES", "RATING WEIGHT", "NOTE"],
        &rows,
    )
}

/// The tier arithmetic of an evaluation under the active plan.
pub(crate) fn suggestion_lines(plan: &ActivePlan, e: &Rec) -> Option<Vec<String>> {
    let value = basis_value(e, plan.plan.basis)?;
    Some(suggest(&plan.plan, value, plan.minor_digits()).steps)
}

/// Run an evaluation command.
pub fn run(ctx: &Ctx, cmd: EvaluationCmd) -> Result<()> {
    match cmd {
        EvaluationCmd::Draft { rep, period } => draft(ctx, &rep, &period),
        EvaluationCmd::Rate {
            evaluation,
            rating,
            comment,
        } => rate(ctx, &evaluation, rating, &comment),
        EvaluationCmd::Submit { evaluation } => submit(ctx, &evaluation),
        EvaluationCmd::Ack {
            evaluation,
            dispute,
            comment,
        } => ack(ctx, &evaluation, dispute, comment),
        EvaluationCmd::Calibrate {
            evaluation,
            score,
            reason,
        } => calibrate(ctx, &evaluation, score, &reason),
        EvaluationCmd::List {
            rep,
            period,
            status,
        } => list(ctx, rep.as_deref(), period.as_deref(), status.as_deref()),
        EvaluationCmd::Show { evaluation } => show(ctx, &evaluation),
        EvaluationCmd::Template(TemplateCmd::Set {
            team,
            lines,
            rating_weight,
            note,
        }) => template_set(ctx, team.as_deref(), &lines, rating_weight, note),
        EvaluationCmd::Template(TemplateCmd::List { all }) => template_list(ctx, all),
    }
}
