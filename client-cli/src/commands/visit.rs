//! `fieldsync visit ...`

use super::{Ctx, cell, customer_name, mark, record_json};
use crate::cli::{Position, VisitCmd};
use crate::error::{Failure, fail, fail_hint, failure_of};
use crate::input::{not_future, parse_time, pos_of, pos_value, position};
use crate::output::{clip, distance, local_time};
use crate::store::{Draft, Rec, Store};
use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use sync_protocol::geo::{GpsRules, judge_check_in};
use sync_protocol::time::{format_ts, parse_ts};
use sync_protocol::validate::{Author, validate_op};
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::{DeviceId, Fields, Hlc, Op, OpId, OpKind, RecordId, UserId};

/// The GPS check of a visit: the server's verdict once synced, otherwise
/// the provisional one computed with the same function.
pub struct Gps {
    /// verified, out_of_range, unverified, suspicious.
    pub verdict: String,
    /// Metres from the customer, when known.
    pub distance_m: Option<f64>,
    /// `server` or `provisional`.
    pub source: &'static str,
}

/// Judge a visit's check-in.
pub fn gps(store: &Store, v: &Rec) -> Result<Gps> {
    if let Some(verdict) = v.str("gps_verdict") {
        let d = v.get("gps_distance_m").and_then(Value::as_f64);
        return Ok(Gps {
            verdict: verdict.to_owned(),
            distance_m: d,
            source: "server",
        });
    }
    let customer = match &v.customer_id {
        Some(c) => store.get(c)?,
        None => None,
    };
    let cust_pos = customer.as_ref().and_then(|c| pos_of(c.get("location")));
    let acc = v.get("check_in_accuracy_m").and_then(Value::as_f64);
    let (verdict, d) = judge_check_in(
        pos_of(v.get("check_in")),
        acc,
        cust_pos,
        &GpsRules::default(),
    );
    Ok(Gps {
        verdict: verdict.as_str().to_owned(),
        distance_m: d,
        source: "provisional",
    })
}

fn minutes_of(v: &Rec) -> Option<i64> {
    let s = parse_ts(v.str("started_at")?)?;
    let e = parse_ts(v.str("ended_at")?)?;
    Some((e - s).num_minutes())
}

/// A visit as JSON, with its customer's name and GPS check.
pub fn visit_json(store: &Store, v: &Rec) -> Result<Map<String, Value>> {
    let mut m = record_json(v);
    let g = gps(store, v)?;
    m.insert("customer_name".into(), json!(customer_name(store, v)?));
    // Who made the visit: a customer's history keeps its authors when the
    // customer moves to another rep.
    let rep = match v.state.created_by {
        Some(by) => store
            .get(&RecordId(by.0))?
            .and_then(|u| u.str("username").map(str::to_owned)),
        None => None,
    };
    m.insert("rep".into(), json!(rep));
    m.insert("open".into(), json!(v.get("ended_at").is_none()));
    m.insert("minutes".into(), json!(minutes_of(v)));
    m.insert("verdict".into(), json!(g.verdict));
    m.insert("verdict_source".into(), json!(g.source));
    m.insert("distance_m".into(), json!(g.distance_m.map(f64::round)));
    Ok(m)
}

fn verdict_text(g: &Gps) -> String {
    let d = g
        .distance_m
        .map(|d| format!("{} from the customer, ", distance(d)))
        .unwrap_or_default();
    let src = if g.source == "server" {
        "confirmed by the server"
    } else {
        "provisional until sync"
    };
    format!("{d}{} ({src})", g.verdict)
}

