//! `fieldsync goal ...`: SMART goals with live progress, computed from the
//! local store so it works offline. Also the helpers the other management
//! commands share (resolving people and teams, periods, permissions, facts).

use super::{Ctx, cell, mark, record_json};
use crate::config::Config;
use crate::error::{fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};
use clap::Subcommand;
use serde_json::{Map, Value, json};
use sync_protocol::metrics::{
    FactIndex, FactIndexBuilder, GoalProgress, GoalSpec, GoalSubject, Metric, Period, PlainRecord,
    progress,
};
use sync_protocol::schema::{self, Reach, Relation, Role};
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId, TeamId, UserId};

/// `fieldsync goal ...`
#[derive(Debug, Subcommand)]
pub enum GoalCmd {
    /// Set (or change) a goal for a rep or a team. Supervisors set goals for
    /// their team, HQ for anyone; reps cannot set goals.
    #[command(
        after_help = "Changing an existing goal (same rep or team, metric and period) keeps its history: see `fieldsync goal history`.\n\nExamples:\n  fieldsync goal set mei --metric visits --target 40 --period 2026-11\n  fieldsync goal set north --metric sales --target 250000 --stretch 300000 --period 2026-Q4 --note \"new territory\""
    )]
    Set {
        /// Rep (username or id) or team (name or id).
        subject: String,
        /// Metric id, e.g. visits, sales, csat (see the README's metric table).
        #[arg(long)]
        metric: String,
        /// Target value.
        #[arg(long, allow_negative_numbers = true)]
        target: f64,
        /// Period: 2026-11, 2026-Q4, 2026-W48, 2026 or FROM..TO.
        #[arg(long)]
        period: String,
        /// Stretch target.
        #[arg(long, allow_negative_numbers = true)]
        stretch: Option<f64>,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Goals with actual, % attained, expected to date and pace.
    #[command(
        after_help = "Pace: behind = 10 % or more short of linear pace, ahead = 10 % or more ahead, otherwise on_track.\n\nExamples:\n  fieldsync goal list\n  fieldsync goal list --rep mei --period 2026-11 --json"
    )]
    List {
        /// Only goals of this rep (username or id).
        #[arg(long)]
        rep: Option<String>,
        /// Only goals for this period.
        #[arg(long)]
        period: Option<String>,
    },
    /// Every change of a goal: who, when, old -> new.
    History {
        /// Goal id or prefix.
        goal: String,
    },
}

// ---- shared helpers for the management commands ----

/// Today (UTC), the day goals are paced at.
pub(crate) fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Parse a period argument with a clear error.
pub(crate) fn parse_period(text: &str) -> Result<Period> {
    Period::parse(text).map_err(|e| {
        crate::error::Failure::new(e.to_string())
            .hint("e.g. --period 2026-11")
            .into()
    })
}

/// Parse a `YYYY-MM-DD` date argument.
pub(crate) fn parse_day(text: &str, what: &str) -> Result<NaiveDate> {
    match sync_protocol::time::parse_date(text.trim()) {
        Some(d) => Ok(d),
        None => fail_hint(
            format!("{what} {text:?} is not a date"),
            "write dates as YYYY-MM-DD, e.g. 2026-12-15",
        ),
    }
}

/// A user of the directory by id or username.
pub(crate) fn resolve_user(store: &Store, query: &str) -> Result<Rec> {
    let q = query.trim();
    let users = store.list("users")?;
    users
        .iter()
        .find(|u| {
            u.id.to_string().eq_ignore_ascii_case(q)
                || u.str("username").is_some_and(|n| n.eq_ignore_ascii_case(q))
        })
        .cloned()
        .map_or_else(
            || {
                fail_hint(
                    format!("no user {q:?} in the local directory"),
                    "check the username, or run fieldsync sync to fetch the directory",
                )
            },
            Ok,
        )
}

/// A user of the directory who is a rep.
pub(crate) fn resolve_rep(store: &Store, query: &str) -> Result<Rec> {
    let u = resolve_user(store, query)?;
    if u.str("role") != Some("rep") {
        return fail(format!(
            "{} is a {}, not a rep",
            cell(&u, "username"),
            cell(&u, "role")
        ));
    }
    Ok(u)
}

