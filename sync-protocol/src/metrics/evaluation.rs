//! Evaluation scorecards: weighted metric lines joined with a supervisor's
//! rating, written once for the laptop and the server.
//!
//! A **template** lists metric lines (`METRIC:WEIGHT[:RULE[:TARGET]]`) and the
//! weight of the supervisor's rating (`rating_weight`, 0–100 %).
//!
//! For each line of a scorecard:
//! - **target**: the rep's goal for that metric and period when there is one,
//!   else the template line's default target, else none;
//! - **actual**: [`compute`] over the period from the rep's facts;
//! - **attainment** (%): `100 × actual ÷ target`; for a ceiling metric
//!   (`complaints_opened`, `resolution_hours`) `100 × target ÷ actual`, and
//!   100 when the actual is 0; absent for a target of 0 on a normal metric;
//! - **score** (0–100) by the line's rule: `linear` = `min(attainment, 100)`,
//!   `threshold` = 100 when attainment ≥ 100, else 0.
//!
//! A line with no data or no target has no score and is left out: the other
//! lines' weights are renormalised, so
//! `metric_score = Σ weightᵢ × scoreᵢ ÷ Σ weightᵢ` over scored lines, and the
//! weighted attainment is the same mean over uncapped attainments.
//!
//! The **overall** score, 0–100, with rating `r` (1–5) and rating weight `q` %:
//! `rating_score = (r − 1) × 25` and
//! `overall = (100 − q) % × metric_score + q % × rating_score`,
//! rounded to one decimal. With no scored line the overall is the rating score.

use super::{Facts, Metric, MetricValue, Period, compute};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a line's attainment becomes a 0–100 score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `min(attainment, 100)`.
    Linear,
    /// 100 when the target is met, else 0.
    Threshold,
}

impl Rule {
    /// The rule's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Linear => "linear",
            Rule::Threshold => "threshold",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Rule> {
        match s {
            "linear" => Some(Rule::Linear),
            "threshold" => Some(Rule::Threshold),
            _ => None,
        }
    }

    /// The score of an attainment (%).
    pub fn score(&self, attainment: f64) -> f64 {
        match self {
            Rule::Linear => attainment.clamp(0.0, 100.0),
            Rule::Threshold => {
                if attainment >= 100.0 - 1e-9 {
                    100.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// A template line that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The text is not `METRIC:WEIGHT[:RULE[:TARGET]]`.
    #[error(
        "{0:?} is not a template line: write METRIC:WEIGHT[:RULE[:TARGET]], e.g. visits:40 or csat:20:threshold:4.5"
    )]
    Syntax(String),
    /// Unknown metric id.
    #[error("{0:?} is not a metric")]
    Metric(String),
    /// Weight not a positive number.
    #[error("weight {0:?} must be a number above 0")]
    Weight(String),
    /// Unknown rule.
    #[error("rule {0:?} is not linear or threshold")]
    Rule(String),
    /// Target not a number of 0 or more.
    #[error("target {0:?} must be a number of 0 or more")]
    Target(String),
    /// The same metric twice.
    #[error("metric {0} appears twice")]
    Duplicate(String),
    /// No lines.
    #[error("a template needs at least one line")]
    Empty,
    /// Rating weight outside 0–100.
    #[error("rating weight {0} must be between 0 and 100")]
    RatingWeight(String),
}

/// One weighted metric line of a template.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TemplateLine {
    /// The metric.
    pub metric: Metric,
    /// Its weight (any positive number; weights are relative).
    pub weight: f64,
    /// How attainment is scored.
    pub rule: Rule,
    /// Default target when the rep has no goal for the metric.
    pub target: Option<f64>,
}

impl TemplateLine {
    /// Parse `METRIC:WEIGHT[:RULE[:TARGET]]` (rule defaults to `linear`).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let parts: Vec<&str> = text.trim().split(':').map(str::trim).collect();
        if !(2..=4).contains(&parts.len()) {
            return Err(TemplateError::Syntax(text.to_owned()));
        }
        let metric =
            Metric::parse(parts[0]).ok_or_else(|| TemplateError::Metric(parts[0].into()))?;
        let weight = parts[1]
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite() && *w > 0.0)
            .ok_or_else(|| TemplateError::Weight(parts[1].into()))?;
        let rule = match parts.get(2).copied() {
            None | Some("") => Rule::Linear,
            Some(r) => Rule::parse(r).ok_or_else(|| TemplateError::Rule(r.into()))?,
        };
        let target = match parts.get(3).copied() {
            None | Some("") => None,
            Some(t) => Some(
                t.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| TemplateError::Target(t.into()))?,
            ),
        };
        Ok(Self {
            metric,
            weight,
            rule,
            target,
        })
    }
}

