//! Per-team field-integrity thresholds used by the visits report, kept in
//! the store's `meta` table under `team_gps_rules:<team id>` (so every
//! instance on the same database uses the same rules).

use crate::error::ApiError;
use crate::store::{ReadTx, StoreError, WriteTx};
use serde::{Deserialize, Serialize};
use sync_protocol::geo::GpsRules;
use sync_protocol::{ErrorCode, TeamId};

/// A team's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeamGpsRules {
    /// Allowed distance of a check-in from the customer after allowing for
    /// the reported accuracy, metres.
    pub radius_m: f64,
    /// A check-in whose reported accuracy is worse than this is unverified, metres.
    pub max_accuracy_m: f64,
    /// Faster travel between consecutive check-ins is suspicious, km/h.
    pub max_travel_kmh: f64,
    /// Shorter visits are suspicious, minutes.
    pub min_visit_minutes: f64,
    /// A check-out farther than this from the check-in is suspicious, metres.
    pub max_check_out_m: f64,
}

impl Default for TeamGpsRules {
    fn default() -> Self {
        let g = GpsRules::default();
        TeamGpsRules {
            radius_m: g.radius_m,
            max_accuracy_m: g.max_accuracy_m,
            // The same limit the server applies when a visit arrives.
            max_travel_kmh: 250.0,
            min_visit_minutes: 5.0,
            max_check_out_m: 500.0,
        }
    }
}

/// A change of some of a team's thresholds (absent fields keep their value).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamGpsRulesPatch {
    /// See [`TeamGpsRules::radius_m`].
    pub radius_m: Option<f64>,
    /// See [`TeamGpsRules::max_accuracy_m`].
    pub max_accuracy_m: Option<f64>,
    /// See [`TeamGpsRules::max_travel_kmh`].
    pub max_travel_kmh: Option<f64>,
    /// See [`TeamGpsRules::min_visit_minutes`].
    pub min_visit_minutes: Option<f64>,
    /// See [`TeamGpsRules::max_check_out_m`].
    pub max_check_out_m: Option<f64>,
}

impl TeamGpsRules {
    /// The shared geo rules part.
    pub fn geo(&self) -> GpsRules {
        GpsRules {
            radius_m: self.radius_m,
            max_accuracy_m: self.max_accuracy_m,
        }
    }

    /// Apply a patch, refusing values out of range.
    pub fn patched(mut self, p: &TeamGpsRulesPatch) -> Result<Self, ApiError> {
        let check =
            |field: &str, v: Option<f64>, lo: f64, hi: f64| -> Result<Option<f64>, ApiError> {
                match v {
                    Some(x) if !(lo..=hi).contains(&x) || !x.is_finite() => Err(ApiError::field(
                        ErrorCode::OutOfRange,
                        field,
                        format!("{field} must be between {lo} and {hi}"),
                    )),
                    other => Ok(other),
                }
            };
        if let Some(v) = check("radius_m", p.radius_m, 1.0, 100_000.0)? {
            self.radius_m = v;
        }
        if let Some(v) = check("max_accuracy_m", p.max_accuracy_m, 1.0, 100_000.0)? {
            self.max_accuracy_m = v;
        }
        if let Some(v) = check("max_travel_kmh", p.max_travel_kmh, 1.0, 2_000.0)? {
            self.max_travel_kmh = v;
        }
        if let Some(v) = check("min_visit_minutes", p.min_visit_minutes, 0.0, 1_440.0)? {
            self.min_visit_minutes = v;
        }
        if let Some(v) = check("max_check_out_m", p.max_check_out_m, 1.0, 100_000.0)? {
            self.max_check_out_m = v;
        }
        Ok(self)
    }
}

fn key(team: TeamId) -> String {
    format!("team_gps_rules:{team}")
}

/// A team's rules (the defaults until someone sets them).
pub fn load(tx: &mut dyn ReadTx, team: TeamId) -> Result<TeamGpsRules, StoreError> {
    match tx.meta(&key(team))? {
        None => Ok(TeamGpsRules::default()),
        Some(s) => serde_json::from_str(&s)
            .map_err(|e| StoreError::Corrupt(format!("team gps rules: {e}"))),
    }
}

/// Store a team's rules.
pub fn save(tx: &mut dyn WriteTx, team: TeamId, rules: &TeamGpsRules) -> Result<(), StoreError> {
    let json = serde_json::to_string(rules)
        .map_err(|e| StoreError::Corrupt(format!("team gps rules: {e}")))?;
    tx.set_meta(&key(team), &json)
}
