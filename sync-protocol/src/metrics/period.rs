//! Reporting periods: `2026-11`, `2026-Q4`, `2026-W48`, `2026`, or an
//! explicit date range. A period is a half-open range of UTC days.

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use std::fmt;

/// A reporting period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// A calendar month.
    Month(i32, u32),
    /// A calendar quarter (1-4).
    Quarter(i32, u32),
    /// An ISO 8601 week.
    Week(i32, u32),
    /// A calendar year.
    Year(i32),
    /// From the first date to the last date, both included.
    Range(NaiveDate, NaiveDate),
}

/// A period that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a period: use 2026-11 (month), 2026-Q4 (quarter), 2026-W48 (ISO week), 2026 (year) or FROM..TO dates"
)]
pub struct PeriodError(pub String);

impl Period {
    /// Parse `2026-11`, `2026-Q4`, `2026-W48`, `2026` or `2026-11-01..2026-11-15`.
    pub fn parse(s: &str) -> Result<Self, PeriodError> {
        let err = || PeriodError(s.to_owned());
        let t = s.trim();
        if let Some((a, b)) = t.split_once("..") {
            let (from, to) = (
                crate::time::parse_date(a).ok_or_else(err)?,
                crate::time::parse_date(b).ok_or_else(err)?,
            );
            return Period::range(from, to).ok_or_else(err);
        }
        let year = |y: &str| -> Result<i32, PeriodError> {
            if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
                y.parse().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        match t.split_once('-') {
            None => Ok(Period::Year(year(t)?)),
            Some((y, rest)) => {
                let y = year(y)?;
                let num = |n: &str, lo: u32, hi: u32| -> Result<u32, PeriodError> {
                    let v: u32 = if (1..=2).contains(&n.len()) {
                        n.parse().map_err(|_| err())?
                    } else {
                        return Err(err());
                    };
                    if (lo..=hi).contains(&v) {
                        Ok(v)
                    } else {
                        Err(err())
                    }
                };
                if let Some(q) = rest.strip_prefix(['Q', 'q']) {
                    Ok(Period::Quarter(y, num(q, 1, 4)?))
                } else if let Some(w) = rest.strip_prefix(['W', 'w']) {
                    let w = num(w, 1, 53)?;
                    NaiveDate::from_isoywd_opt(y, w, Weekday::Mon).ok_or_else(err)?;
                    Ok(Period::Week(y, w))
                } else {
                    Ok(Period::Month(y, num(rest, 1, 12)?))
                }
            }
        }
    }

    /// A range period; `None` when `to` is before `from`.
    pub fn range(from: NaiveDate, to: NaiveDate) -> Option<Self> {
        (from <= to).then_some(Period::Range(from, to))
    }

    /// The month, quarter, ISO week and year containing `day`.
    pub fn month_of(day: NaiveDate) -> Self {
        Period::Month(day.year(), day.month())
    }

    /// First day.
    pub fn start(&self) -> NaiveDate {
        match *self {
            Period::Month(y, m) => NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default(),
            Period::Quarter(y, q) => {
                NaiveDate::from_ymd_opt(y, (q - 1) * 3 + 1, 1).unwrap_or_default()
            }
            Period::Week(y, w) => {
                NaiveDate::from_isoywd_opt(y, w, Weekday::Mon).unwrap_or_default()
            }
            Period::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or_default(),
            Period::Range(a, _) => a,
        }
    }

    /// The day after the last day.
    pub fn end(&self) -> NaiveDate {
        let next_month = |y: i32, m: u32| {
            if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)
            }
        };
        match *self {
            Period::Month(y, m) => next_month(y, m).unwrap_or_default(),
            Period::Quarter(y, q) => next_month(y, q * 3).unwrap_or_default(),
            Period::Week(..) => self.start() + Days::new(7),
            Period::Year(y) => NaiveDate::from_ymd_opt(y + 1, 1, 1).unwrap_or_default(),
            Period::Range(_, b) => b + Days::new(1),
        }
    }

    /// Number of days.
    pub fn days(&self) -> i64 {
        (self.end() - self.start()).num_days()
    }

    /// Whether an instant falls in the period (UTC days).
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let d = t.date_naive();
        d >= self.start() && d < self.end()
    }

    /// Whether a day falls in the period.
    pub fn contains_day(&self, d: NaiveDate) -> bool {
        d >= self.start() && d < self.end()
    }

    /// Share of the period elapsed at the end of `today` (0.0 before it starts, 1.0 after it ends).
    pub fn elapsed_fraction(&self, today: NaiveDate) -> f64 {
        if today < self.start() {
            return 0.0;
        }
        if today >= self.end() {
            return 1.0;
        }
        ((today - self.start()).num_days() + 1) as f64 / self.days() as f64
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Period::Month(y, m) => write!(f, "{y:04}-{m:02}"),
            Period::Quarter(y, q) => write!(f, "{y:04}-Q{q}"),
            Period::Week(y, w) => write!(f, "{y:04}-W{w:02}"),
            Period::Year(y) => write!(f, "{y:04}"),
            Period::Range(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        crate::time::parse_date(s).unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(Period::parse("2026-11").unwrap(), Period::Month(2026, 11));
        assert_eq!(Period::parse("2026-Q4").unwrap().start(), d("2026-10-01"));
        assert_eq!(Period::parse("2026-Q4").unwrap().end(), d("2027-01-01"));
        assert_eq!(Period::parse("2026-W48").unwrap().start(), d("2026-11-23"));
        assert_eq!(Period::parse("2026-W48").unwrap().days(), 7);
        assert_eq!(Period::parse("2026").unwrap().days(), 365);
        assert_eq!(Period::parse("2026-11-01..2026-11-15").unwrap().days(), 15);
        assert_eq!(Period::parse("2026-12").unwrap().end(), d("2027-01-01"));
        for bad in [
            "",
            "26-11",
            "2026-13",
            "2026-Q5",
            "2026-W54",
            "2026-11-15..2026-11-01",
            "2026-1x",
            "2026-W00",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        for s in [
            "2026-11",
            "2026-Q4",
            "2026-W48",
            "2026",
            "2026-11-01..2026-11-15",
        ] {
            assert_eq!(Period::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn elapsed_fraction_paces_linearly() {
        let p = Period::parse("2026-11").unwrap();
        assert!((p.elapsed_fraction(d("2026-11-15")) - 0.5).abs() < 1e-9);
        assert!((p.elapsed_fraction(d("2026-10-15"))).abs() < 1e-9);
        assert!((p.elapsed_fraction(d("2026-12-15")) - 1.0).abs() < 1e-9);
    }
}
