//! Metric definitions, written down once so the laptop and the server
//! compute the same number from the same data.
//!
//! | id | definition |
//! |---|---|
//! | `visits` | visits started in the period; an amended visit counts once (the amendment replaces the original) |
//! | `customers_visited` | distinct customers among those visits |
//! | `coverage` | customers assigned now that were visited in the period ÷ customers assigned now (no data when none are assigned) |
//! | `sales` | sum of sales in the period, voided sales excluded, in major units of the currency |
//! | `new_customers` | customers created in the period |
//! | `csat` | mean of the 1–5 CSAT scores given in the period |
//! | `nps` | % of 0–10 scores that are 9–10 minus % that are 0–6, in the period |
//! | `complaints_opened` | complaints opened in the period |
//! | `complaints_resolved` | complaints resolved in the period |
//! | `resolution_hours` | mean hours from opening to resolution of complaints resolved in the period |
//! | `training_hours` | course hours of training completed in the period |
//! | `training_completion` | completed ÷ required assignments due by the end of the period |
//!
//! A metric with no data is [`MetricValue::NoData`]; nothing divides by zero.

pub mod effect;
pub mod evaluation;
mod facts;
mod goal;
pub mod incentive;
mod period;

pub use facts::{FactIndex, FactIndexBuilder, PlainRecord, RecordFact, facts_for};
pub use goal::{GoalProgress, GoalSpec, GoalSubject, PACE_TOLERANCE, Pace, pace, progress};
pub use period::{Period, PeriodError};

use crate::id::RecordId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
/// A hash set of random ids, hashed with foldhash (several times faster
/// than SipHash over a million visits).
type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// A metric id (the same in flags, JSON keys and CSV headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// See the module table.
    Visits,
    /// See the module table.
    CustomersVisited,
    /// See the module table.
    Coverage,
    /// See the module table.
    Sales,
    /// See the module table.
    NewCustomers,
    /// See the module table.
    Csat,
    /// See the module table.
    Nps,
    /// See the module table.
    ComplaintsOpened,
    /// See the module table.
    ComplaintsResolved,
    /// See the module table.
    ResolutionHours,
    /// See the module table.
    TrainingHours,
    /// See the module table.
    TrainingCompletion,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 12] = [
        Metric::Visits,
        Metric::CustomersVisited,
        Metric::Coverage,
        Metric::Sales,
        Metric::NewCustomers,
        Metric::Csat,
        Metric::Nps,
        Metric::ComplaintsOpened,
        Metric::ComplaintsResolved,
        Metric::ResolutionHours,
        Metric::TrainingHours,
        Metric::TrainingCompletion,
    ];

    /// The id.
    pub fn as_str(&self) -> &'static str {
        crate::schema::METRIC_IDS[Metric::ALL.iter().position(|m| m == self).unwrap_or(0)]
    }

    /// Parse an id.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A metric's value over a period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// A number.
    Value(f64),
    /// Nothing to compute it from (e.g. no scores, no customers assigned).
    NoData,
}

impl MetricValue {
    /// The number, if any.
    pub fn value(&self) -> Option<f64> {
        match self {
            MetricValue::Value(v) => Some(*v),
            MetricValue::NoData => None,
        }
    }
}

/// A visit, as metrics see it.
#[derive(Clone, Debug, PartialEq)]
pub struct VisitFact {
    /// The visit.
    pub id: RecordId,
    /// Its customer.
    pub customer_id: RecordId,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The visit it amends, if it is an amendment.
    pub amends: Option<RecordId>,
}

/// A sale.
#[derive(Clone, Debug, PartialEq)]
pub struct SaleFact {
    /// Amount in minor units.
    pub minor: i64,
    /// Minor digits of its currency.
    pub minor_digits: u32,
    /// When it was sold.
    pub sold_at: DateTime<Utc>,
    /// Whether it was voided.
    pub voided: bool,
}

