//! Geography used to judge GPS check-ins: distances and the provisional
//! verdict a laptop shows before the server confirms it.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS-84 position in decimal degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatLon {
    /// Latitude, -90..=90.
    pub lat: f64,
    /// Longitude, -180..=180.
    pub lon: f64,
}

impl LatLon {
    /// True when both coordinates are finite and in range.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

/// The verdict on a visit's GPS check-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GpsVerdict {
    /// Within the allowed radius of the customer.
    Verified,
    /// Farther than the radius, even allowing for the reported accuracy.
    OutOfRange,
    /// No check-in position, or the customer has no known position.
    Unverified,
    /// Physically implausible (e.g. impossible travel speed).
    Suspicious,
}

impl GpsVerdict {
    /// The wire/display name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::OutOfRange => "out_of_range",
            Self::Unverified => "unverified",
            Self::Suspicious => "suspicious",
        }
    }
}

/// Thresholds for [`judge_check_in`]. Defaults suit city field work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpsRules {
    /// Allowed distance from the customer's position, metres.
    pub radius_m: f64,
    /// Reported accuracy worse than this makes a check-in unverifiable, metres.
    pub max_accuracy_m: f64,
}

impl Default for GpsRules {
    fn default() -> Self {
        Self {
            radius_m: 300.0,
            max_accuracy_m: 1_000.0,
        }
    }
}

/// Judge one check-in against the customer's position. Returns the verdict
/// and the distance in metres when both positions are known. The reported
/// accuracy is allowed for: a check-in counts as in range when
/// `distance - accuracy <= radius`.
pub fn judge_check_in(
    check_in: Option<LatLon>,
    accuracy_m: Option<f64>,
    customer: Option<LatLon>,
    rules: &GpsRules,
) -> (GpsVerdict, Option<f64>) {
    let (Some(at), Some(cust)) = (check_in, customer) else {
        return (GpsVerdict::Unverified, None);
    };
    let d = at.distance_m(&cust);
    let acc = accuracy_m.unwrap_or(0.0).max(0.0);
    if acc > rules.max_accuracy_m {
        return (GpsVerdict::Unverified, Some(d));
    }
    if d - acc <= rules.radius_m {
        (GpsVerdict::Verified, Some(d))
    } else {
        (GpsVerdict::OutOfRange, Some(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_between_known_points() {
        // Beijing Tiananmen to Shanghai People's Square is about 1,067 km.
        let bj = LatLon {
            lat: 39.9087,
            lon: 116.3975,
        };
        let sh = LatLon {
            lat: 31.2304,
            lon: 121.4737,
        };
        let d = bj.distance_m(&sh);
        assert!((1_060_000.0..1_075_000.0).contains(&d), "{d}");
    }

    #[test]
    fn verdicts() {
        let c = LatLon {
            lat: 31.0,
            lon: 121.0,
        };
        let near = LatLon {
            lat: 31.001,
            lon: 121.0,
        }; // ~111 m
        let far = LatLon {
            lat: 31.01,
            lon: 121.0,
        }; // ~1.1 km
        let r = GpsRules::default();
        assert_eq!(
            judge_check_in(Some(near), None, Some(c), &r).0,
            GpsVerdict::Verified
        );
        assert_eq!(
            judge_check_in(Some(far), Some(10.0), Some(c), &r).0,
            GpsVerdict::OutOfRange
        );
        assert_eq!(
            judge_check_in(Some(far), Some(900.0), Some(c), &r).0,
            GpsVerdict::Verified
        );
        assert_eq!(
            judge_check_in(None, None, Some(c), &r).0,
            GpsVerdict::Unverified
        );
        assert_eq!(
            judge_check_in(Some(near), None, None, &r).0,
            GpsVerdict::Unverified
        );
        assert!(
            !LatLon {
                lat: 91.0,
                lon: 0.0
            }
            .is_valid()
        );
        assert!(
            !LatLon {
                lat: f64::NAN,
                lon: 0.0
            }
            .is_valid()
        );
    }
}
