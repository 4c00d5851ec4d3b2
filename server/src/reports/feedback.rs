//! Feedback analysis: CSAT and NPS by week, complaints by category, open
//! complaints by age, and the follow-up (loop closure) rate of low scores.

use super::data::{Audience, Data, Owned};
use super::{Table, count, metric_cell, num, opt_num, text};
use chrono::{DateTime, Datelike, Days, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use sync_protocol::RecordId;
use sync_protocol::metrics::{Facts, FeedbackFact, Metric, Period, compute};

/// Open-complaint age buckets: label and upper bound in days (exclusive).
pub const AGE_BUCKETS: [(&str, i64); 5] = [
    ("0-1d", 1),
    ("1-3d", 3),
    ("3-7d", 7),
    ("7-30d", 30),
    ("30d+", i64::MAX),
];

/// A CSAT at or below this, or an NPS at or below [`LOW_NPS`], is a low score.
pub const LOW_CSAT: i64 = 2;
/// See [`LOW_CSAT`].
pub const LOW_NPS: i64 = 6;

fn is_resolved(f: &Owned) -> bool {
    matches!(f.str("status"), Some("resolved" | "closed"))
}

fn fact(f: &Owned) -> Option<FeedbackFact> {
    Some(FeedbackFact {
        kind: f.str("kind")?.to_owned(),
        csat: f.fields.get("csat").and_then(Value::as_i64),
        nps: f.fields.get("nps").and_then(Value::as_i64),
        opened_at: f.ts("opened_at")?,
        resolved_at: if is_resolved(f) {
            f.ts("resolved_at")
        } else {
            None
        },
    })
}

/// p-th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

pub(super) fn build(
    data: &Data,
    audience: &Audience,
    period: &Period,
    now: DateTime<Utc>,
) -> Vec<Table> {
    let reps = audience.rep_ids();
    let mine: Vec<&Owned> = data
        .of("feedback")
        .iter()
        .filter(|f| data.owner(f).is_some_and(|o| reps.contains(&o)))
        .collect();

    // CSAT and NPS by ISO week (each week clipped to the period).
    let mut weekly = Table::new(
        "weekly",
        &["week", "from", "to", "responses", "csat", "nps"],
    );
    let facts = Facts {
        feedback: mine.iter().filter_map(|f| fact(f)).collect(),
        ..Facts::default()
    };
    let mut day = period.start();
    while day < period.end() {
        let w = day.iso_week();
        let monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
        let last = (monday + Days::new(6)).min(period.end() - Days::new(1));
        let Some(slice) = Period::range(day, last) else {
            break;
        };
        let responses = facts
            .feedback
            .iter()
            .filter(|f| slice.contains(f.opened_at) && (f.csat.is_some() || f.nps.is_some()))
            .count();
        weekly.rows.push(vec![
            text(Period::Week(w.year(), w.week()).to_string()),
            text(day.to_string()),
            text(last.to_string()),
            count(responses),
            metric_cell(compute(Metric::Csat, &slice, &facts)),
            metric_cell(compute(Metric::Nps, &slice, &facts)),
        ]);
        day = last + Days::new(1);
    }
    let total_responses = facts
        .feedback
        .iter()
        .filter(|f| period.contains(f.opened_at) && (f.csat.is_some() || f.nps.is_some()))
        .count();
    weekly.totals = Some(vec![
        text("total"),
        text(period.start().to_string()),
        text((period.end() - Days::new(1)).to_string()),
        count(total_responses),
        metric_cell(compute(Metric::Csat, period, &facts)),
        metric_cell(compute(Metric::Nps, period, &facts)),
    ]);

    // Complaints opened in the period, by category.
    let mut by_cat: BTreeMap<String, (usize, usize, Vec<f64>)> = BTreeMap::new();
    let mut all_hours = Vec::new();
    let mut opened_total = 0;
    for f in &mine {
        if f.str("kind") != Some("complaint")
            || !f.ts("opened_at").is_some_and(|t| period.contains(t))
        {
            continue;
        }
        opened_total += 1;
        let e = by_cat
            .entry(f.str("category").unwrap_or("(none)").to_owned())
            .or_default();
        e.0 += 1;
        if is_resolved(f) {
            e.1 += 1;
            if let (Some(o), Some(r)) = (f.ts("opened_at"), f.ts("resolved_at")) {
                let h = (r - o).num_seconds() as f64 / 3600.0;
                e.2.push(h);
                all_hours.push(h);
            }
        }
    }
    let mut categories = Table::new(
        "by_category",
        &[
            "category",
            "complaints",
            "resolved",
            "open",
            "mean_hours",
            "p90_hours",
        ],
    );
    let stats = |hours: &mut Vec<f64>| {
        hours.sort_by(f64::total_cmp);
        let mean = (!hours.is_empty()).then(|| hours.iter().sum::<f64>() / hours.len() as f64);
        (opt_num(mean), opt_num(percentile(hours, 90.0)))
    };
    let resolved_total: usize = by_cat.values().map(|e| e.1).sum();
    for (cat, (n, resolved, mut hours)) in by_cat {
        let (mean, p90) = stats(&mut hours);
        categories.rows.push(vec![
            text(cat),
            count(n),
            count(resolved),
            count(n - resolved),
            mean,
            p90,
        ]);
    }
    let (mean, p90) = stats(&mut all_hours);
    categories.totals = Some(vec![
        text("total"),
        count(opened_total),
        count(resolved_total),
        count(opened_total - resolved_total),
        mean,
        p90,
    ]);

    // Complaints open now (opened before the period ends), by age.
    let mut ages = Table::new("open_by_age", &["age", "open_complaints"]);
    let mut buckets = [0usize; AGE_BUCKETS.len()];
    for f in &mine {
        if f.str("kind") != Some("complaint") || is_resolved(f) {
            continue;
        }
        let Some(opened) = f.ts("opened_at").filter(|t| t.date_naive() < period.end()) else {
            continue;
        };
        let days = (now - opened).num_seconds().max(0) / 86_400;
        if let Some(i) = AGE_BUCKETS.iter().position(|(_, hi)| days < *hi) {
            buckets[i] += 1;
        }
    }
    for ((label, _), n) in AGE_BUCKETS.iter().zip(buckets) {
        ages.rows.push(vec![text(*label), count(n)]);
    }
    ages.totals = Some(vec![text("total"), count(buckets.iter().sum())]);

    // Low scores in the period and whether the loop was closed.
    let followed: HashSet<RecordId> = data
        .of("feedback")
        .iter()
        .filter_map(|f| f.rec("follow_up_of"))
        .collect();
    let low: Vec<&&Owned> = mine
        .iter()
        .filter(|f| f.ts("opened_at").is_some_and(|t| period.contains(t)))
        .filter(|f| {
            let csat = f.fields.get("csat").and_then(Value::as_i64);
            let nps = f.fields.get("nps").and_then(Value::as_i64);
            csat.is_some_and(|c| c <= LOW_CSAT) || nps.is_some_and(|n| n <= LOW_NPS)
        })
        .collect();
    let closed = low
        .iter()
        .filter(|f| followed.contains(&f.id) || is_resolved(f))
        .count();
    let mut loop_closure = Table::new(
        "loop_closure",
        &["low_scores", "followed_up", "follow_up_rate"],
    );
    loop_closure.rows.push(vec![
        count(low.len()),
        count(closed),
        if low.is_empty() {
            Value::Null
        } else {
            num(closed as f64 / low.len() as f64)
        },
    ]);
    vec![weekly, categories, ages, loop_closure]
}
