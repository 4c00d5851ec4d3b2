//! Goal progress: actual, % attained, expected-to-date by linear pacing and
//! a pace status, written once for the laptop and the server.
//!
//! - **Counting metrics** (`visits`, `customers_visited`, `sales`,
//!   `new_customers`, `complaints_opened`, `complaints_resolved`,
//!   `training_hours`) accumulate over the period, so the expected value to
//!   date is `target × elapsed share of the period` (linear pacing; the share
//!   counts `today` as elapsed).
//! - **Rate metrics** (`coverage`, `csat`, `nps`, `resolution_hours`,
//!   `training_completion`) are meant to sit at the target throughout, so
//!   the expected value to date is the target itself.
//! - For `complaints_opened` and `resolution_hours` lower is better: the
//!   target is a ceiling.
//!
//! % attained is `100 × actual ÷ target` (for a ceiling `100 × target ÷
//! actual`, and 100 when the actual is 0); with a target of 0 or no data it
//! is absent. The pace status compares the actual with the expected value:
//! `behind` when it is 10 % or more short of pace (for a ceiling: 10 % or
//! more over), `ahead` when it is 10 % or more better than pace, otherwise
//! `on_track`. Before the period starts the expected value is 0 and the
//! status is `on_track`. A metric with no data has no status.

use super::{Facts, Metric, MetricValue, Period, PlainRecord, compute};
use crate::id::{TeamId, UserId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How far short of (or beyond) pace counts as `behind` (or `ahead`).
pub const PACE_TOLERANCE: f64 = 0.10;

impl Metric {
    /// Whether the metric accumulates over a period (a count or a sum)
    /// rather than being a rate or mean.
    pub fn accumulates(&self) -> bool {
        matches!(
            self,
            Metric::Visits
                | Metric::CustomersVisited
                | Metric::Sales
                | Metric::NewCustomers
                | Metric::ComplaintsOpened
                | Metric::ComplaintsResolved
                | Metric::TrainingHours
        )
    }

    /// Whether smaller values are better (the target is a ceiling).
    pub fn lower_is_better(&self) -> bool {
        matches!(self, Metric::ComplaintsOpened | Metric::ResolutionHours)
    }
}

/// Whom a goal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalSubject {
    /// One rep.
    Rep(UserId),
    /// A team: its members' facts roll up.
    Team(TeamId),
}

/// What a goal asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GoalSpec {
    /// The metric.
    pub metric: Metric,
    /// Over this period.
    pub period: Period,
    /// The target value.
    pub target: f64,
    /// An optional stretch target.
    pub stretch: Option<f64>,
}

impl GoalSpec {
    /// Read a `goals` record: whom it is for and what it asks. `None` when the
    /// record is not a readable goal.
    pub fn from_record(r: &PlainRecord<'_>) -> Option<(GoalSubject, GoalSpec)> {
        if r.collection != "goals" {
            return None;
        }
        let text = |f: &str| r.fields.get(f).and_then(Value::as_str);
        let subject = match (text("rep_id"), text("team_id")) {
            (Some(rep), _) => GoalSubject::Rep(rep.parse().ok()?),
            (None, Some(team)) => GoalSubject::Team(team.parse().ok()?),
            (None, None) => return None,
        };
        let spec = GoalSpec {
            metric: Metric::parse(text("metric")?)?,
            period: Period::parse(text("period")?).ok()?,
            target: r.fields.get("target").and_then(Value::as_f64)?,
            stretch: r.fields.get("stretch").and_then(Value::as_f64),
        };
        Some((subject, spec))
    }
}

/// Where a goal stands against its pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// 10 % or more better than pace.
    Ahead,
    /// Within 10 % of pace.
    OnTrack,
    /// 10 % or more short of pace.
    Behind,
}

impl Pace {
    /// The status as shown and sent.
    pub fn as_str(&self) -> &'static str {
        match self {
            Pace::Ahead => "ahead",
            Pace::OnTrack => "on_track",
            Pace::Behind => "behind",
        }
    }
}