/// A feedback entry.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackFact {
    /// `survey`, `complaint`, `suggestion` or `praise`.
    pub kind: String,
    /// 1–5.
    pub csat: Option<i64>,
    /// 0–10.
    pub nps: Option<i64>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved, if it was.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// A training assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingFact {
    /// Course hours.
    pub hours: f64,
    /// Whether the course is required for the rep.
    pub required: bool,
    /// Due date.
    pub due: NaiveDate,
    /// When it was completed.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Everything the metrics of one rep or team are computed from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Visits.
    pub visits: Vec<VisitFact>,
    /// Sales.
    pub sales: Vec<SaleFact>,
    /// Creation instants of the customers.
    pub customers_created: Vec<DateTime<Utc>>,
    /// The customers currently assigned.
    pub customers_assigned: Vec<RecordId>,
    /// Feedback.
    pub feedback: Vec<FeedbackFact>,
    /// Training assignments.
    pub training: Vec<TrainingFact>,
}

/// Compute one metric over a period.
pub fn compute(metric: Metric, period: &Period, facts: &Facts) -> MetricValue {
    compute_with(metric, period, facts, &mut Shared::default())
}

/// Work several metrics of one period share.
#[derive(Default)]
struct Shared<'a> {
    /// The period's visits ([`visits_in`]).
    visits: Option<Vec<&'a VisitFact>>,
    /// Distinct customers among them.
    customers: Option<FastSet<RecordId>>,
}

/// Compute several metrics over one period, in order: the same values as
/// [`compute`] for each, finding the period's visits once.
pub fn compute_all(metrics: &[Metric], period: &Period, facts: &Facts) -> Vec<MetricValue> {
    let mut shared = Shared::default();
    metrics
        .iter()
        .map(|m| compute_with(*m, period, facts, &mut shared))
        .collect()
}

fn compute_with<'a>(
    metric: Metric,
    period: &Period,
    facts: &'a Facts,
    shared: &mut Shared<'a>,
) -> MetricValue {
    use MetricValue::{NoData, Value};
    let count = |n: usize| Value(n as f64);
    let (start, end) = (period.start(), period.end());
    let (from, to) = (instant(start), instant(end));
    let within = |t: DateTime<Utc>| t >= from && t < to;
    // The distinct customers visited, found once for all metrics that use
    // them (give it back with `shared.customers = Some(..)`).
    let visited = |shared: &mut Shared<'a>| -> FastSet<RecordId> {
        if let Some(set) = shared.customers.take() {
            return set;
        }
        customers_visited(
            shared
                .visits
                .get_or_insert_with(|| visits_in(period, facts)),
        )
    };
    match metric {
        Metric::Visits => count(
            shared
                .visits
                .get_or_insert_with(|| visits_in(period, facts))
                .len(),
        ),
        Metric::CustomersVisited => {
            let set = visited(shared);
            let n = set.len();
            shared.customers = Some(set);
            count(n)
        }
        Metric::Coverage => {
            // Visits credited to this rep on customers since moved to
            // another owner count as visits, not as coverage of theirs.
            if facts.customers_assigned.is_empty() {
                NoData
            } else {
                let set = visited(shared);
                let covered = facts
                    .customers_assigned
                    .iter()
                    .filter(|c| set.contains(c))
                    .count();
                shared.customers = Some(set);
                Value(covered as f64 / facts.customers_assigned.len() as f64)
            }
        }
        Metric::Sales => {
            // Summed exactly in minor units per currency precision, so the
            // total does not depend on the order the sales come in.
            let mut by_digits: std::collections::BTreeMap<u32, i128> =
                std::collections::BTreeMap::new();
            for s in facts
                .sales
                .iter()
                .filter(|s| !s.voided && within(s.sold_at))
            {
                *by_digits.entry(s.minor_digits).or_default() += i128::from(s.minor);
            }
            Value(
                by_digits
                    .into_iter()
                    .map(|(digits, minor)| minor as f64 / 10f64.powi(digits as i32))
                    .fold(0.0, |a, b| a + b),
            )
        }
        Metric::NewCustomers => count(
            facts
                .customers_created
                .iter()
                .filter(|t| within(**t))
                .count(),
        ),
        Metric::Csat => mean(
            facts
                .feedback
                .iter()
                .filter(|f| within(f.opened_at))
                .filter_map(|f| f.csat)
                .map(|v| v as f64),
        ),
        Metric::Nps => {
            let scores: Vec<i64> = facts
                .feedback
                .iter()
                .filter(|f| within(f.opened_at))
                .filter_map(|f| f.nps)
                .collect();
            if scores.is_empty() {
                return NoData;
            }
            let n = scores.len() as f64;
            let promoters = scores.iter().filter(|s| **s >= 9).count() as f64;
            let detractors = scores.iter().filter(|s| **s <= 6).count() as f64;
            Value(100.0 * (promoters - detractors) / n)
        }
        Metric::ComplaintsOpened => {
            count(complaints(facts).filter(|f| within(f.opened_at)).count())
        }
        Metric::ComplaintsResolved => count(resolved_in(period, facts).count()),
        Metric::ResolutionHours => {
            // Whole seconds summed exactly: the mean does not depend on order.
            let (secs, n) = resolved_in(period, facts)
                .filter_map(|f| f.resolved_at.map(|r| (r - f.opened_at).num_seconds()))
                .fold((0i128, 0u64), |(s, n), v| (s + i128::from(v), n + 1));
            if n == 0 {
                NoData
            } else {
                Value(secs as f64 / n as f64 / 3600.0)
            }
        }
        Metric::TrainingHours => Value(
            facts
                .training
                .iter()
                .filter(|t| t.completed_at.is_some_and(within))
                .map(|t| t.hours)
                .fold(0.0, |a, b| a + b),
        ),
        Metric::TrainingCompletion => {
            let due: Vec<&TrainingFact> = facts
                .training
                .iter()
                .filter(|t| t.required && t.due < period.end())
                .collect();
            if due.is_empty() {
                return NoData;
            }
            let done = due
                .iter()
                .filter(|t| {
                    t.completed_at
                        .is_some_and(|c| c.date_naive() < period.end())
                })
                .count();
            Value(done as f64 / due.len() as f64)
        }
    }
}