/// A rep or a team, by username, team name or id.
pub(crate) fn resolve_subject(store: &Store, query: &str) -> Result<(GoalSubject, Rec)> {
    if let Ok(u) = resolve_user(store, query) {
        return Ok((GoalSubject::Rep(UserId(u.id.0)), u));
    }
    let q = query.trim();
    let teams = store.list("teams")?;
    let hit = teams.iter().find(|t| {
        t.id.to_string().eq_ignore_ascii_case(q)
            || t.str("name").is_some_and(|n| n.eq_ignore_ascii_case(q))
    });
    match hit {
        Some(t) => Ok((GoalSubject::Team(TeamId(t.id.0)), t.clone())),
        None => fail_hint(
            format!("no rep or team {q:?} in the local directory"),
            "use a username or a team name; run fieldsync sync to fetch the directory",
        ),
    }
}

/// The team of a user, from the directory.
pub(crate) fn team_of(store: &Store, user: UserId) -> Result<Option<TeamId>> {
    Ok(store
        .get(&RecordId(user.0))?
        .and_then(|u| u.str("team_id").and_then(|t| t.parse().ok())))
}

/// The signed-in user's relation to a subject, by the server's rule: own,
/// team (same team, or the user supervises them), or other.
pub(crate) fn relation(store: &Store, cfg: &Config, subject: GoalSubject) -> Result<Relation> {
    let mine = cfg.user.team_id.or(team_of(store, cfg.user.id)?);
    Ok(match subject {
        GoalSubject::Rep(u) if u == cfg.user.id => Relation::Own,
        GoalSubject::Rep(u) => {
            let supervised = store
                .get(&RecordId(u.0))?
                .is_some_and(|r| r.str("supervisor_id") == Some(cfg.user.id.to_string().as_str()));
            if (mine.is_some() && team_of(store, u)? == mine) || supervised {
                Relation::Team
            } else {
                Relation::Other
            }
        }
        GoalSubject::Team(t) if Some(t) == mine => Relation::Team,
        GoalSubject::Team(_) => Relation::Other,
    })
}

/// Refuse (before writing anything) what the server would refuse.
pub(crate) fn require_access(
    store: &Store,
    cfg: &Config,
    collection: &str,
    subject: GoalSubject,
    create: bool,
    what: &str,
) -> Result<()> {
    let coll = schema::collection(collection).context("unknown collection")?;
    let access = coll.access_for(cfg.user.role);
    let reach = if create { access.create } else { access.change };
    let rel = relation(store, cfg, subject)?;
    if reach.covers(rel) {
        return Ok(());
    }
    let why = match (cfg.user.role, reach) {
        (_, Reach::None) => format!("a {} cannot {what}", cfg.user.role),
        (Role::Supervisor, _) => format!("a supervisor can only {what} for their own team"),
        _ => format!("you can only {what} for yourself"),
    };
    fail_hint(
        why,
        "ask your supervisor or HQ; `fieldsync whoami` shows your role",
    )
}

/// The collections besides visits that figures are computed from, parsed
/// in full by [`fact_index`].
const PARSED_FOR_FIGURES: [&str; 6] = [
    "users",
    "customers",
    "sales",
    "feedback",
    "courses",
    "training_assignments",
];

/// Every record the metrics are computed from, indexed. Customers created
/// offline (no owner yet) count for the signed-in user. Visits, by far the
/// most numerous, are read off the view's columns ([`Store::visit_facts`]).
pub(crate) fn fact_index(store: &Store, me: Option<UserId>) -> Result<FactIndex> {
    let mut b = FactIndexBuilder::new(me);
    for c in PARSED_FOR_FIGURES {
        for r in store.list(c)? {
            b.add_record(&PlainRecord {
                collection: &r.state.collection,
                id: r.id,
                archived: r.archived,
                fields: &r.state.values(),
            });
        }
    }
    for (id, fact) in store.visit_facts()? {
        b.add_fact(id, fact);
    }
    Ok(b.finish())
}