/// A goal's progress at a given day.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoalProgress {
    /// The metric's value over the whole period, so far.
    pub actual: MetricValue,
    /// % of the target attained (absent with no data or a zero target).
    pub attained_pct: Option<f64>,
    /// % of the stretch target attained, when there is one.
    pub stretch_pct: Option<f64>,
    /// The value expected by `today` under linear pacing.
    pub expected_to_date: f64,
    /// Share of the period elapsed at the end of `today` (0–1).
    pub elapsed: f64,
    /// The pace status (absent with no data).
    pub pace: Option<Pace>,
}

fn attained(metric: Metric, actual: f64, target: f64) -> Option<f64> {
    if metric.lower_is_better() {
        if actual <= 0.0 {
            Some(100.0)
        } else {
            Some(100.0 * target / actual)
        }
    } else if target > 0.0 {
        Some(100.0 * actual / target)
    } else {
        None
    }
}

/// The pace status of `actual` against `expected`.
pub fn pace(metric: Metric, actual: f64, expected: f64) -> Pace {
    let band = PACE_TOLERANCE * expected.abs();
    let (short, over) = if metric.lower_is_better() {
        (actual - expected, expected - actual)
    } else {
        (expected - actual, actual - expected)
    };
    if expected.abs() < f64::EPSILON {
        return if metric.lower_is_better() && actual > 0.0 {
            Pace::Behind
        } else {
            Pace::OnTrack
        };
    }
    if short >= band - 1e-9 {
        Pace::Behind
    } else if over >= band - 1e-9 {
        Pace::Ahead
    } else {
        Pace::OnTrack
    }
}

