//! `fieldsync training ...`: courses, assignments and completions.

use super::goal::{num, parse_day, require_access, resolve_subject, today, who};
use super::{Ctx, cell, mark, record_json};
use crate::error::{fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use sync_protocol::metrics::GoalSubject;
use sync_protocol::schema::{self, Relation, rules};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, OpKind, RecordId, StateChange, UserId};

/// `fieldsync training ...`
#[derive(Debug, Subcommand)]
pub enum TrainingCmd {
    /// Training courses (HQ adds them).
    #[command(subcommand)]
    Course(CourseCmd),
    /// Assign a course to a rep, or to every rep of a team.
    #[command(
        after_help = "Examples:\n  fieldsync training assign \"Product basics\" --to mei --due 2026-12-15\n  fieldsync training assign 0193a1b2 --to north --due 2026-12-31"
    )]
    Assign {
        /// Course: id, id prefix or exact title.
        course: String,
        /// Rep (username or id) or team (name or id).
        #[arg(long)]
        to: String,
        /// Due date, YYYY-MM-DD.
        #[arg(long)]
        due: String,
    },
    /// Mark one of your assignments completed.
    #[command(
        after_help = "Examples:\n  fieldsync training complete 0193a1b2\n  fieldsync training complete 0193a1b2 --score 92 --evidence \"certificate 2026-118\""
    )]
    Complete {
        /// Assignment id or prefix (see `fieldsync training list`).
        assignment: String,
        /// Score 0-100.
        #[arg(long, allow_negative_numbers = true)]
        score: Option<i64>,
        /// Evidence, e.g. a certificate number.
        #[arg(long)]
        evidence: Option<String>,
    },
    /// Training assignments.
    #[command(
        after_help = "Examples:\n  fieldsync training list\n  fieldsync training list --overdue --json"
    )]
    List {
        /// Only assignments past their due date and not completed.
        #[arg(long)]
        overdue: bool,
    },
}

/// `fieldsync training course ...`
#[derive(Debug, Subcommand)]
pub enum CourseCmd {
    /// Add a course (HQ).
    #[command(
        after_help = "Required onboarding courses are assigned automatically to every new rep.\n\nExamples:\n  fieldsync training course add \"Welcome to fieldsync\" --kind onboarding --hours 2 --required-for rep\n  fieldsync training course add \"Product basics\" --kind product --hours 3.5"
    )]
    Add {
        /// Title.
        title: String,
        /// Kind of course.
        #[arg(long, value_enum)]
        kind: CourseKind,
        /// Length in hours.
        #[arg(long, allow_negative_numbers = true)]
        hours: f64,
        /// Roles that must take it (repeatable).
        #[arg(long, value_enum, value_name = "ROLE")]
        required_for: Vec<RoleArg>,
    },
    /// List courses.
    List,
}

/// Kinds of course.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CourseKind {
    /// Onboarding of new staff.
    Onboarding,
    /// Product knowledge.
    Product,
    /// Sales skills.
    Sales,
    /// Customer service.
    Service,
    /// A seminar.
    Seminar,
}

impl CourseKind {
    fn as_str(self) -> &'static str {
        match self {
            CourseKind::Onboarding => "onboarding",
            CourseKind::Product => "product",
            CourseKind::Sales => "sales",
            CourseKind::Service => "service",
            CourseKind::Seminar => "seminar",
        }
    }
}

/// A role, as a flag value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Reps.
    Rep,
    /// Supervisors.
    Supervisor,
    /// HQ.
    Hq,
    /// Admins.
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Rep => "rep",
            RoleArg::Supervisor => "supervisor",
            RoleArg::Hq => "hq",
            RoleArg::Admin => "admin",
        }
    }
}

fn resolve_course(store: &Store, q: &str) -> Result<Rec> {
    let t = q.trim();
    let courses = store.list("courses")?;
    let titled: Vec<&Rec> = courses
        .iter()
        .filter(|c| !c.archived && c.str("title").is_some_and(|n| n.eq_ignore_ascii_case(t)))
        .collect();
    match titled.len() {
        1 => Ok(titled[0].clone()),
        0 => store.resolve_record("courses", "course", t),
        _ => fail_hint(
            format!("{} courses are titled {t:?}", titled.len()),
            "use the course id from fieldsync training course list",
        ),
    }
}

/// An assignment as JSON with its course and rep names.
fn assignment_json(store: &Store, a: &Rec) -> Result<Value> {
    let mut m = record_json(a);
    let course = a
        .str("course_id")
        .and_then(|c| c.parse::<RecordId>().ok())
        .map(|c| store.get(&c))
        .transpose()?
        .flatten();
    m.insert("rep".into(), json!(who(store, a.str("rep_id"))?));
    m.insert(
        "course".into(),
        json!(course.as_ref().and_then(|c| c.str("title"))),
    );
    m.insert(
        "hours".into(),
        json!(course.as_ref().and_then(|c| c.get("hours").cloned())),
    );
    m.insert("overdue".into(), json!(overdue(a)));
    Ok(Value::Object(m))
}