/// The facts of a goal's subject.
pub(crate) fn subject_facts(ix: &FactIndex, subject: GoalSubject) -> sync_protocol::metrics::Facts {
    match subject {
        GoalSubject::Rep(u) => ix.facts_for_rep(u),
        GoalSubject::Team(t) => ix.facts_for(&ix.team_members(t)),
    }
}

/// A number for display: at most two decimals, no trailing zeros.
pub(crate) fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Display name of a user or team record id.
pub(crate) fn who(store: &Store, id: Option<&str>) -> Result<String> {
    let Some(id) = id else {
        return Ok(String::new());
    };
    let Ok(rid) = id.parse::<RecordId>() else {
        return Ok(id.to_owned());
    };
    Ok(store
        .get(&rid)?
        .and_then(|r| r.str("username").or(r.str("name")).map(str::to_owned))
        .unwrap_or_else(|| id.to_owned()))
}

fn subject_of(goal: &Rec) -> Option<GoalSubject> {
    match (goal.str("rep_id"), goal.str("team_id")) {
        (Some(r), _) => r.parse().ok().map(GoalSubject::Rep),
        (None, Some(t)) => t.parse().ok().map(GoalSubject::Team),
        _ => None,
    }
}

/// A goal's progress today, as JSON, with the goal's fields. A rep's laptop
/// holds only the rep's own records, so for a team goal (`rep_view`) the
/// figures are left out and `partial` is true rather than showing a wrong sum.
pub(crate) fn goal_json(
    store: &Store,
    ix: &FactIndex,
    goal: &Rec,
    rep_view: bool,
) -> Result<Option<Value>> {
    let values = goal.state.values();
    let plain = PlainRecord {
        collection: "goals",
        id: goal.id,
        archived: goal.archived,
        fields: &values,
    };
    let Some((subject, spec)) = GoalSpec::from_record(&plain) else {
        return Ok(None);
    };
    let mut m = record_json(goal);
    m.insert(
        "subject".into(),
        json!(who(store, goal.str("rep_id").or(goal.str("team_id")))?),
    );
    let partial = rep_view && matches!(subject, GoalSubject::Team(_));
    m.insert("partial".into(), json!(partial));
    if partial {
        for k in [
            "actual",
            "attained_pct",
            "stretch_pct",
            "expected_to_date",
            "pace",
        ] {
            m.insert(k.into(), Value::Null);
        }
        m.insert("no_data".into(), json!(true));
    } else {
        add_progress(
            &mut m,
            &progress(&spec, &subject_facts(ix, subject), today()),
        );
    }
    Ok(Some(Value::Object(m)))
}

fn add_progress(m: &mut Map<String, Value>, p: &GoalProgress) {
    m.insert("actual".into(), json!(p.actual.value()));
    m.insert("no_data".into(), json!(p.actual.value().is_none()));
    m.insert("attained_pct".into(), json!(p.attained_pct));
    m.insert("stretch_pct".into(), json!(p.stretch_pct));
    m.insert("expected_to_date".into(), json!(p.expected_to_date));
    m.insert("elapsed".into(), json!(p.elapsed));
    m.insert("pace".into(), json!(p.pace.map(|x| x.as_str())));
}