fn visits_in<'a>(period: &Period, facts: &'a Facts) -> Vec<&'a VisitFact> {
    let amended: FastSet<RecordId> = facts.visits.iter().filter_map(|v| v.amends).collect();
    let (from, to) = (instant(period.start()), instant(period.end()));
    facts
        .visits
        .iter()
        .filter(|v| {
            v.started_at >= from
                && v.started_at < to
                && (amended.is_empty() || !amended.contains(&v.id))
        })
        .collect()
}

/// The first instant (UTC) of a day: `t` falls on a day in `[a, b)` exactly
/// when `instant(a) <= t < instant(b)`.
fn instant(day: chrono::NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

fn customers_visited(visits: &[&VisitFact]) -> FastSet<RecordId> {
    visits.iter().map(|v| v.customer_id).collect()
}

fn complaints(facts: &Facts) -> impl Iterator<Item = &FeedbackFact> {
    facts.feedback.iter().filter(|f| f.kind == "complaint")
}

fn resolved_in<'a>(period: &'a Period, facts: &'a Facts) -> impl Iterator<Item = &'a FeedbackFact> {
    complaints(facts).filter(move |f| f.resolved_at.is_some_and(|r| period.contains(r)))
}

fn mean(values: impl Iterator<Item = f64>) -> MetricValue {
    let (sum, n) = values.fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        MetricValue::NoData
    } else {
        MetricValue::Value(sum / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse_ts(s).unwrap()
    }

    fn id(n: u128) -> RecordId {
        RecordId(Uuid::from_u128(n))
    }

    #[test]
    fn ids_match_the_schema_table() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
            assert_eq!(
                serde_json::to_value(m).unwrap(),
                serde_json::json!(m.as_str())
            );
        }
    }

    #[test]
    fn empty_data_never_divides_by_zero() {
        let p = Period::parse("2026-11").unwrap();
        let f = Facts::default();
        for m in [
            Metric::Coverage,
            Metric::Csat,
            Metric::Nps,
            Metric::ResolutionHours,
            Metric::TrainingCompletion,
        ] {
            assert_eq!(compute(m, &p, &f), MetricValue::NoData, "{}", m.as_str());
        }
        assert_eq!(compute(Metric::Visits, &p, &f), MetricValue::Value(0.0));
        for m in [Metric::Sales, Metric::TrainingHours] {
            let v = compute(m, &p, &f).value().unwrap();
            // An empty f64 sum is -0.0, which prints as "-0".
            assert!(v == 0.0 && v.is_sign_positive(), "{}: {v}", m.as_str());
        }
    }

    #[test]
    fn definitions_on_a_small_example() {
        let p = Period::parse("2026-11").unwrap();
        let fb = |kind: &str, csat, nps, opened: &str, resolved: Option<&str>| FeedbackFact {
            kind: kind.into(),
            csat,
            nps,
            opened_at: t(opened),
            resolved_at: resolved.map(t),
        };
        let facts = Facts {
            visits: vec![
                VisitFact {
                    id: id(1),
                    customer_id: id(10),
                    started_at: t("2026-11-02T09:00:00Z"),
                    amends: None,
                },
                VisitFact {
                    id: id(2),
                    customer_id: id(10),
                    started_at: t("2026-11-03T09:00:00Z"),
                    amends: None,
                },
                VisitFact {
                    id: id(3),
                    customer_id: id(11),
                    started_at: t("2026-11-04T09:00:00Z"),
                    amends: Some(id(2)),
                },
                VisitFact {
                    id: id(4),
                    customer_id: id(12),
                    started_at: t("2026-10-31T23:59:59Z"),
                    amends: None,
                },
            ],
            sales: vec![
                SaleFact {
                    minor: 123_456,
                    minor_digits: 2,
                    sold_at: t("2026-11-05T00:00:00Z"),
                    voided: false,
                },
                SaleFact {
                    minor: 99_900,
                    minor_digits: 2,
                    sold_at: t("2026-11-05T00:00:00Z"),
                    voided: true,
                },
            ],
            customers_created: vec![t("2026-11-01T00:00:00Z"), t("2026-09-01T00:00:00Z")],
            customers_assigned: vec![id(10), id(11), id(12), id(13)],
            feedback: vec![
                fb("survey", Some(5), Some(10), "2026-11-01T00:00:00Z", None),
                fb("survey", Some(2), Some(3), "2026-11-02T00:00:00Z", None),
                fb("survey", None, Some(8), "2026-11-02T00:00:00Z", None),
                fb(
                    "complaint",
                    None,
                    None,
                    "2026-11-02T00:00:00Z",
                    Some("2026-11-03T12:00:00Z"),
                ),
                fb(
                    "complaint",
                    None,
                    None,
                    "2026-10-30T00:00:00Z",
                    Some("2026-11-01T00:00:00Z"),
                ),
            ],
            training: vec![
                TrainingFact {
                    hours: 4.0,
                    required: true,
                    due: NaiveDate::from_ymd_opt(2026, 11, 10).unwrap(),
                    completed_at: Some(t("2026-11-08T00:00:00Z")),
                },
                TrainingFact {
                    hours: 2.0,
                    required: true,
                    due: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                    completed_at: None,
                },
                TrainingFact {
                    hours: 8.0,
                    required: false,
                    due: NaiveDate::from_ymd_opt(2026, 12, 20).unwrap(),
                    completed_at: None,
                },
            ],
        };
        let v = |m| compute(m, &p, &facts).value();
        assert_eq!(
            v(Metric::Visits),
            Some(2.0),
            "visit 2 is replaced by its amendment; visit 4 is in October"
        );
        assert_eq!(v(Metric::CustomersVisited), Some(2.0));
        assert_eq!(v(Metric::Coverage), Some(0.5));
        let moved_on = Facts {
            customers_assigned: vec![id(10), id(12)],
            ..facts.clone()
        };
        assert_eq!(
            compute(Metric::Coverage, &p, &moved_on),
            MetricValue::Value(0.5),
            "a visited customer now someone else's is not covered"
        );
        assert_eq!(v(Metric::Sales), Some(1234.56));
        assert_eq!(v(Metric::NewCustomers), Some(1.0));
        assert_eq!(v(Metric::Csat), Some(3.5));
        assert!((v(Metric::Nps).unwrap() - (100.0 * (1.0 - 1.0) / 3.0)).abs() < 1e-9);
        assert_eq!(v(Metric::ComplaintsOpened), Some(1.0));
        assert_eq!(v(Metric::ComplaintsResolved), Some(2.0));
        assert_eq!(
            v(Metric::ResolutionHours),
            Some(42.0),
            "mean of 36 h and 48 h"
        );
        assert_eq!(v(Metric::TrainingHours), Some(4.0));
        assert_eq!(v(Metric::TrainingCompletion), Some(0.5));
    }
}