fn overdue(a: &Rec) -> bool {
    a.str("status") == Some("assigned")
        && a.str("due")
            .and_then(sync_protocol::time::parse_date)
            .is_some_and(|d| d < today())
}

fn course_add(
    ctx: &Ctx,
    title: &str,
    kind: CourseKind,
    hours: f64,
    required_for: &[RoleArg],
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let courses = schema::collection("courses").context("the schema has courses")?;
    if rules::may_act(courses, OpKind::Create, cfg.user.role, Relation::Other).is_err() {
        return fail_hint(
            format!("a {} cannot add courses", cfg.user.role),
            "HQ adds courses; supervisors assign them with fieldsync training assign",
        );
    }
    let title = title.trim();
    if title.is_empty() {
        return fail("the course title is empty");
    }
    if !hours.is_finite() || hours <= 0.0 {
        return fail(format!("--hours must be more than 0, got {hours}"));
    }
    let mut roles: Vec<&str> = required_for.iter().map(|r| r.as_str()).collect();
    roles.sort_unstable();
    roles.dedup();
    let id = RecordId::new_v7(Utc::now());
    let mut f = Fields::new();
    f.insert("title".into(), json!(title));
    f.insert("kind".into(), json!(kind.as_str()));
    f.insert("hours".into(), json!(hours));
    if !roles.is_empty() {
        f.insert("required_for".into(), json!(roles));
    }
    store.write(vec![Draft::create("courses", id, f)])?;
    let rec = store.get(&id)?.context("the course is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&record_json(&rec));
    }
    ctx.printer.say(&format!(
        "Added course {} {title:?} ({}, {} h).",
        store.shortener("courses")?.get(&id),
        kind.as_str(),
        num(hours)
    ));
    Ok(())
}