fn set(
    ctx: &Ctx,
    subject: &str,
    metric: &str,
    target: f64,
    period: &str,
    stretch: Option<f64>,
    note: Option<String>,
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let Some(metric) = Metric::parse(metric.trim()) else {
        return fail_hint(
            format!("{metric:?} is not a metric"),
            format!("use one of {}", schema::METRIC_IDS.join(", ")),
        );
    };
    let period = parse_period(period)?;
    for (name, v) in [("target", Some(target)), ("stretch", stretch)] {
        if let Some(v) = v
            && (!v.is_finite() || v < 0.0)
        {
            return fail(format!("--{name} must be a number of 0 or more, got {v}"));
        }
    }
    let bound = match metric {
        Metric::Coverage | Metric::TrainingCompletion => Some((1.0, "a share: 0.8 means 80 %")),
        Metric::Csat => Some((5.0, "CSAT is a mean of 1-5 scores")),
        Metric::Nps => Some((100.0, "NPS runs up to 100")),
        _ => None,
    };
    if let Some((max, why)) = bound {
        for (name, v) in [("target", Some(target)), ("stretch", stretch)] {
            if let Some(v) = v
                && v > max
            {
                return fail_hint(
                    format!(
                        "--{name} {} is above {} for {}",
                        num(v),
                        num(max),
                        metric.as_str()
                    ),
                    why,
                );
            }
        }
    }
    if let Some(s) = stretch
        && s < target
        && !metric.lower_is_better()
    {
        return fail(format!(
            "--stretch {} is below --target {}",
            num(s),
            num(target)
        ));
    }
    let (subj, rec) = resolve_subject(&store, subject)?;
    if let GoalSubject::Rep(_) = subj
        && rec.str("role") != Some("rep")
    {
        return fail(format!(
            "{} is a {}; goals are set for reps or teams",
            cell(&rec, "username"),
            cell(&rec, "role")
        ));
    }
    require_access(&store, &cfg, "goals", subj, true, "set goals")?;
    let (rep_id, team_id) = match subj {
        GoalSubject::Rep(u) => (Some(u.to_string()), None),
        GoalSubject::Team(t) => (None, Some(t.to_string())),
    };
    let period_text = period.to_string();
    let existing = store.list("goals")?.into_iter().find(|g| {
        !g.archived
            && g.str("rep_id") == rep_id.as_deref()
            && g.str("team_id") == team_id.as_deref()
            && g.str("metric") == Some(metric.as_str())
            && g.str("period") == Some(period_text.as_str())
    });
    let now = Utc::now();
    let mut change = Fields::new();
    change.insert("changed_by".into(), json!(cfg.user.id));
    change.insert("changed_at".into(), json!(format_ts(now)));
    if let Some(r) = &rep_id {
        change.insert("rep_id".into(), json!(r));
    }
    if let Some(t) = &team_id {
        change.insert("team_id".into(), json!(t));
    }
    change.insert("new_target".into(), json!(target));
    let mut goal_fields = Fields::new();
    goal_fields.insert("target".into(), json!(target));
    if let Some(s) = stretch {
        goal_fields.insert("stretch".into(), json!(s));
        change.insert("new_stretch".into(), json!(s));
    }
    if let Some(n) = note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        goal_fields.insert("note".into(), json!(n));
        change.insert("new_note".into(), json!(n));
    }
    let (goal_id, draft, verb) = if let Some(g) = &existing {
        {
            let same = |f: &str, v: Option<&Value>| g.get(f) == v;
            if same("target", goal_fields.get("target"))
                && (stretch.is_none() || same("stretch", goal_fields.get("stretch")))
                && (note.is_none() || same("note", goal_fields.get("note")))
            {
                ctx.printer.say("The goal already has these values.");
                return print_goal(ctx, &store, &cfg, g.id);
            }
            for (f, old) in [
                ("target", "old_target"),
                ("stretch", "old_stretch"),
                ("note", "old_note"),
            ] {
                if let Some(v) = g.get(f) {
                    change.insert(old.into(), v.clone());
                }
            }
            if stretch.is_none() {
                change.remove("old_stretch");
            }
            if note.is_none() {
                change.remove("old_note");
            }
            (
                g.id,
                Draft::patch("goals", g.id, goal_fields),
                "Changed goal",
            )
        }
    } else {
        {
            let id = RecordId::new_v7(now);
            goal_fields.insert("metric".into(), json!(metric.as_str()));
            goal_fields.insert("period".into(), json!(period_text));
            if let Some(r) = &rep_id {
                goal_fields.insert("rep_id".into(), json!(r));
            }
            if let Some(t) = &team_id {
                goal_fields.insert("team_id".into(), json!(t));
            }
            (id, Draft::create("goals", id, goal_fields), "Set goal")
        }
    };
    change.insert("goal_id".into(), json!(goal_id));
    store.write(vec![
        draft,
        Draft::create("goal_changes", RecordId::new_v7(now), change),
    ])?;
    if !ctx.printer.json {
        ctx.printer.say(&format!(
            "{verb} {}: {} {} {} for {}.",
            store.shortener("goals")?.get(&goal_id),
            metric.as_str(),
            num(target),
            period_text,
            who(&store, rep_id.as_deref().or(team_id.as_deref()))?
        ));
    }
    print_goal(ctx, &store, &cfg, goal_id)
}