/// Print visits as a table.
pub fn table(ctx: &Ctx, store: &Store, visits: &[Rec], with_customer: bool) -> Result<()> {
    let short = store.shortener_for("visits", visits.iter().map(|r| r.id))?;
    let amended: HashSet<String> = visits
        .iter()
        .filter_map(|v| v.str("amends").map(str::to_owned))
        .collect();
    let mut rows = Vec::new();
    for v in visits {
        let g = gps(store, v)?;
        let mins = minutes_of(v).map_or_else(|| "open".to_owned(), |m| m.to_string());
        let mut note = String::new();
        if amended.contains(&v.id.to_string()) {
            note.push_str("amended ");
        }
        if v.get("amends").is_some() {
            note.push_str("correction ");
        }
        let mut row = vec![
            short.get(&v.id),
            format!(
                "{}{}",
                v.str("started_at").map(local_time).unwrap_or_default(),
                mark(v)
            ),
        ];
        if with_customer {
            row.push(customer_name(store, v)?);
        }
        let gps_cell = if g.source == "server" {
            g.verdict.clone()
        } else {
            format!("{}?", g.verdict)
        };
        row.extend([
            mins,
            gps_cell,
            clip(&cell(v, "purpose"), 30),
            note.trim().to_owned(),
        ]);
        rows.push(row);
    }
    let header: &[&str] = if with_customer {
        &["ID", "STARTED", "CUSTOMER", "MIN", "GPS", "PURPOSE", "NOTE"]
    } else {
        &["ID", "STARTED", "MIN", "GPS", "PURPOSE", "NOTE"]
    };
    ctx.printer.table(header, &rows)
}