fn course_list(ctx: &Ctx) -> Result<()> {
    let store = ctx.read_store()?;
    let courses: Vec<Rec> = store
        .list("courses")?
        .into_iter()
        .filter(|c| !c.archived)
        .collect();
    if ctx.printer.json {
        let out: Vec<Value> = courses
            .iter()
            .map(|c| Value::Object(record_json(c)))
            .collect();
        return ctx.printer.json(&out);
    }
    if courses.is_empty() {
        ctx.printer.say("No courses.");
        return Ok(());
    }
    let short = store.shortener("courses")?;
    let rows: Vec<Vec<String>> = courses
        .iter()
        .map(|c| {
            vec![
                short.get(&c.id),
                format!("{}{}", cell(c, "title"), mark(c)),
                cell(c, "kind"),
                c.get("hours")
                    .and_then(Value::as_f64)
                    .map(num)
                    .unwrap_or_default(),
                c.get("required_for")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    ctx.printer
        .table(&["ID", "TITLE", "KIND", "HOURS", "REQUIRED FOR"], &rows)
}

fn assign(ctx: &Ctx, course: &str, to: &str, due: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let course = resolve_course(&store, course)?;
    let due = parse_day(due, "--due")?;
    let (subject, rec) = resolve_subject(&store, to)?;
    let reps: Vec<UserId> = match subject {
        GoalSubject::Rep(u) => {
            if rec.str("role") != Some("rep") {
                return fail(format!(
                    "{} is a {}; training is assigned to reps or teams",
                    cell(&rec, "username"),
                    cell(&rec, "role")
                ));
            }
            vec![u]
        }
        GoalSubject::Team(t) => {
            let tid = t.to_string();
            store
                .list("users")?
                .into_iter()
                .filter(|u| {
                    !u.archived
                        && u.str("role") == Some("rep")
                        && u.get("active").and_then(Value::as_bool) != Some(false)
                        && u.str("team_id") == Some(tid.as_str())
                })
                .map(|u| UserId(u.id.0))
                .collect()
        }
    };
    if reps.is_empty() {
        return fail(format!("team {} has no active reps", cell(&rec, "name")));
    }
    for r in &reps {
        require_access(
            &store,
            &cfg,
            "training_assignments",
            GoalSubject::Rep(*r),
            true,
            "assign training",
        )?;
    }
    let cid = course.id.to_string();
    let open: Vec<String> = store
        .list("training_assignments")?
        .into_iter()
        .filter(|a| {
            !a.archived
                && a.str("course_id") == Some(cid.as_str())
                && a.str("status") != Some("waived")
        })
        .filter_map(|a| a.str("rep_id").map(str::to_owned))
        .collect();
    let now = Utc::now();
    let mut drafts = Vec::new();
    let mut skipped = Vec::new();
    let mut ids = Vec::new();
    for r in reps {
        if open.contains(&r.to_string()) {
            skipped.push(who(&store, Some(&r.to_string()))?);
            continue;
        }
        let id = RecordId::new_v7(now);
        let mut f = Fields::new();
        f.insert("rep_id".into(), json!(r));
        f.insert("course_id".into(), json!(course.id));
        f.insert("due".into(), json!(due.to_string()));
        drafts.push(Draft::create("training_assignments", id, f));
        ids.push(id);
    }
    if drafts.is_empty() {
        return fail(format!(
            "{} already {} {:?}",
            skipped.join(", "),
            if skipped.len() == 1 { "has" } else { "have" },
            cell(&course, "title")
        ));
    }
    store.write(drafts)?;
    if ctx.printer.json {
        let out: Vec<Value> = ids
            .iter()
            .filter_map(|id| store.get(id).transpose())
            .map(|a| assignment_json(&store, &a?))
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    ctx.printer.say(&format!(
        "Assigned {:?} to {} {}, due {due}.",
        cell(&course, "title"),
        ids.len(),
        if ids.len() == 1 { "rep" } else { "reps" }
    ));
    if !skipped.is_empty() {
        ctx.printer.say(&format!(
            "Already assigned, skipped: {}.",
            skipped.join(", ")
        ));
    }
    Ok(())
}

fn complete(
    ctx: &Ctx,
    assignment: &str,
    score: Option<i64>,
    evidence: Option<String>,
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let a = store.resolve_record("training_assignments", "assignment", assignment)?;
    if a.str("rep_id") != Some(cfg.user.id.to_string().as_str()) {
        return fail_hint(
            format!(
                "this assignment belongs to {}; only the rep completes their own training",
                who(&store, a.str("rep_id"))?
            ),
            "the rep runs fieldsync training complete on their laptop",
        );
    }
    match a.str("status") {
        Some("assigned") => {}
        Some(s) => return fail(format!("this assignment is already {s}")),
        None => return fail("this assignment has no status"),
    }
    if let Some(s) = score
        && !(0..=100).contains(&s)
    {
        return fail(format!("--score must be 0-100, got {s}"));
    }
    let now = Utc::now();
    let mut f = Fields::new();
    f.insert("completed_at".into(), json!(format_ts(now)));
    if let Some(s) = score {
        f.insert("score".into(), json!(s));
    }
    if let Some(e) = evidence.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        f.insert("evidence".into(), json!(e));
    }
    let change = StateChange {
        field: "status".into(),
        from: "assigned".into(),
        to: "completed".into(),
    };
    store.write(vec![Draft::transition(
        "training_assignments",
        a.id,
        change,
        f,
    )])?;
    let rec = store.get(&a.id)?.context("the assignment is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&assignment_json(&store, &rec)?);
    }
    let j = assignment_json(&store, &rec)?;
    ctx.printer.say(&format!(
        "Completed {:?}.",
        j["course"].as_str().unwrap_or("the course")
    ));
    Ok(())
}

fn list(ctx: &Ctx, only_overdue: bool) -> Result<()> {
    let store = ctx.read_store()?;
    let items: Vec<Rec> = store
        .list("training_assignments")?
        .into_iter()
        .filter(|a| !a.archived && (!only_overdue || overdue(a)))
        .collect();
    let out: Vec<Value> = items
        .iter()
        .map(|a| assignment_json(&store, a))
        .collect::<Result<_>>()?;
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if out.is_empty() {
        ctx.printer.say(if only_overdue {
            "No overdue training."
        } else {
            "No training assignments."
        });
        return Ok(());
    }
    let short = store.shortener("training_assignments")?;
    let rows: Vec<Vec<String>> = items
        .iter()
        .zip(&out)
        .map(|(a, j)| {
            let s = |k: &str| j[k].as_str().unwrap_or("").to_owned();
            vec![
                short.get(&a.id),
                format!("{}{}", s("rep"), mark(a)),
                s("course"),
                j["hours"].as_f64().map(num).unwrap_or_default(),
                s("due"),
                if overdue(a) {
                    "overdue".to_owned()
                } else {
                    s("status")
                },
                j["score"]
                    .as_i64()
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    ctx.printer.table(
        &["ID", "REP", "COURSE", "HOURS", "DUE", "STATUS", "SCORE"],
        &rows,
    )
}

/// Run a training command.
pub fn run(ctx: &Ctx, cmd: TrainingCmd) -> Result<()> {
    match cmd {
        TrainingCmd::Course(CourseCmd::Add {
            title,
            kind,
            hours,
            required_for,
        }) => course_add(ctx, &title, kind, hours, &required_for),
        TrainingCmd::Course(CourseCmd::List) => course_list(ctx),
        TrainingCmd::Assign { course, to, due } => assign(ctx, &course, &to, &due),
        TrainingCmd::Complete {
            assignment,
            score,
            evidence,
        } => complete(ctx, &assignment, score, evidence),
        TrainingCmd::List { overdue } => list(ctx, overdue),
    }
}