fn print_goal(ctx: &Ctx, store: &Store, cfg: &Config, id: RecordId) -> Result<()> {
    let g = store
        .get(&id)?
        .context("the goal is missing from the local view")?;
    let ix = fact_index(store, Some(cfg.user.id))?;
    if ctx.printer.json {
        return ctx
            .printer
            .json(&goal_json(store, &ix, &g, cfg.user.role == Role::Rep)?);
    }
    Ok(())
}

fn pct(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or_else(String::new, |p| format!("{}%", num(p)))
}

fn list(ctx: &Ctx, rep: Option<&str>, period: Option<&str>) -> Result<()> {
    let store = ctx.read_store()?;
    let cfg = ctx.config()?;
    let rep = rep.map(|r| resolve_user(&store, r)).transpose()?;
    let period = period.map(parse_period).transpose()?.map(|p| p.to_string());
    let ix = fact_index(&store, cfg.as_ref().map(|c| c.user.id))?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for g in store.list("goals")? {
        if g.archived
            || rep
                .as_ref()
                .is_some_and(|r| subject_of(&g) != Some(GoalSubject::Rep(UserId(r.id.0))))
            || period
                .as_deref()
                .is_some_and(|p| g.str("period") != Some(p))
        {
            continue;
        }
        let rep_view = cfg.as_ref().is_some_and(|c| c.user.role == Role::Rep);
        let Some(v) = goal_json(&store, &ix, &g, rep_view)? else {
            continue;
        };
        rows.push(vec![
            store.shortener("goals")?.get(&g.id),
            format!("{}{}", v["subject"].as_str().unwrap_or(""), mark(&g)),
            cell(&g, "metric"),
            cell(&g, "period"),
            v["target"].as_f64().map(num).unwrap_or_default(),
            v["actual"].as_f64().map_or_else(
                || {
                    if v["partial"] == json!(true) {
                        String::new()
                    } else {
                        "no data".to_owned()
                    }
                },
                num,
            ),
            pct(v.get("attained_pct")),
            v["expected_to_date"].as_f64().map(num).unwrap_or_default(),
            if v["partial"] == json!(true) {
                "team (see supervisor)".to_owned()
            } else {
                v["pace"].as_str().unwrap_or("-").to_owned()
            },
        ]);
        out.push(v);
    }
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if rows.is_empty() {
        ctx.printer.say("No goals.");
        return Ok(());
    }
    ctx.printer.table(
        &[
            "ID", "FOR", "METRIC", "PERIOD", "TARGET", "ACTUAL", "ATTAINED", "EXPECTED", "PACE",
        ],
        &rows,
    )
}

