//! Visits and field integrity: visits by day and by rep with their GPS
//! verdicts, and the review queue of flagged visits.
//!
//! Each visit is judged with its rep's team rules ([`super::gps_rules`]):
//! the distance from the customer after allowing for the reported accuracy
//! (`sync_protocol::geo::judge_check_in`, as the server does when the visit
//! arrives), impossible travel speed from the rep's previous check-in, the
//! same coordinates on another day, a visit shorter than the minimum, and a
//! check-out far from the check-in. Any of the last four makes a visit
//! `suspicious`.

use super::data::{Audience, Data, Owned};
use super::gps_rules::TeamGpsRules;
use super::{Table, count, opt_num, text};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use sync_protocol::geo::{GpsVerdict, LatLon, judge_check_in};
use sync_protocol::metrics::Period;
use sync_protocol::{RecordId, TeamId, UserId};

/// GPS verdicts, in column order.
pub const VERDICTS: [&str; 4] = ["verified", "out_of_range", "unverified", "suspicious"];

fn position(v: Option<&Value>) -> Option<LatLon> {
    v.and_then(|v| serde_json::from_value::<LatLon>(v.clone()).ok())
        .filter(LatLon::is_valid)
}

/// A visit as the report judges it.
struct Judged<'a> {
    visit: &'a Owned,
    rep: UserId,
    verdict: &'static str,
    distance: Option<f64>,
    reasons: Vec<String>,
}

pub(super) fn build(
    data: &Data,
    audience: &Audience,
    period: &Period,
    rules: &HashMap<TeamId, TeamGpsRules>,
) -> Vec<Table> {
    let reps = audience.rep_ids();
    let amended: HashSet<RecordId> = data
        .of("visits")
        .iter()
        .filter_map(|v| v.rec("amends"))
        .collect();
    let visits: Vec<(&Owned, UserId)> = data
        .of("visits")
        .iter()
        .filter(|v| !amended.contains(&v.id))
        .filter_map(|v| {
            data.credited(v)
                .filter(|o| reps.contains(o))
                .map(|o| (v, o))
        })
        .collect();

    // Days on which each rep checked in at each (rounded) position: all
    // history, so reuse across the period boundary is seen too.
    let mut used_on: HashMap<(UserId, i64, i64), HashSet<chrono::NaiveDate>> = HashMap::new();
    for (v, rep) in &visits {
        if let (Some(p), Some(t)) = (position(v.fields.get("check_in")), v.ts("started_at")) {
            used_on
                .entry(key(*rep, p))
                .or_default()
                .insert(t.date_naive());
        }
    }

    let team_of: HashMap<UserId, Option<TeamId>> =
        audience.reps.iter().map(|r| (r.id, r.team_id)).collect();
    let locations: HashMap<RecordId, LatLon> = data
        .of("customers")
        .iter()
        .filter_map(|c| position(c.fields.get("location")).map(|p| (c.id, p)))
        .collect();
    // Each rep's check-ins in time order, for the travel-speed check.
    let mut by_rep: HashMap<UserId, Vec<(DateTime<Utc>, &Owned)>> = HashMap::new();
    for (v, rep) in &visits {
        if let Some(t) = v.ts("started_at") {
            by_rep.entry(*rep).or_default().push((t, v));
        }
    }
    let defaults = TeamGpsRules::default();
    let mut judged: Vec<Judged<'_>> = Vec::new();
    for (rep, mut list) in by_rep {
        list.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        let r = team_of
            .get(&rep)
            .copied()
            .flatten()
            .and_then(|t| rules.get(&t))
            .unwrap_or(&defaults);
        let mut prev: Option<(DateTime<Utc>, LatLon)> = None;
        for (t, v) in list {
            let here = position(v.fields.get("check_in"));
            if period.contains(t) {
                judged.push(judge(v, rep, t, prev, &locations, &used_on, r));
            }
            if let Some(p) = here {
                prev = Some((t, p));
            }
        }
    }

    let names: HashMap<UserId, &str> = audience
        .reps
        .iter()
        .map(|r| (r.id, r.username.as_str()))
        .collect();
    let customers = data.names("customers", "name");

    let mut columns = vec!["day", "visits"];
    columns.extend(VERDICTS);
    let mut by_day = Table::new("by_day", &columns);
    let mut days: BTreeMap<String, [usize; 5]> = BTreeMap::new();
    for j in &judged {
        let Some(t) = j.visit.ts("started_at") else {
            continue;
        };
        let e = days.entry(t.date_naive().to_string()).or_default();
        e[0] += 1;
        e[1 + verdict_index(j.verdict)] += 1;
    }
    let mut total = [0usize; 5];
    for (day, c) in days {
        for (t, n) in total.iter_mut().zip(c) {
            *t += n;
        }
        let mut row = vec![text(day)];
        row.extend(c.into_iter().map(count));
        by_day.rows.push(row);
    }
    let mut totals = vec![text("total")];
    totals.extend(total.into_iter().map(count));
    by_day.totals = Some(totals);

    let mut columns = vec!["rep", "team", "visits"];
    columns.extend(VERDICTS);
    columns.extend(["accepted", "rejected"]);
    let mut by_rep = Table::new("by_rep", &columns);
    for r in &audience.reps {
        let mine: Vec<&Judged<'_>> = judged.iter().filter(|j| j.rep == r.id).collect();
        let mut row = vec![
            text(r.username.clone()),
            audience.team_name(r.team_id).map_or(Value::Null, text),
            count(mine.len()),
        ];
        for v in VERDICTS {
            row.push(count(mine.iter().filter(|j| j.verdict == v).count()));
        }
        for review in ["accepted", "rejected"] {
            row.push(count(
                mine.iter()
                    .filter(|j| j.visit.str("review") == Some(review))
                    .count(),
            ));
        }
        by_rep.rows.push(row);
    }

    let mut queue = Table::new(
        "review_queue",
        &[
            "visit_id",
            "rep",
            "customer",
            "started_at",
            "verdict",
            "distance_m",
            "reasons",
            "review",
        ],
    );
    let mut flagged: Vec<&Judged<'_>> = judged
        .iter()
        .filter(|j| matches!(j.verdict, "out_of_range" | "suspicious"))
        .collect();
    flagged.sort_by(|a, b| a.visit.str("started_at").cmp(&b.visit.str("started_at")));
    for j in flagged {
        queue.rows.push(vec![
            text(j.visit.id.to_string()),
            text(names.get(&j.rep).copied().unwrap_or_default()),
            j.visit
                .rec("customer_id")
                .and_then(|c| customers.get(&c).cloned())
                .map_or(Value::Null, text),
            j.visit.str("started_at").map_or(Value::Null, text),
            text(j.verdict),
            opt_num(j.distance.map(f64::round)),
            text(j.reasons.join("; ")),
            text(j.visit.str("review").unwrap_or("none")),
        ]);
    }
    vec![by_day, by_rep, queue]
}

