//! Incentive plans: tiers by evaluation score or by attainment, and the
//! suggested reward with its arithmetic spelled out.
//!
//! A tier is written `name=gold,min=90[,payout=5000][,recognition=TEXT][,accel=2][,cap=8000]`
//! and needs a payout (major units of the plan's currency) or a recognition.
//!
//! For a value `v` (the evaluation's overall score, or its weighted
//! attainment in %, as the plan's basis says):
//! 1. the tier is the one with the highest `min` ≤ `v` (none below the lowest);
//! 2. `base = payout`;
//! 3. above the plan's target `T` (default 100) the accelerator `a` adds
//!    `a` % of the payout per point: `extra = base × a × (v − T) ÷ 100`;
//! 4. `payout = min(base + extra, cap)`, rounded to the currency's minor unit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What the tiers are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The evaluation's overall score (0–100).
    Score,
    /// The evaluation's weighted attainment (%).
    Attainment,
}

impl Basis {
    /// The basis name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Basis::Score => "score",
            Basis::Attainment => "attainment",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Option<Basis> {
        match s {
            "score" => Some(Basis::Score),
            "attainment" => Some(Basis::Attainment),
            _ => None,
        }
    }
}

/// A tier or plan that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Not `key=value` pairs.
    #[error(
        "{0:?} is not a tier: write name=NAME,min=N[,payout=AMOUNT][,recognition=TEXT][,accel=A][,cap=AMOUNT]"
    )]
    Syntax(String),
    /// A key the tier syntax does not have.
    #[error("unknown tier key {0:?} (use name, min, payout, recognition, accel, cap)")]
    Key(String),
    /// A value that is not a number of 0 or more.
    #[error("tier {key} must be a number of 0 or more, got {value:?}")]
    Number {
        /// The key.
        key: String,
        /// The value given.
        value: String,
    },
    /// A required key is missing.
    #[error("tier {0:?} needs {1}")]
    Missing(String, &'static str),
    /// The cap is below the payout.
    #[error("tier {0:?}: cap is below the payout")]
    CapBelowPayout(String),
    /// Two tiers share a name or a minimum.
    #[error("two tiers share the {0} {1:?}")]
    Duplicate(&'static str, String),
    /// No tiers at all.
    #[error("a plan needs at least one tier")]
    Empty,
}

/// One tier of a plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    /// Its name (stored as the evaluation's tier).
    pub name: String,
    /// The lowest value that reaches it.
    pub min: f64,
    /// Payout in major units of the plan's currency.
    pub payout: Option<f64>,
    /// A recognition, e.g. "Star of the month".
    pub recognition: Option<String>,
    /// Accelerator: % of the payout added per point above the plan's target.
    pub accel: Option<f64>,
    /// The most this tier pays.
    pub cap: Option<f64>,
}

impl Tier {
    /// Parse the tier syntax of the module docs.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let (mut name, mut min, mut payout, mut recognition, mut accel, mut cap) =
            (None, None, None, None, None, None);
        for part in text.split(',') {
            let Some((k, v)) = part.split_once('=') else {
                return Err(PlanError::Syntax(text.to_owned()));
            };
            let (k, v) = (k.trim(), v.trim());
            let number = || {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| PlanError::Number {
                        key: k.to_owned(),
                        value: v.to_owned(),
                    })
            };
            match k {
                "name" if !v.is_empty() => name = Some(v.to_owned()),
                "min" => min = Some(number()?),
                "payout" => payout = Some(number()?),
                "recognition" if !v.is_empty() => recognition = Some(v.to_owned()),
                "accel" => accel = Some(number()?),
                "cap" => cap = Some(number()?),
                "name" | "recognition" => return Err(PlanError::Syntax(text.to_owned())),
                other => return Err(PlanError::Key(other.to_owned())),
            }
        }
        let name = name.ok_or_else(|| PlanError::Syntax(text.to_owned()))?;
        let min = min.ok_or_else(|| PlanError::Missing(name.clone(), "min=N"))?;
        if payout.is_none() && recognition.is_none() {
            return Err(PlanError::Missing(
                name,
                "payout=AMOUNT or recognition=TEXT",
            ));
        }
        if (accel.is_some() || cap.is_some()) && payout.is_none() {
            return Err(PlanError::Missing(name, "a payout for accel or cap"));
        }
        if let (Some(p), Some(c)) = (payout, cap)
            && c < p
        {
            return Err(PlanError::CapBelowPayout(name));
        }
        Ok(Self {
            name,
            min,
            payout,
            recognition,
            accel,
            cap,
        })
    }
}