/// Run a visit command.
pub fn run(ctx: &Ctx, cmd: VisitCmd) -> Result<()> {
    match cmd {
        VisitCmd::Start {
            customer,
            position: pos,
            accuracy,
            purpose,
        } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            if c.archived {
                return fail_hint(
                    format!("{} is archived", cell(&c, "name")),
                    "archived customers take no new visits",
                );
            }
            let now = Utc::now();
            let id = RecordId::new_v7(now);
            let mut f = Fields::new();
            f.insert("customer_id".into(), json!(c.id));
            f.insert("started_at".into(), json!(format_ts(now)));
            if let Some(p) = position(pos)? {
                f.insert("check_in".into(), pos_value(p));
                if let Some(a) = accuracy {
                    f.insert("check_in_accuracy_m".into(), json!(a));
                }
            }
            if let Some(p) = purpose {
                f.insert("purpose".into(), json!(p));
            }
            store.write(vec![Draft::create("visits", id, f)])?;
            done(ctx, &store, &id, "Started visit")
        }
        VisitCmd::End {
            visit,
            position: pos,
            outcome,
            next_step,
        } => {
            let (mut store, cfg) = ctx.store()?;
            let v = match visit {
                Some(q) => store.resolve_record("visits", "visit", &q)?,
                None => single_open(&store, cfg.user.id)?,
            };
            if v.get("ended_at").is_some() {
                return fail(format!(
                    "visit {} already ended at {}",
                    store.short_id("visits", &v.id)?,
                    v.str("ended_at").map(local_time).unwrap_or_default()
                ));
            }
            let mut f = Fields::new();
            f.insert("ended_at".into(), json!(format_ts(Utc::now())));
            f.insert("outcome".into(), json!(outcome));
            if let Some(p) = position(pos)? {
                f.insert("check_out".into(), pos_value(p));
            }
            if let Some(n) = next_step {
                f.insert("next_step".into(), json!(n));
            }
            store.write(vec![Draft::patch("visits", v.id, f)])?;
            done(ctx, &store, &v.id, "Ended visit")
        }
        VisitCmd::Log {
            customer,
            at,
            minutes,
            purpose,
            outcome,
            position: pos,
            reason,
        } => {
            let (mut store, _) = ctx.store()?;
            let c = store.resolve_customer(&customer)?;
            let start = parse_time(&at, "--at")?;
            let end = start + Duration::minutes(minutes);
            not_future(end, "the visit's end")?;
            let p = position(pos)?;
            if p.is_none() && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return fail_hint(
                    "a visit without a location needs a reason (nothing was saved)",
                    "add --lat and --lon, or --reason \"why there is no GPS position\"",
                );
            }
            let id = RecordId::new_v7(Utc::now());
            let mut f = Fields::new();
            f.insert("customer_id".into(), json!(c.id));
            f.insert("started_at".into(), json!(format_ts(start)));
            f.insert("ended_at".into(), json!(format_ts(end)));
            f.insert("purpose".into(), json!(purpose));
            f.insert("outcome".into(), json!(outcome));
            if let Some(p) = p {
                f.insert("check_in".into(), pos_value(p));
                f.insert("check_out".into(), pos_value(p));
            }
            if let Some(r) = reason.filter(|r| !r.trim().is_empty()) {
                f.insert("no_location_reason".into(), json!(r));
            }
            store.write(vec![Draft::create("visits", id, f)])?;
            done(ctx, &store, &id, "Logged visit")
        }
        VisitCmd::Import { file } => import(ctx, &file),
        VisitCmd::List { since, customer } => {
            let store = ctx.read_store()?;
            let since = since.map(|s| parse_time(&s, "--since")).transpose()?;
            let cust = customer.map(|c| store.resolve_customer(&c)).transpose()?;
            let visits = store.list_matching("visits", cust.as_ref().map(|c| &c.id), since)?;
            if ctx.printer.json {
                let out: Vec<Value> = visits
                    .iter()
                    .map(|v| visit_json(&store, v).map(Value::Object))
                    .collect::<Result<_>>()?;
                return ctx.printer.json(&out);
            }
            if visits.is_empty() {
                ctx.printer.say("No visits.");
                return Ok(());
            }
            table(ctx, &store, &visits, true)?;
            ctx.printer.say("GPS verdicts marked ? are provisional until the server confirms them; * not yet synced");
            Ok(())
        }
        VisitCmd::Show { visit } => {
            let store = ctx.read_store()?;
            let v = store.resolve_record("visits", "visit", &visit)?;
            show(ctx, &store, &v)
        }
        VisitCmd::Amend {
            visit,
            purpose,
            outcome,
            next_step,
            at,
            minutes,
            reason,
        } => {
            let (mut store, _) = ctx.store()?;
            let orig = store.resolve_record("visits", "visit", &visit)?;
            let mut f = Fields::new();
            for k in [
                "customer_id",
                "started_at",
                "check_in",
                "check_in_accuracy_m",
                "purpose",
                "no_location_reason",
                "ended_at",
                "check_out",
                "outcome",
                "next_step",
            ] {
                if let Some(v) = orig.get(k) {
                    f.insert(k.into(), v.clone());
                }
            }
            let old_start = orig.str("started_at").and_then(parse_ts);
            let old_minutes = minutes_of(&orig);
            let start = match at {
                Some(a) => {
                    let t = parse_time(&a, "--at")?;
                    not_future(t, "--at")?;
                    f.insert("started_at".into(), json!(format_ts(t)));
                    Some(t)
                }
                None => old_start,
            };
            if let Some(m) = minutes.or(old_minutes)
                && let Some(s) = start
                && (minutes.is_some() || f.contains_key("ended_at"))
            {
                f.insert(
                    "ended_at".into(),
                    json!(format_ts(s + Duration::minutes(m))),
                );
            }
            for (k, v) in [
                ("purpose", purpose),
                ("outcome", outcome),
                ("next_step", next_step),
            ] {
                if let Some(v) = v {
                    f.insert(k.into(), json!(v));
                }
            }
            f.insert("amends".into(), json!(orig.id));
            f.insert("amend_reason".into(), json!(reason));
            let id = RecordId::new_v7(Utc::now());
            store.write(vec![Draft::create("visits", id, f)])?;
            let msg = format!(
                "Recorded a correction of visit {}",
                store.short_id("visits", &orig.id)?
            );
            done(ctx, &store, &id, &msg)
        }
    }
}

/// One line of a `visit import` file: the arguments of `visit log`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    customer: String,
    at: String,
    minutes: i64,
    purpose: String,
    outcome: String,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default)]
    reason: Option<String>,
}

/// Most line errors listed before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 10;

