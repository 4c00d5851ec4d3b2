//! Timestamps on the wire and in stores: fixed-width RFC 3339 UTC with
//! milliseconds (`2026-01-02T03:04:05.123Z`), which sorts as text.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Format an instant in the canonical form.
pub fn format_ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parse any RFC 3339 instant (any offset) into UTC.
pub fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Parse a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_fixed_width_utc() {
        let t = parse_ts("2026-01-02T11:04:05+08:00").unwrap();
        assert_eq!(format_ts(t), "2026-01-02T03:04:05.000Z");
        assert!(parse_ts("2026-01-02 03:04:05").is_none());
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("2026-2-3").is_none());
        assert!(parse_date("2026-02-03").is_some());
    }
}