impl fmt::Display for TemplateLine {
    /// The canonical text form, readable by [`TemplateLine::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.metric.as_str(),
            self.weight,
            self.rule.as_str()
        )?;
        if let Some(t) = self.target {
            write!(f, ":{t}")?;
        }
        Ok(())
    }
}

/// An evaluation template: metric lines and the rating's weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The lines, each metric at most once.
    pub lines: Vec<TemplateLine>,
    /// Weight of the supervisor's rating in the overall score, 0–100 (%).
    pub rating_weight: f64,
}

impl Template {
    /// Build a template from line texts, checking every rule above.
    pub fn parse<S: AsRef<str>>(lines: &[S], rating_weight: f64) -> Result<Self, TemplateError> {
        if !(0.0..=100.0).contains(&rating_weight) {
            return Err(TemplateError::RatingWeight(rating_weight.to_string()));
        }
        let mut out: Vec<TemplateLine> = Vec::with_capacity(lines.len());
        for l in lines {
            let line = TemplateLine::parse(l.as_ref())?;
            if out.iter().any(|o| o.metric == line.metric) {
                return Err(TemplateError::Duplicate(line.metric.as_str().into()));
            }
            out.push(line);
        }
        if out.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(Self {
            lines: out,
            rating_weight,
        })
    }
}

/// Where a line's target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// The rep's goal for the metric and period.
    Goal,
    /// The template line's default.
    Template,
}

/// One line of a scorecard, with every step of its arithmetic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreLine {
    /// The metric.
    pub metric: Metric,
    /// The line's weight in the template.
    pub weight: f64,
    /// The scoring rule.
    pub rule: Rule,
    /// The target, if any.
    pub target: Option<f64>,
    /// Where the target came from.
    pub target_source: Option<TargetSource>,
    /// The metric's value (absent with no data).
    pub actual: Option<f64>,
    /// Attainment in %, uncapped.
    pub attainment: Option<f64>,
    /// Score 0–100 (absent when the line is left out).
    pub score: Option<f64>,
}

impl ScoreLine {
    /// The line's arithmetic in words.
    pub fn explain(&self) -> String {
        match (self.actual, self.target, self.attainment, self.score) {
            (None, _, _, _) => "no data: left out".to_owned(),
            (_, None, _, _) => "no target: left out".to_owned(),
            (Some(a), Some(t), Some(at), Some(s)) => {
                let ratio = if self.metric.lower_is_better() {
                    if a <= 0.0 {
                        "actual 0 meets a ceiling: 100%".to_owned()
                    } else {
                        format!("100 × {} ÷ {} = {}%", n(t), n(a), n(at))
                    }
                } else {
                    format!("100 × {} ÷ {} = {}%", n(a), n(t), n(at))
                };
                let rule = match self.rule {
                    Rule::Linear => format!("linear: min({}, 100) = {}", n(at), n(s)),
                    Rule::Threshold => format!(
                        "threshold: {}% {} 100 → {}",
                        n(at),
                        if s > 0.0 { "≥" } else { "<" },
                        n(s)
                    ),
                };
                format!("{ratio}; {rule}")
            }
            _ => "target 0: left out".to_owned(),
        }
    }
}

/// A computed scorecard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// The lines, in template order.
    pub lines: Vec<ScoreLine>,
    /// Weighted mean of the scored lines (absent when none is scored).
    pub metric_score: Option<f64>,
    /// Weighted mean of the scored lines' uncapped attainments.
    pub attainment: Option<f64>,
}