/// The fields of a logged visit, checked exactly as `visit log` checks its
/// arguments. `customers` caches name look-ups for the whole file.
fn log_fields(
    store: &Store,
    customers: &mut HashMap<String, RecordId>,
    line: ImportLine,
) -> Result<Fields> {
    let customer = if let Some(id) = customers.get(&line.customer) {
        *id
    } else {
        let id = store.resolve_customer(&line.customer)?.id;
        customers.insert(line.customer.clone(), id);
        id
    };
    if !(1..=1440).contains(&line.minutes) {
        return fail(format!("minutes {} is not in 1..=1440", line.minutes));
    }
    if line.lat.is_some() != line.lon.is_some() {
        return fail("lat and lon go together: give both or neither");
    }
    let start = parse_time(&line.at, "at")?;
    let end = start + Duration::minutes(line.minutes);
    not_future(end, "the visit's end")?;
    let p = position(Position {
        lat: line.lat,
        lon: line.lon,
    })?;
    if p.is_none() && line.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return fail("a visit without a location needs a reason");
    }
    let mut f = Fields::new();
    f.insert("customer_id".into(), json!(customer));
    f.insert("started_at".into(), json!(format_ts(start)));
    f.insert("ended_at".into(), json!(format_ts(end)));
    f.insert("purpose".into(), json!(line.purpose));
    f.insert("outcome".into(), json!(line.outcome));
    if let Some(p) = p {
        f.insert("check_in".into(), pos_value(p));
        f.insert("check_out".into(), pos_value(p));
    }
    if let Some(r) = line.reason.filter(|r| !r.trim().is_empty()) {
        f.insert("no_location_reason".into(), json!(r));
    }
    Ok(f)
}

/// Check a draft with the same validator the store (and the server) runs,
/// so a bad line is reported with its number.
fn check_draft(device: DeviceId, id: RecordId, fields: &Fields) -> Result<()> {
    let now = Utc::now();
    let op = Op {
        op_id: OpId::new_v7(now),
        device_id: device,
        device_seq: 1,
        hlc: Hlc::from_wall(now, device),
        schema_version: SCHEMA_VERSION,
        collection: "visits".to_owned(),
        record_id: id,
        kind: OpKind::Create,
        fields: fields.clone(),
        transition: None,
        base: None,
    };
    validate_op(&op, Author::Device).map_err(|e| Failure::invalid(&e))?;
    Ok(())
}