impl fmt::Display for Tier {
    /// The canonical text, readable by [`Tier::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name={},min={}", self.name, self.min)?;
        if let Some(p) = self.payout {
            write!(f, ",payout={p}")?;
        }
        if let Some(r) = &self.recognition {
            write!(f, ",recognition={r}")?;
        }
        if let Some(a) = self.accel {
            write!(f, ",accel={a}")?;
        }
        if let Some(c) = self.cap {
            write!(f, ",cap={c}")?;
        }
        Ok(())
    }
}

/// An incentive plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// What the tiers are compared with.
    pub basis: Basis,
    /// Where the accelerator starts.
    pub target: f64,
    /// Tiers, highest minimum first.
    pub tiers: Vec<Tier>,
}

impl Plan {
    /// Build a plan from tier texts; tiers are sorted highest minimum first.
    pub fn parse<S: AsRef<str>>(basis: Basis, target: f64, tiers: &[S]) -> Result<Self, PlanError> {
        let mut out: Vec<Tier> = Vec::with_capacity(tiers.len());
        for t in tiers {
            let tier = Tier::parse(t.as_ref())?;
            if out.iter().any(|o| o.name == tier.name) {
                return Err(PlanError::Duplicate("name", tier.name));
            }
            if out.iter().any(|o| (o.min - tier.min).abs() < 1e-9) {
                return Err(PlanError::Duplicate("minimum", tier.min.to_string()));
            }
            out.push(tier);
        }
        if out.is_empty() {
            return Err(PlanError::Empty);
        }
        out.sort_by(|a, b| b.min.total_cmp(&a.min));
        Ok(Self {
            basis,
            target,
            tiers: out,
        })
    }

    /// The tier a value reaches, if any.
    pub fn tier_for(&self, value: f64) -> Option<&Tier> {
        self.tiers.iter().find(|t| value >= t.min - 1e-9)
    }
}

/// A suggested reward and how it was reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The value compared with the tiers.
    pub value: f64,
    /// The tier reached.
    pub tier: Option<String>,
    /// The tier's base payout.
    pub base: Option<f64>,
    /// What the accelerator added.
    pub extra: Option<f64>,
    /// Whether the cap cut the payout.
    pub capped: bool,
    /// The payout, in major units.
    pub payout: Option<f64>,
    /// The recognition.
    pub recognition: Option<String>,
    /// Each step, in words.
    pub steps: Vec<String>,
}

fn round_to(v: f64, digits: u32) -> f64 {
    let s = 10f64.powi(digits as i32);
    (v * s).round() / s
}