/// Attainment in % of `actual` against `target` (see the module docs).
pub fn attainment(metric: Metric, actual: f64, target: f64) -> Option<f64> {
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

fn n(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Round to one decimal.
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Score every template line over `period` from `facts`, with the rep's goal
/// targets for that period (`goals`, by metric) taking precedence over the
/// template's defaults.
pub fn scorecard(
    template: &Template,
    period: &Period,
    facts: &Facts,
    goals: &BTreeMap<Metric, f64>,
) -> Scorecard {
    let mut lines = Vec::with_capacity(template.lines.len());
    for l in &template.lines {
        let (target, target_source) = match (goals.get(&l.metric), l.target) {
            (Some(g), _) => (Some(*g), Some(TargetSource::Goal)),
            (None, Some(t)) => (Some(t), Some(TargetSource::Template)),
            (None, None) => (None, None),
        };
        let actual = match compute(l.metric, period, facts) {
            MetricValue::Value(v) => Some(v),
            MetricValue::NoData => None,
        };
        let att = match (actual, target) {
            (Some(a), Some(t)) => attainment(l.metric, a, t),
            _ => None,
        };
        let score = att.map(|a| l.rule.score(a));
        lines.push(ScoreLine {
            metric: l.metric,
            weight: l.weight,
            rule: l.rule,
            target,
            target_source,
            actual,
            attainment: att,
            score,
        });
    }
    let (mut w, mut ws, mut wa) = (0.0, 0.0, 0.0);
    for l in &lines {
        if let (Some(s), Some(a)) = (l.score, l.attainment) {
            w += l.weight;
            ws += l.weight * s;
            wa += l.weight * a;
        }
    }
    Scorecard {
        lines,
        metric_score: (w > 0.0).then(|| ws / w),
        attainment: (w > 0.0).then(|| wa / w),
    }
}

/// The 0–100 score of a 1–5 rating: `(rating − 1) × 25`.
pub fn rating_score(rating: u8) -> f64 {
    f64::from(rating.clamp(1, 5) - 1) * 25.0
}

/// The overall score and the formula with its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    /// 0–100, one decimal.
    pub score: f64,
    /// The formula with the numbers filled in.
    pub explain: String,
}

/// Combine the metric score with the rating (see the module docs).
pub fn overall(metric_score: Option<f64>, rating: u8, rating_weight: f64) -> Overall {
    let rs = rating_score(rating);
    match metric_score {
        None => Overall {
            score: round1(rs),
            explain: format!(
                "no scored metric line: overall = rating score ({rating} − 1) × 25 = {}",
                n(rs)
            ),
        },
        Some(ms) => {
            let q = rating_weight.clamp(0.0, 100.0);
            let score = round1(((100.0 - q) * ms + q * rs) / 100.0);
            Overall {
                score,
                explain: format!(
                    "overall = {}% × metric score {} + {}% × rating score ({rating} − 1) × 25 = {} → {}",
                    n(100.0 - q),
                    n(ms),
                    n(q),
                    n(rs),
                    n(score)
                ),
            }
        }
    }
}

#[cfg(test)]
// The expected values are exactly representable, so exact comparison is intended.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use crate::id::RecordId;
    use crate::metrics::{FeedbackFact, VisitFact};
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse_ts(s).unwrap()
    }

    fn visits(n: u128) -> Vec<VisitFact> {
        (0..n)
            .map(|i| VisitFact {
                id: RecordId(Uuid::from_u128(i + 1)),
                customer_id: RecordId(Uuid::from_u128(1000 + i % 3)),
                started_at: t("2026-11-10T09:00:00Z"),
                amends: None,
            })
            .collect()
    }

    fn survey(csat: i64) -> FeedbackFact {
        FeedbackFact {
            kind: "survey".into(),
            csat: Some(csat),
            nps: None,
            opened_at: t("2026-11-11T09:00:00Z"),
            resolved_at: None,
        }
    }

    #[test]
    fn lines_parse_and_print_back() {
        let l = TemplateLine::parse("csat:20:threshold:4.5").unwrap();
        assert_eq!(l.metric, Metric::Csat);
        assert_eq!(l.rule, Rule::Threshold);
        assert_eq!(l.target, Some(4.5));
        assert_eq!(TemplateLine::parse(&l.to_string()).unwrap(), l);
        let v = TemplateLine::parse("visits:40").unwrap();
        assert_eq!((v.rule, v.target), (Rule::Linear, None));
        for bad in [
            "visits",
            "visit:40",
            "visits:0",
            "visits:-1",
            "visits:4:steep",
            "visits:4:linear:-2",
            "a:b:c:d:e",
        ] {
            assert!(TemplateLine::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Template::parse(&["visits:1", "visits:2"], 30.0).unwrap_err(),
            TemplateError::Duplicate("visits".into())
        );
        assert_eq!(
            Template::parse::<&str>(&[], 30.0).unwrap_err(),
            TemplateError::Empty
        );
        assert!(Template::parse(&["visits:1"], 101.0).is_err());
    }

    #[test]
    fn goal_targets_win_and_weights_combine() {
        let p = Period::parse("2026-11").unwrap();
        let tpl = Template::parse(&["visits:60:linear:10", "csat:40:linear:4"], 25.0).unwrap();
        let facts = Facts {
            visits: visits(8),
            feedback: vec![survey(5), survey(4)],
            ..Facts::default()
        };
        let goals = BTreeMap::from([(Metric::Visits, 16.0)]);
        let sc = scorecard(&tpl, &p, &facts, &goals);
        assert_eq!(sc.lines[0].target, Some(16.0));
        assert_eq!(sc.lines[0].target_source, Some(TargetSource::Goal));
        assert_eq!(sc.lines[0].score, Some(50.0));
        assert_eq!(sc.lines[1].target_source, Some(TargetSource::Template));
        assert_eq!(sc.lines[1].attainment, Some(112.5));
        assert_eq!(sc.lines[1].score, Some(100.0), "linear caps at 100");
        let ms = sc.metric_score.unwrap();
        assert!((ms - (60.0 * 50.0 + 40.0 * 100.0) / 100.0).abs() < 1e-9);
        assert!((sc.attainment.unwrap() - (60.0 * 50.0 + 40.0 * 112.5) / 100.0).abs() < 1e-9);
        let o = overall(sc.metric_score, 4, tpl.rating_weight);
        assert_eq!(o.score, round1(0.75 * 70.0 + 0.25 * 75.0));
        assert!(o.explain.contains("75%"), "{}", o.explain);
    }

    #[test]
    fn no_data_and_no_target_are_left_out_and_nothing_divides_by_zero() {
        let p = Period::parse("2026-11").unwrap();
        let tpl = Template::parse(&["visits:50", "csat:50:linear:4"], 30.0).unwrap();
        let sc = scorecard(&tpl, &p, &Facts::default(), &BTreeMap::new());
        assert_eq!(sc.lines[0].score, None);
        assert_eq!(sc.lines[0].explain(), "no target: left out");
        assert_eq!(sc.lines[1].actual, None);
        assert_eq!(sc.lines[1].explain(), "no data: left out");
        assert_eq!(sc.metric_score, None);
        assert_eq!(sc.attainment, None);
        let o = overall(None, 3, 30.0);
        assert_eq!(o.score, 50.0);
    }

    #[test]
    fn only_hq_makes_an_evaluation_final_and_only_with_a_reason() {
        use crate::schema::{Role, collection};
        let (_, machine) = collection("evaluations")
            .and_then(crate::schema::Collection::transition_field)
            .unwrap();
        for from in ["acknowledged", "disputed"] {
            let m = machine.find(from, "final").unwrap();
            assert_eq!(m.by, &[Role::Hq, Role::Admin]);
            assert_eq!(m.requires, &["calibration_reason"]);
        }
        assert!(machine.find("submitted", "final").is_none());
        assert!(machine.find("draft", "acknowledged").is_none());
    }

    #[test]
    fn ceilings_and_thresholds() {
        assert_eq!(attainment(Metric::ResolutionHours, 0.0, 24.0), Some(100.0));
        assert_eq!(attainment(Metric::ResolutionHours, 48.0, 24.0), Some(50.0));
        assert_eq!(attainment(Metric::Visits, 5.0, 0.0), None);
        assert_eq!(Rule::Threshold.score(99.9), 0.0);
        assert_eq!(Rule::Threshold.score(100.0), 100.0);
        assert_eq!(Rule::Linear.score(140.0), 100.0);
        assert_eq!(rating_score(1), 0.0);
        assert_eq!(rating_score(5), 100.0);
        assert_eq!(overall(Some(80.0), 5, 0.0).score, 80.0);
        assert_eq!(overall(Some(80.0), 1, 100.0).score, 0.0);
    }
}
