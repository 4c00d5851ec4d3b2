//! The data the benchmark records: realistic visits (customer, times,
//! position, about 200 bytes of notes), the same rows for the CLI import
//! and for the SQLite limit.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::fmt::Write as _;
use sync_protocol::time::format_ts;

/// The customer every benchmark visit is logged against.
pub const CUSTOMER: &str = "Acme Trading";
/// Where that customer is.
pub const CUSTOMER_POS: (f64, f64) = (31.2304, 121.4737);

/// A small deterministic generator (64-bit LCG) so every run records the same data.
pub struct Lcg(u64);

impl Lcg {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1))
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

const PURPOSES: &[&str] = &[
    "quarterly business review",
    "5G upgrade proposal",
    "contract renewal",
    "complaint follow-up",
    "product demo",
    "site survey",
];

const WORDS: &[&str] = &[
    "customer",
    "asked",
    "about",
    "pricing",
    "for",
    "the",
    "new",
    "branch",
    "offices",
    "and",
    "wants",
    "a",
    "pilot",
    "before",
    "signing",
    "procurement",
    "needs",
    "quote",
    "by",
    "Friday",
    "network",
    "outage",
    "last",
    "week",
    "was",
    "resolved",
    "router",
    "replaced",
    "happy",
    "with",
    "support",
    "response",
    "time",
];

/// One visit as recorded in the field.
#[derive(Clone, Debug)]
pub struct VisitRow {
    /// Start.
    pub at: DateTime<Utc>,
    /// Length.
    pub minutes: i64,
    /// Why.
    pub purpose: &'static str,
    /// The notes: about 200 bytes.
    pub outcome: String,
    /// Check-in latitude.
    pub lat: f64,
    /// Check-in longitude.
    pub lon: f64,
}

impl VisitRow {
    /// The line `fieldsync visit import` reads.
    pub fn import_line(&self) -> String {
        json!({
            "customer": CUSTOMER,
            "at": format_ts(self.at),
            "minutes": self.minutes,
            "purpose": self.purpose,
            "outcome": self.outcome,
            "lat": self.lat,
            "lon": self.lon,
        })
        .to_string()
    }
}

/// Notes of about `len` bytes.
pub fn notes(rng: &mut Lcg, len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s.truncate(len);
    s.trim_end().to_owned()
}

/// `n` visits spread over the past year, ending before `now`.
pub fn visits(n: usize, now: DateTime<Utc>, seed: u64) -> Vec<VisitRow> {
    let mut rng = Lcg::new(seed);
    let start = now - Duration::days(366);
    (0..n)
        .map(|i| {
            let offset = (i as i64 * 365 * 24 * 60) / n.max(1) as i64;
            let jitter = |rng: &mut Lcg| (rng.below(2000) as f64 - 1000.0) / 1_000_000.0;
            VisitRow {
                at: start + Duration::minutes(offset),
                minutes: 15 + rng.below(90) as i64,
                purpose: PURPOSES[rng.below(PURPOSES.len() as u64) as usize],
                outcome: notes(&mut rng, 200),
                lat: CUSTOMER_POS.0 + jitter(&mut rng),
                lon: CUSTOMER_POS.1 + jitter(&mut rng),
            }
        })
        .collect()
}

/// The import file for `rows`.
pub fn import_file(rows: &[VisitRow]) -> String {
    let mut s = String::with_capacity(rows.len() * 360);
    for r in rows {
        let _ = writeln!(s, "{}", r.import_line());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_deterministic_and_in_the_past() {
        let now = Utc::now();
        let a = visits(50, now, 7);
        let b = visits(50, now, 7);
        assert_eq!(a.len(), 50);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.outcome == y.outcome && x.at == y.at)
        );
        assert!(a.iter().all(|v| v.at + Duration::minutes(v.minutes) < now));
        assert!(a.iter().all(|v| (190..=200).contains(&v.outcome.len())));
    }
}
