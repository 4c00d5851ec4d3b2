//! `fieldsync one-on-one ...`: a supervisor's meetings with a rep, a snapshot
//! of the rep's goal pace and open complaints at that moment, and action items
//! with owner, due date and done state.

use super::goal::{
    fact_index, goal_json, parse_day, require_access, resolve_rep, resolve_user, today, who,
};
use super::{Ctx, cell, mark, record_json};
use crate::error::{fail, fail_hint};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::Utc;
use clap::Subcommand;
use serde_json::{Value, json};
use sync_protocol::metrics::{GoalSubject, Period};
use sync_protocol::schema::Role;
use sync_protocol::time::format_ts;
use sync_protocol::{Fields, RecordId, StateChange, UserId};

/// `fieldsync one-on-one ...`
#[derive(Debug, Subcommand)]
pub enum OneOnOneCmd {
    /// Record a one-on-one with a rep of your team (supervisors).
    #[command(
        after_help = "Each --action needs a --due (in the same order); --owner (same order) defaults to the rep.\n\nExamples:\n  fieldsync one-on-one add mei --notes \"pipeline review\"\n  fieldsync one-on-one add mei --notes \"coverage is low\" --action \"visit the 5 dormant accounts\" --due 2026-12-10 --action \"send the price list\" --due 2026-12-03 --owner mei --owner lee"
    )]
    Add {
        /// Rep: username or id.
        rep: String,
        /// What was discussed.
        #[arg(long)]
        notes: String,
        /// An action item (repeatable).
        #[arg(long = "action", value_name = "TEXT")]
        actions: Vec<String>,
        /// Due date of each action, YYYY-MM-DD (one per --action).
        #[arg(long = "due", value_name = "DATE")]
        dues: Vec<String>,
        /// Owner of each action (username; one per --action, or none for the rep).
        #[arg(long = "owner", value_name = "USER")]
        owners: Vec<String>,
    },
    /// One-on-ones with their action items.
    #[command(
        after_help = "Examples:\n  fieldsync one-on-one list\n  fieldsync one-on-one list --json"
    )]
    List,
    /// Acknowledge a one-on-one (the rep).
    Ack {
        /// One-on-one id or prefix.
        one_on_one: String,
    },
    /// Mark an action item done (its owner, the rep or the supervisor).
    Done {
        /// Action item id or prefix (see `fieldsync one-on-one list`).
        action: String,
    },
}

fn actions_of(store: &Store, meeting: &RecordId) -> Result<Vec<Rec>> {
    let id = meeting.to_string();
    Ok(store
        .list("one_on_one_actions")?
        .into_iter()
        .filter(|a| !a.archived && a.str("one_on_one_id") == Some(id.as_str()))
        .collect())
}

fn action_json(store: &Store, a: &Rec) -> Result<Value> {
    let mut m = record_json(a);
    m.insert("owner".into(), json!(who(store, a.str("owner_id"))?));
    m.insert(
        "done".into(),
        json!(a.get("done").and_then(Value::as_bool).unwrap_or(false)),
    );
    Ok(Value::Object(m))
}

fn meeting_json(store: &Store, o: &Rec) -> Result<Value> {
    let mut m = record_json(o);
    m.insert("rep".into(), json!(who(store, o.str("rep_id"))?));
    if let Some(s) = o.str("snapshot") {
        m.insert(
            "snapshot".into(),
            serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        );
    }
    let actions: Vec<Value> = actions_of(store, &o.id)?
        .iter()
        .map(|a| action_json(store, a))
        .collect::<Result<_>>()?;
    m.insert("action_items".into(), json!(actions));
    Ok(Value::Object(m))
}