fn key(rep: UserId, p: LatLon) -> (UserId, i64, i64) {
    // About 1 m: a position reported to the metre on two days is reused.
    (
        (rep),
        (p.lat * 1e5).round() as i64,
        (p.lon * 1e5).round() as i64,
    )
}

fn verdict_index(v: &str) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(2)
}

#[allow(clippy::too_many_arguments)]
fn judge<'a>(
    v: &'a Owned,
    rep: UserId,
    started: DateTime<Utc>,
    prev: Option<(DateTime<Utc>, LatLon)>,
    locations: &HashMap<RecordId, LatLon>,
    used_on: &HashMap<(UserId, i64, i64), HashSet<chrono::NaiveDate>>,
    rules: &TeamGpsRules,
) -> Judged<'a> {
    let check_in = position(v.fields.get("check_in"));
    let accuracy = v.fields.get("check_in_accuracy_m").and_then(Value::as_f64);
    let customer = v
        .rec("customer_id")
        .and_then(|c| locations.get(&c).copied());
    let (verdict, distance) = judge_check_in(check_in, accuracy, customer, &rules.geo());
    let mut reasons = Vec::new();
    let mut verdict = match verdict {
        GpsVerdict::Verified => "verified",
        GpsVerdict::OutOfRange => {
            reasons.push(format!(
                "check-in is {:.0} m from the customer (allowed {:.0} m)",
                distance.unwrap_or_default(),
                rules.radius_m
            ));
            "out_of_range"
        }
        GpsVerdict::Suspicious => "suspicious",
        GpsVerdict::Unverified => {
            reasons.push(if check_in.is_none() {
                "no check-in position".to_owned()
            } else if customer.is_none() {
                "the customer has no location".to_owned()
            } else {
                format!(
                    "check-in accuracy is worse than {:.0} m",
                    rules.max_accuracy_m
                )
            });
            "unverified"
        }
    };
    let mut flags = Vec::new();
    if let (Some(at), Some((then, before))) = (check_in, prev) {
        let km = at.distance_m(&before) / 1000.0;
        let hours = (started - then).num_seconds() as f64 / 3600.0;
        let kmh = if hours > 0.0 {
            km / hours
        } else {
            f64::INFINITY
        };
        if km > 1.0 && kmh > rules.max_travel_kmh {
            flags.push(format!(
                "{km:.0} km from the previous check-in {:.0} min earlier would mean {kmh:.0} km/h (limit {:.0})",
                hours * 60.0,
                rules.max_travel_kmh
            ));
        }
    }
    if let Some(p) = check_in
        && used_on.get(&key(rep, p)).is_some_and(|d| d.len() > 1)
    {
        flags.push("the same check-in coordinates were used on another day".to_owned());
    }
    if let Some(e) = v.ts("ended_at") {
        let minutes = (e - started).num_seconds() as f64 / 60.0;
        if minutes < rules.min_visit_minutes {
            flags.push(format!(
                "visit lasted {minutes:.1} min (minimum {} min)",
                rules.min_visit_minutes
            ));
        }
    }
    if let (Some(a), Some(b)) = (check_in, position(v.fields.get("check_out"))) {
        let d = a.distance_m(&b);
        if d > rules.max_check_out_m {
            flags.push(format!(
                "check-out is {d:.0} m from the check-in (allowed {:.0} m)",
                rules.max_check_out_m
            ));
        }
    }
    if !flags.is_empty() {
        verdict = "suspicious";
    }
    reasons.extend(flags);
    Judged {
        visit: v,
        rep,
        verdict,
        distance,
        reasons,
    }
}