fn n(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The reward a value earns under a plan (see the module docs); amounts are
/// rounded to `minor_digits` decimals.
pub fn suggest(plan: &Plan, value: f64, minor_digits: u32) -> Suggestion {
    let mut steps = Vec::new();
    let basis = plan.basis.as_str();
    let Some(tier) = plan.tier_for(value) else {
        let lowest = plan.tiers.last().map_or(0.0, |t| t.min);
        steps.push(format!(
            "{basis} {} is below the lowest tier minimum {}: no tier",
            n(value),
            n(lowest)
        ));
        return Suggestion {
            value,
            tier: None,
            base: None,
            extra: None,
            capped: false,
            payout: None,
            recognition: None,
            steps,
        };
    };
    steps.push(format!(
        "{basis} {} ≥ {} → tier {}",
        n(value),
        n(tier.min),
        tier.name
    ));
    let (mut extra, mut capped, mut payout) = (None, false, None);
    if let Some(base) = tier.payout {
        steps.push(format!("base payout {}", n(base)));
        let mut total = base;
        match tier.accel {
            Some(a) if value > plan.target => {
                let e = round_to(base * a * (value - plan.target) / 100.0, minor_digits);
                steps.push(format!(
                    "accelerator: {} × {} × ({} − {}) ÷ 100 = {}",
                    n(base),
                    n(a),
                    n(value),
                    n(plan.target),
                    n(e)
                ));
                extra = Some(e);
                total += e;
            }
            Some(_) => steps.push(format!(
                "accelerator: {} is not above target {}: +0",
                n(value),
                n(plan.target)
            )),
            None => {}
        }
        if let Some(c) = tier.cap {
            if total > c {
                steps.push(format!("cap: {} > {} → {}", n(total), n(c), n(c)));
                total = c;
                capped = true;
            } else {
                steps.push(format!("cap {} not reached", n(c)));
            }
        }
        let total = round_to(total, minor_digits);
        steps.push(format!("payout {}", n(total)));
        payout = Some(total);
    }
    if let Some(r) = &tier.recognition {
        steps.push(format!("recognition: {r}"));
    }
    Suggestion {
        value,
        tier: Some(tier.name.clone()),
        base: tier.payout,
        extra,
        capped,
        payout,
        recognition: tier.recognition.clone(),
        steps,
    }
}

#[cfg(test)]
// The expected values are exactly representable, so exact comparison is intended.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::parse(
            Basis::Score,
            80.0,
            &[
                "name=silver,min=60,payout=1000",
                "name=gold,min=75,payout=2000,accel=5,cap=2600",
                "name=star,min=90,recognition=Star of the month",
            ],
        )
        .unwrap()
    }

    #[test]
    fn tiers_parse_print_back_and_sort() {
        let p = plan();
        assert_eq!(p.tiers[0].name, "star");
        for t in &p.tiers {
            assert_eq!(&Tier::parse(&t.to_string()).unwrap(), t);
        }
        for bad in [
            "gold",
            "name=gold",
            "name=gold,min=x,payout=1",
            "name=gold,min=1",
            "name=gold,min=1,payout=5,cap=4",
            "name=gold,min=1,recognition=x,accel=2",
            "name=gold,min=1,payout=1,colour=red",
            "name=gold,min=-1,payout=1",
        ] {
            assert!(Tier::parse(bad).is_err(), "{bad}");
        }
        assert!(Plan::parse::<&str>(Basis::Score, 100.0, &[]).is_err());
        assert!(
            Plan::parse(
                Basis::Score,
                100.0,
                &["name=a,min=1,payout=1", "name=b,min=1,payout=2"]
            )
            .is_err()
        );
    }

    #[test]
    fn below_the_lowest_tier_earns_nothing() {
        let s = suggest(&plan(), 59.9, 2);
        assert_eq!((s.tier, s.payout), (None, None));
    }

    #[test]
    fn accelerator_applies_above_target_only() {
        let s = suggest(&plan(), 78.0, 2);
        assert_eq!(s.tier.as_deref(), Some("gold"));
        assert_eq!(s.extra, None);
        assert_eq!(s.payout, Some(2000.0));
        let s = suggest(&plan(), 84.0, 2);
        assert_eq!(s.extra, Some(2000.0 * 5.0 * 4.0 / 100.0));
        assert_eq!(s.payout, Some(2400.0));
        assert!(!s.capped);
    }

    #[test]
    fn cap_limits_the_accelerated_payout() {
        let s = suggest(&plan(), 89.0, 2);
        assert_eq!(s.extra, Some(900.0));
        assert_eq!(s.payout, Some(2600.0));
        assert!(s.capped);
        assert!(
            s.steps.iter().any(|l| l.starts_with("cap: 2900 > 2600")),
            "{:?}",
            s.steps
        );
    }

    #[test]
    fn recognition_tiers_pay_nothing_and_rounding_follows_the_currency() {
        let s = suggest(&plan(), 95.0, 2);
        assert_eq!(s.payout, None);
        assert_eq!(s.recognition.as_deref(), Some("Star of the month"));
        let p = Plan::parse(
            Basis::Attainment,
            100.0,
            &["name=a,min=0,payout=333,accel=1"],
        )
        .unwrap();
        assert_eq!(suggest(&p, 100.25, 0).payout, Some(334.0));
        assert_eq!(suggest(&p, 100.25, 2).payout, Some(333.83));
    }
}