fn history(ctx: &Ctx, goal: &str) -> Result<()> {
    let store = ctx.read_store()?;
    let g = store.resolve_record("goals", "goal", goal)?;
    let gid = g.id.to_string();
    let mut changes: Vec<Rec> = store
        .list("goal_changes")?
        .into_iter()
        .filter(|c| c.str("goal_id") == Some(gid.as_str()))
        .collect();
    changes.sort_by(|a, b| a.str("changed_at").cmp(&b.str("changed_at")));
    if ctx.printer.json {
        let out: Vec<Value> = changes
            .iter()
            .map(|c| {
                let mut m = record_json(c);
                m.insert(
                    "changed_by_name".into(),
                    json!(who(&store, c.str("changed_by"))?),
                );
                Ok(Value::Object(m))
            })
            .collect::<Result<_>>()?;
        return ctx.printer.json(&out);
    }
    let arrow = |c: &Rec, f: &str| {
        let old = c.get(&format!("old_{f}"));
        let new = c.get(&format!("new_{f}"));
        let show = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.as_f64().map(num).unwrap_or_default(),
            Some(Value::String(s)) => s.clone(),
            _ => "-".to_owned(),
        };
        if new.is_none() || old == new {
            String::new()
        } else {
            format!("{} -> {}", show(old), show(new))
        }
    };
    let mut rows = Vec::new();
    for c in &changes {
        rows.push(vec![
            c.str("changed_at")
                .map(crate::output::local_time)
                .unwrap_or_default(),
            who(&store, c.str("changed_by"))?,
            arrow(c, "target"),
            arrow(c, "stretch"),
            arrow(c, "note"),
        ]);
    }
    ctx.printer
        .table(&["WHEN", "BY", "TARGET", "STRETCH", "NOTE"], &rows)
}