/// The rep's goal pace (goals whose period contains today) and open complaints, now.
fn snapshot(store: &Store, me: UserId, rep: UserId, at: &str) -> Result<String> {
    let ix = fact_index(store, Some(me))?;
    let rid = rep.to_string();
    let day = today();
    let mut goals = Vec::new();
    for g in store.list("goals")? {
        let current = g
            .str("period")
            .and_then(|p| Period::parse(p).ok())
            .is_some_and(|p| p.contains_day(day));
        if g.archived || !current || g.str("rep_id") != Some(rid.as_str()) {
            continue;
        }
        if let Some(v) = goal_json(store, &ix, &g, false)? {
            goals.push(json!({
                "goal_id": g.id, "metric": v["metric"], "period": v["period"],
                "target": v["target"], "actual": v["actual"], "attained_pct": v["attained_pct"],
                "expected_to_date": v["expected_to_date"], "pace": v["pace"],
            }));
        }
    }
    let mut open = 0u64;
    for f in store.list("feedback")? {
        if f.str("kind") != Some("complaint")
            || !matches!(f.str("status"), Some("open" | "in_progress"))
        {
            continue;
        }
        let owner = f
            .customer_id
            .map(|c| store.get(&c))
            .transpose()?
            .flatten()
            .and_then(|c| c.str("owner_id").map(str::to_owned));
        if owner.as_deref() == Some(rid.as_str()) {
            open += 1;
        }
    }
    let mut snap = json!({"at": at, "goals": goals, "open_complaints": open});
    // Keep within the field's limit: drop goals beyond what fits.
    while snap.to_string().chars().count() > 4000 {
        let Some(list) = snap["goals"].as_array_mut() else {
            break;
        };
        if list.pop().is_none() {
            break;
        }
    }
    Ok(snap.to_string())
}

fn add(
    ctx: &Ctx,
    rep: &str,
    notes: &str,
    actions: &[String],
    dues: &[String],
    owners: &[String],
) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let rep = resolve_rep(&store, rep)?;
    let rep_id = UserId(rep.id.0);
    require_access(
        &store,
        &cfg,
        "one_on_ones",
        GoalSubject::Rep(rep_id),
        true,
        "record one-on-ones",
    )?;
    let notes = notes.trim();
    if notes.is_empty() {
        return fail("--notes is empty");
    }
    if dues.len() != actions.len() {
        return fail_hint(
            format!(
                "{} --action but {} --due: every action needs a due date",
                actions.len(),
                dues.len()
            ),
            "e.g. --action \"send the price list\" --due 2026-12-03",
        );
    }
    if !owners.is_empty() && owners.len() != actions.len() {
        return fail_hint(
            format!("{} --action but {} --owner", actions.len(), owners.len()),
            "give one --owner per --action, or none to make the rep the owner of every action",
        );
    }
    let mut items = Vec::new();
    for (i, text) in actions.iter().enumerate() {
        let text = text.trim();
        if text.is_empty() {
            return fail(format!("action {} is empty", i + 1));
        }
        let due = parse_day(&dues[i], "--due")?;
        let owner = match owners.get(i) {
            Some(o) => UserId(resolve_user(&store, o)?.id.0),
            None => rep_id,
        };
        items.push((text.to_owned(), due, owner));
    }
    let now = Utc::now();
    let at = format_ts(now);
    let id = RecordId::new_v7(now);
    let mut f = Fields::new();
    f.insert("rep_id".into(), json!(rep_id));
    f.insert("held_at".into(), json!(at));
    f.insert("notes".into(), json!(notes));
    f.insert(
        "snapshot".into(),
        json!(snapshot(&store, cfg.user.id, rep_id, &at)?),
    );
    let mut drafts = vec![Draft::create("one_on_ones", id, f)];
    for (text, due, owner) in items {
        let mut a = Fields::new();
        a.insert("one_on_one_id".into(), json!(id));
        a.insert("rep_id".into(), json!(rep_id));
        a.insert("text".into(), json!(text));
        a.insert("owner_id".into(), json!(owner));
        a.insert("due".into(), json!(due.to_string()));
        a.insert("done".into(), json!(false));
        drafts.push(Draft::create(
            "one_on_one_actions",
            RecordId::new_v7(now),
            a,
        ));
    }
    let n = drafts.len() - 1;
    store.write(drafts)?;
    let rec = store.get(&id)?.context("the one-on-one is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&meeting_json(&store, &rec)?);
    }
    ctx.printer.say(&format!(
        "Recorded one-on-one {} with {} ({n} action {}).",
        store.shortener("one_on_ones")?.get(&id),
        cell(&rep, "username"),
        if n == 1 { "item" } else { "items" }
    ));
    Ok(())
}

