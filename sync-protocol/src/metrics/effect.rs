//! Improvement actions checked for effect: a metric's baseline, captured
//! when the action is added, against the value measured at review.
//!
//! Both values are the metric over a window of `window_days` days ending on
//! the day of capture (that day included). The change is
//! `measured − baseline`, sign-flipped for ceiling metrics
//! (`complaints_opened`, `resolution_hours`), so a positive change is always
//! better. The verdict is `improved` when the change exceeds the tolerance,
//! `worse` when it is below minus the tolerance, otherwise `no_change`; the
//! tolerance is [`EFFECT_TOLERANCE`] (5 %) of the baseline's magnitude (any
//! change counts when the baseline is 0).

use super::{Metric, Period};
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

/// Share of the baseline a change must exceed to count.
pub const EFFECT_TOLERANCE: f64 = 0.05;

/// The measured effect of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better by more than the tolerance.
    Improved,
    /// Within the tolerance.
    NoChange,
    /// Worse by more than the tolerance.
    Worse,
}

impl Verdict {
    /// The verdict as stored.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::NoChange => "no_change",
            Verdict::Worse => "worse",
        }
    }
}

/// The window of `days` days ending on `day` (included).
pub fn window(day: NaiveDate, days: u32) -> Period {
    let from = day
        .checked_sub_days(Days::new(u64::from(days.max(1) - 1)))
        .unwrap_or(day);
    Period::Range(from, day)
}

/// The verdict on going from `baseline` to `measured` (see the module docs).
pub fn verdict(metric: Metric, baseline: f64, measured: f64) -> Verdict {
    let change = if metric.lower_is_better() {
        baseline - measured
    } else {
        measured - baseline
    };
    let tolerance = EFFECT_TOLERANCE * baseline.abs();
    if change > tolerance + 1e-9 {
        Verdict::Improved
    } else if change < -tolerance - 1e-9 {
        Verdict::Worse
    } else {
        Verdict::NoChange
    }
}

#[cfg(test)]
// The expected values are exactly representable, so exact comparison is intended.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_respect_direction_and_tolerance() {
        assert_eq!(verdict(Metric::Csat, 3.0, 4.0), Verdict::Improved);
        assert_eq!(verdict(Metric::Csat, 4.0, 3.0), Verdict::Worse);
        assert_eq!(
            verdict(Metric::Csat, 4.0, 4.1),
            Verdict::NoChange,
            "2.5 % is within 5 %"
        );
        assert_eq!(
            verdict(Metric::Visits, 20.0, 21.0),
            Verdict::NoChange,
            "exactly 5 % is not more"
        );
        assert_eq!(verdict(Metric::Visits, 0.0, 1.0), Verdict::Improved);
        assert_eq!(
            verdict(Metric::ResolutionHours, 48.0, 24.0),
            Verdict::Improved
        );
        assert_eq!(verdict(Metric::ComplaintsOpened, 2.0, 5.0), Verdict::Worse);
    }

    #[test]
    fn windows_end_on_the_day_and_include_it() {
        let d = crate::time::parse_date("2026-11-28").unwrap();
        let w = window(d, 30);
        assert_eq!(w.start(), crate::time::parse_date("2026-10-30").unwrap());
        assert_eq!(w.days(), 30);
        assert_eq!(window(d, 1).days(), 1);
    }
}