/// `visit import FILE`: every line checked like `visit log`, then all of
/// them written in one local transaction, or none when any line is bad.
fn import(ctx: &Ctx, file: &Path) -> Result<()> {
    let (mut store, cfg) = ctx.store()?;
    let reader: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        )
    };
    let mut customers = HashMap::new();
    let mut drafts = Vec::new();
    let mut errors = Vec::new();
    let mut bad = 0usize;
    for (n, text) in BufReader::new(reader).lines().enumerate() {
        let text =
            text.with_context(|| format!("cannot read line {} of {}", n + 1, file.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let checked = serde_json::from_str::<ImportLine>(&text)
            .map_err(|e| anyhow::anyhow!("not a visit: {e}"))
            .and_then(|line| log_fields(&store, &mut customers, line))
            .and_then(|f| {
                let id = RecordId::new_v7(Utc::now());
                check_draft(cfg.device_id, id, &f)?;
                Ok(Draft::create("visits", id, f))
            });
        match checked {
            Ok(d) => drafts.push(d),
            Err(e) => {
                bad += 1;
                if errors.len() < MAX_LISTED_ERRORS {
                    let msg =
                        failure_of(&e).map_or_else(|| format!("{e:#}"), |f| f.message.clone());
                    errors.push(format!("line {}: {msg}", n + 1));
                }
            }
        }
    }
    if bad > 0 {
        let more = bad.saturating_sub(errors.len());
        let mut msg = format!(
            "{} in {} {} bad; nothing was imported:\n  {}",
            crate::output::plural(bad as u64, "line", "lines"),
            file.display(),
            if bad == 1 { "is" } else { "are" },
            errors.join("\n  ")
        );
        if more > 0 {
            let _ = write!(msg, "\n  … and {more} more");
        }
        return fail_hint(
            msg,
            "fix those lines and run the import again; each line is a JSON object with customer, at, minutes, purpose, outcome and lat/lon or reason",
        );
    }
    let n = drafts.len();
    store.write(drafts)?;
    if ctx.printer.json {
        return ctx.printer.json(&json!({ "imported": n }));
    }
    ctx.printer.say(&format!(
        "Imported {} from {}; they sync with the next fieldsync sync.",
        crate::output::plural(n as u64, "visit", "visits"),
        file.display()
    ));
    Ok(())
}

/// The one open visit this user started: on this laptop and not yet
/// synced, or synced as theirs (a supervisor's laptop also holds the team's
/// open visits, which are not theirs to end without naming them).
fn single_open(store: &Store, me: UserId) -> Result<Rec> {
    let open: Vec<Rec> = store
        .open_visits()?
        .into_iter()
        .filter(|v| v.state.created_by.is_none_or(|by| by == me))
        .collect();
    match open.len() {
        0 => fail_hint(
            "there is no open visit to end",
            "start one with: fieldsync visit start CUSTOMER",
        ),
        1 => Ok(open.into_iter().next().context("open visit")?),
        n => {
            let short = store.shortener_for("visits", open.iter().map(|r| r.id))?;
            let mut msg = format!("{n} visits are open; say which one to end:");
            for v in &open {
                let _ = write!(
                    msg,
                    "\n  {}  started {}",
                    short.get(&v.id),
                    v.str("started_at").map(local_time).unwrap_or_default()
                );
            }
            fail_hint(msg, "fieldsync visit end VISIT --outcome TEXT")
        }
    }
}

fn done(ctx: &Ctx, store: &Store, id: &RecordId, what: &str) -> Result<()> {
    let v = store
        .get(id)?
        .context("the visit is missing from the local view")?;
    if ctx.printer.json {
        return ctx.printer.json(&visit_json(store, &v)?);
    }
    let g = gps(store, &v)?;
    let short = store.short_id("visits", id)?;
    ctx.printer
        .say(&format!("{what} {short} at {}.", customer_name(store, &v)?));
    if v.get("check_in").is_some() {
        ctx.printer.say(&format!("Check-in: {}.", verdict_text(&g)));
    }
    Ok(())
}

fn show(ctx: &Ctx, store: &Store, v: &Rec) -> Result<()> {
    if ctx.printer.json {
        return ctx.printer.json(&visit_json(store, v)?);
    }
    let g = gps(store, v)?;
    let fmt_pos = |k: &str| {
        pos_of(v.get(k))
            .map(|p| format!("{:.5}, {:.5}", p.lat, p.lon))
            .unwrap_or_default()
    };
    let mut pairs = vec![
        ("visit", v.id.to_string()),
        ("customer", customer_name(store, v)?),
        (
            "started",
            v.str("started_at").map(local_time).unwrap_or_default(),
        ),
        (
            "ended",
            v.str("ended_at")
                .map_or_else(|| "still open".to_owned(), local_time),
        ),
        (
            "minutes",
            minutes_of(v).map(|m| m.to_string()).unwrap_or_default(),
        ),
        ("purpose", cell(v, "purpose")),
        ("outcome", cell(v, "outcome")),
        ("next step", cell(v, "next_step")),
        ("check-in", fmt_pos("check_in")),
        ("check-out", fmt_pos("check_out")),
        ("no GPS because", cell(v, "no_location_reason")),
        ("GPS check", verdict_text(&g)),
        ("amends", cell(v, "amends")),
        ("amend reason", cell(v, "amend_reason")),
        (
            "review",
            v.str("review")
                .filter(|r| *r != "none")
                .unwrap_or("")
                .to_owned(),
        ),
    ];
    if v.pending {
        pairs.push(("sync", "not yet synced".into()));
    }
    pairs.retain(|(_, val)| !val.is_empty());
    ctx.printer.pairs(&pairs)
}