/// A goal's progress at the end of `today`, from the facts of its rep (or of
/// all the members of its team, see [`super::FactIndex::facts_for`]).
pub fn progress(goal: &GoalSpec, facts: &Facts, today: NaiveDate) -> GoalProgress {
    let actual = compute(goal.metric, &goal.period, facts);
    let elapsed = goal.period.elapsed_fraction(today);
    let expected_to_date = if goal.metric.accumulates() {
        goal.target * elapsed
    } else if elapsed > 0.0 {
        goal.target
    } else {
        0.0
    };
    let value = actual.value();
    GoalProgress {
        actual,
        attained_pct: value.and_then(|v| attained(goal.metric, v, goal.target)),
        stretch_pct: goal
            .stretch
            .and_then(|s| value.and_then(|v| attained(goal.metric, v, s))),
        expected_to_date,
        elapsed,
        pace: value.map(|v| {
            if elapsed > 0.0 {
                pace(goal.metric, v, expected_to_date)
            } else {
                Pace::OnTrack
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::RecordId;
    use crate::metrics::{SaleFact, VisitFact};
    use uuid::Uuid;

    fn d(s: &str) -> NaiveDate {
        crate::time::parse_date(s).unwrap()
    }

    fn visits(n: u128) -> Facts {
        Facts {
            visits: (0..n)
                .map(|i| VisitFact {
                    id: RecordId(Uuid::from_u128(i + 1)),
                    customer_id: RecordId(Uuid::from_u128(1000)),
                    started_at: crate::time::parse_ts("2026-11-02T09:00:00Z").unwrap(),
                    amends: None,
                })
                .collect(),
            ..Facts::default()
        }
    }

    fn goal(metric: Metric, target: f64) -> GoalSpec {
        GoalSpec {
            metric,
            period: Period::parse("2026-11").unwrap(),
            target,
            stretch: Some(target * 2.0),
        }
    }

    #[test]
    fn counting_goals_pace_linearly() {
        let g = goal(Metric::Visits, 30.0);
        let p = progress(&g, &visits(15), d("2026-11-15"));
        assert_eq!(p.actual, MetricValue::Value(15.0));
        assert!((p.expected_to_date - 15.0).abs() < 1e-9);
        assert!((p.attained_pct.unwrap() - 50.0).abs() < 1e-9);
        assert!((p.stretch_pct.unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(p.pace, Some(Pace::OnTrack));
        assert_eq!(
            progress(&g, &visits(14), d("2026-11-15")).pace,
            Some(Pace::OnTrack),
            "6.7 % short is still on track"
        );
        assert_eq!(
            progress(&g, &visits(13), d("2026-11-15")).pace,
            Some(Pace::Behind),
            "13.3 % short is behind"
        );
        assert_eq!(
            progress(&g, &visits(17), d("2026-11-15")).pace,
            Some(Pace::Ahead)
        );
    }

    #[test]
    fn exactly_ten_percent_short_is_behind() {
        let g = goal(Metric::Visits, 20.0);
        // 30 days, day 15 -> expected 10; 9 is exactly 10 % short.
        assert_eq!(
            progress(&g, &visits(9), d("2026-11-15")).pace,
            Some(Pace::Behind)
        );
        assert_eq!(
            progress(&g, &visits(11), d("2026-11-15")).pace,
            Some(Pace::Ahead)
        );
    }

    #[test]
    fn before_the_period_nothing_is_expected() {
        let g = goal(Metric::Visits, 30.0);
        let p = progress(&g, &Facts::default(), d("2026-10-20"));
        assert!(p.expected_to_date.abs() < 1e-9);
        assert_eq!(p.pace, Some(Pace::OnTrack));
        assert_eq!(p.attained_pct, Some(0.0));
    }

    #[test]
    fn rate_goals_expect_the_target_throughout() {
        let g = goal(Metric::Csat, 4.0);
        let p = progress(&g, &Facts::default(), d("2026-11-10"));
        assert_eq!(p.actual, MetricValue::NoData);
        assert_eq!(p.pace, None, "no data, no status");
        assert_eq!(p.attained_pct, None);
        assert!((p.expected_to_date - 4.0).abs() < 1e-9);
    }

    #[test]
    fn ceilings_invert_the_comparison() {
        let g = GoalSpec {
            metric: Metric::ComplaintsOpened,
            period: Period::parse("2026-11").unwrap(),
            target: 10.0,
            stretch: None,
        };
        let mut f = Facts::default();
        let complaint = |day: &str| crate::metrics::FeedbackFact {
            kind: "complaint".into(),
            csat: None,
            nps: None,
            opened_at: crate::time::parse_ts(day).unwrap(),
            resolved_at: None,
        };
        f.feedback = vec![complaint("2026-11-02T00:00:00Z")];
        let p = progress(&g, &f, d("2026-11-15"));
        assert_eq!(p.pace, Some(Pace::Ahead), "1 opened vs 5 allowed so far");
        assert!((p.attained_pct.unwrap() - 1000.0).abs() < 1e-9);
        f.feedback = (0..8).map(|_| complaint("2026-11-02T00:00:00Z")).collect();
        assert_eq!(progress(&g, &f, d("2026-11-15")).pace, Some(Pace::Behind));
        assert_eq!(
            progress(&g, &Facts::default(), d("2026-11-15")).attained_pct,
            Some(100.0)
        );
    }

    #[test]
    fn reads_goal_records() {
        let fields = serde_json::json!({"team_id": Uuid::from_u128(9).to_string(), "metric": "sales",
            "period": "2026-Q4", "target": 1000.0, "stretch": 1200});
        let serde_json::Value::Object(fields) = fields else {
            unreachable!()
        };
        let r = PlainRecord {
            collection: "goals",
            id: RecordId(Uuid::from_u128(1)),
            archived: false,
            fields: &fields,
        };
        let (subject, spec) = GoalSpec::from_record(&r).unwrap();
        assert_eq!(subject, GoalSubject::Team(TeamId(Uuid::from_u128(9))));
        assert_eq!(spec.metric, Metric::Sales);
        assert_eq!(spec.period, Period::Quarter(2026, 4));
        assert_eq!(spec.stretch, Some(1200.0));
        let r = PlainRecord {
            collection: "visits",
            ..r
        };
        assert!(GoalSpec::from_record(&r).is_none());
    }

    #[test]
    fn zero_target_has_no_attainment() {
        let g = goal(Metric::Sales, 0.0);
        let f = Facts {
            sales: vec![SaleFact {
                minor: 100,
                minor_digits: 2,
                sold_at: crate::time::parse_ts("2026-11-02T00:00:00Z").unwrap(),
                voided: false,
            }],
            ..Facts::default()
        };
        let p = progress(&g, &f, d("2026-11-15"));
        assert_eq!(p.attained_pct, None);
        assert_eq!(p.pace, Some(Pace::OnTrack));
    }
}