/// Run a goal command.
pub fn run(ctx: &Ctx, cmd: GoalCmd) -> Result<()> {
    match cmd {
        GoalCmd::Set {
            subject,
            metric,
            target,
            period,
            stretch,
            note,
        } => set(ctx, &subject, &metric, target, &period, stretch, note),
        GoalCmd::List { rep, period } => list(ctx, rep.as_deref(), period.as_deref()),
        GoalCmd::History { goal } => history(ctx, &goal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;
    use crate::store::{Identity, PulledPage};
    use chrono::SubsecRound;
    use sync_protocol::hlc::Hlc;
    use sync_protocol::merge::RecordState;
    use sync_protocol::metrics::compute;
    use sync_protocol::wire::{Change, PullResponse};
    use sync_protocol::{DeviceId, FieldState};

    fn fields(v: Value) -> Fields {
        let Value::Object(m) = v else {
            panic!("fields must be an object")
        };
        m.into_iter().collect()
    }

    fn hlc(millis: u64) -> Hlc {
        Hlc {
            millis,
            counter: 0,
            node: DeviceId(uuid::Uuid::from_u128(8)),
        }
    }

    /// A record as the server would send it.
    fn server_state(collection: &str, id: RecordId, values: Value) -> RecordState {
        let mut s = RecordState::new(id, collection);
        s.created = Some(hlc(1_700_000_000_000));
        for (k, value) in fields(values) {
            let at = hlc(1_700_000_000_000);
            s.fields.insert(k, FieldState { value, hlc: at });
        }
        s
    }

    fn id() -> RecordId {
        RecordId::new_v7(Utc::now())
    }

    #[test]
    fn visit_facts_from_the_view_columns_equal_those_of_the_full_records() {
        let dir = tempfile::tempdir().unwrap();
        let profile = Profile::locate(Some(dir.path().to_path_buf())).unwrap();
        let me = UserId(uuid::Uuid::from_u128(5));
        let them = UserId(uuid::Uuid::from_u128(9));
        let ident = Identity {
            device: DeviceId(uuid::Uuid::from_u128(6)),
            user: me,
            role: Role::Admin,
        };
        let mut store = Store::open(&profile, Some(ident)).unwrap();

        // Pulled: their customer and its visits (a supervisor's laptop
        // holds its team's records this way), one archived, one still
        // open.
        let (theirs, open) = (id(), id());
        let visit = |customer: RecordId, at: &str, extra: Value| {
            let mut f = fields(json!({"customer_id": customer.to_string(), "started_at": at}));
            f.extend(fields(extra));
            Value::Object(f.into_iter().collect())
        };
        let mut archived = server_state(
            "visits",
            id(),
            visit(theirs, "2026-11-08T09:00:00Z", json!({})),
        );
        archived.archived = Some(hlc(1_700_000_000_500));
        let pulled = [
            server_state(
                "customers",
                theirs,
                json!({"name": "Bolt", "created_at": "2026-11-02T08:00:00Z", "owner_id": them.to_string()}),
            ),
            server_state(
                "visits",
                id(),
                visit(
                    theirs,
                    "2026-11-05T09:00:00Z",
                    json!({"ended_at": "2026-11-05T10:00:00Z"}),
                ),
            ),
            server_state(
                "visits",
                id(),
                visit(theirs, "2026-11-06T17:00:00.250+08:00", json!({})),
            ),
            server_state(
                "visits",
                open,
                visit(theirs, "2026-11-07T09:00:00Z", json!({})),
            ),
            archived,
        ];
        let page = PullResponse {
            changes: pulled
                .into_iter()
                .enumerate()
                .map(|(i, record)| Change::Upsert {
                    seq: i as u64 + 1,
                    record,
                })
                .collect(),
            cursor: 5,
            checkpoint: 5,
            more: false,
            scope: None,
            server_clock: hlc(1_700_000_001_000),
        };
        let page: PulledPage =
            serde_json::from_str(&serde_json::to_string(&page).unwrap()).unwrap();
        store.apply_page(&page).unwrap();

        // Written here: a customer without an owner yet (it counts for
        // `me`) and its visits, with another offset, finer than
        // milliseconds, the last microsecond of a day and an amendment;
        // and an op pending on a pulled visit.
        let (mine, first, gone) = (id(), id(), id());
        let create = |id: RecordId, at: &str, extra: Value| {
            let Value::Object(f) = visit(mine, at, extra) else {
                unreachable!()
            };
            Draft::create("visits", id, f.into_iter().collect())
        };
        store
            .write(vec![
                Draft::create(
                    "customers",
                    mine,
                    fields(json!({"name": "Acme", "created_at": "2026-11-01T08:00:00Z"})),
                ),
                create(first, "2026-11-03T09:00:00Z", json!({})),
                create(id(), "2026-11-04T07:30:00.123456+08:00", json!({})),
                create(id(), "2026-11-30T23:59:59.999999Z", json!({})),
                create(
                    id(),
                    "2026-11-03T10:00:00Z",
                    json!({"amends": first.to_string(), "amend_reason": "wrong time"}),
                ),
                create(gone, "2026-11-06T09:00:00Z", json!({})),
                Draft::create(
                    "sales",
                    id(),
                    fields(json!({"customer_id": mine.to_string(), "sold_at": "2026-11-07T09:00:00Z", "amount": {"minor": 1_280_000, "currency": "CNY"}, "product": "5G plan"})),
                ),
                Draft::patch(
                    "visits",
                    open,
                    fields(json!({"ended_at": "2026-11-07T10:00:00Z"})),
                ),
            ])
            .unwrap();
        store.write(vec![Draft::archive("visits", gone)]).unwrap();

        let fast = fact_index(&store, Some(me)).unwrap();
        let mut all = store.list("visits").unwrap();
        for c in PARSED_FOR_FIGURES {
            all.extend(store.list(c).unwrap());
        }
        let values: Vec<_> = all.iter().map(|r| r.state.values()).collect();
        let full = FactIndex::new(
            all.iter().zip(&values).map(|(r, fields)| PlainRecord {
                collection: &r.state.collection,
                id: r.id,
                archived: r.archived,
                fields,
            }),
            Some(me),
        );
        for (who, visits) in [(me, 4), (them, 3)] {
            let (mut a, mut b) = (fast.facts_for_rep(who), full.facts_for_rep(who));
            a.visits.sort_by_key(|v| v.id);
            b.visits.sort_by_key(|v| v.id);
            assert_eq!(a.visits.len(), visits, "archived visits count for no one");
            // The view keeps milliseconds.
            for v in &mut b.visits {
                v.started_at = v.started_at.trunc_subsecs(3);
            }
            assert_eq!(a, b);
        }
        let period = Period::parse("2026-11").unwrap();
        for metric in [Metric::Visits, Metric::CustomersVisited, Metric::Coverage] {
            assert_eq!(
                compute(metric, &period, &fast.facts_for_rep(me)),
                compute(metric, &period, &full.facts_for_rep(me)),
            );
        }
    }
}