fn list(ctx: &Ctx) -> Result<()> {
    let store = ctx.read_store()?;
    let items: Vec<Rec> = store
        .list("one_on_ones")?
        .into_iter()
        .filter(|o| !o.archived)
        .collect();
    let out: Vec<Value> = items
        .iter()
        .map(|o| meeting_json(&store, o))
        .collect::<Result<_>>()?;
    if ctx.printer.json {
        return ctx.printer.json(&out);
    }
    if out.is_empty() {
        ctx.printer.say("No one-on-ones.");
        return Ok(());
    }
    let short = store.shortener("one_on_ones")?;
    let ashort = store.shortener("one_on_one_actions")?;
    let mut rows = Vec::new();
    for (o, j) in items.iter().zip(&out) {
        let acts = j["action_items"].as_array().cloned().unwrap_or_default();
        let done = acts.iter().filter(|a| a["done"] == json!(true)).count();
        rows.push(vec![
            short.get(&o.id),
            format!("{}{}", j["rep"].as_str().unwrap_or(""), mark(o)),
            o.str("held_at")
                .map(crate::output::local_time)
                .unwrap_or_default(),
            cell(o, "status"),
            format!("{done}/{}", acts.len()),
            crate::output::clip(&cell(o, "notes"), 40),
        ]);
        for a in actions_of(&store, &o.id)? {
            rows.push(vec![
                format!("  {}", ashort.get(&a.id)),
                who(&store, a.str("owner_id"))?,
                format!("due {}", cell(&a, "due")),
                if a.get("done").and_then(Value::as_bool) == Some(true) {
                    "done".to_owned()
                } else {
                    "open".to_owned()
                },
                String::new(),
                crate::output::clip(&cell(&a, "text"), 40),
            ]);
        }
    }
    ctx.printer.table(
        &["ID", "REP/OWNER", "HELD/DUE", "STATUS", "ACTIONS", "NOTES"],
        &rows,
    )
}

fn ack(ctx: &Ctx, q: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let o = store.resolve_record("one_on_ones", "one-on-one", q)?;
    if cfg.user.role != Role::Rep || o.str("rep_id") != Some(cfg.user.id.to_string().as_str()) {
        return fail_hint(
            "only the rep the one-on-one was with can acknowledge it",
            "the rep runs fieldsync one-on-one ack on their laptop",
        );
    }
    if o.str("status") != Some("held") {
        return fail(format!("this one-on-one is already {}", cell(&o, "status")));
    }
    let change = StateChange {
        field: "status".into(),
        from: "held".into(),
        to: "acknowledged".into(),
    };
    store.write(vec![Draft::transition(
        "one_on_ones",
        o.id,
        change,
        Fields::new(),
    )])?;
    let rec = store.get(&o.id)?.context("the one-on-one is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&meeting_json(&store, &rec)?);
    }
    ctx.printer.say("Acknowledged.");
    Ok(())
}

fn done(ctx: &Ctx, q: &str) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let a = store.resolve_record("one_on_one_actions", "action item", q)?;
    let rep = a
        .str("rep_id")
        .and_then(|s| s.parse::<UserId>().ok())
        .context("the action item has no rep")?;
    let is_owner = a.str("owner_id") == Some(cfg.user.id.to_string().as_str());
    if !is_owner {
        require_access(
            &store,
            &cfg,
            "one_on_one_actions",
            GoalSubject::Rep(rep),
            false,
            "close action items",
        )?;
    }
    if a.get("done").and_then(Value::as_bool) == Some(true) {
        return fail("this action item is already done");
    }
    let mut f = Fields::new();
    f.insert("done".into(), json!(true));
    f.insert("done_at".into(), json!(format_ts(Utc::now())));
    store.write(vec![Draft::patch("one_on_one_actions", a.id, f)])?;
    let rec = store.get(&a.id)?.context("the action item is missing")?;
    if ctx.printer.json {
        return ctx.printer.json(&action_json(&store, &rec)?);
    }
    ctx.printer.say(&format!("Done: {}.", cell(&rec, "text")));
    Ok(())
}

/// Run a one-on-one command.
pub fn run(ctx: &Ctx, cmd: OneOnOneCmd) -> Result<()> {
    match cmd {
        OneOnOneCmd::Add {
            rep,
            notes,
            actions,
            dues,
            owners,
        } => add(ctx, &rep, &notes, &actions, &dues, &owners),
        OneOnOneCmd::List => list(ctx),
        OneOnOneCmd::Ack { one_on_one } => ack(ctx, &one_on_one),
        OneOnOneCmd::Done { action } => done(ctx, &action),
    }
}
