//! Reading values typed on the command line: times, dates, positions,
//! passwords. Bad input is a [`Failure`] (exit 1) and nothing is written.

use crate::cli::Position;
use crate::error::Failure;
use anyhow::Result;
use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::io::{IsTerminal, Read};
use sync_protocol::geo::LatLon;
use sync_protocol::time::parse_ts;

const TIME_FORMS: &str = "use RFC 3339 (2026-11-28T09:30:00+08:00), or local time as \"2026-11-28 09:30\" or a date 2026-11-28";

/// A time typed by the user: RFC 3339 with an offset, or a local
/// `YYYY-MM-DD HH:MM[:SS]` (also with `T`), or a local date (midnight).
pub fn parse_time(text: &str, what: &str) -> Result<DateTime<Utc>> {
    let s = text.trim();
    if let Some(t) = parse_ts(s) {
        return Ok(t);
    }
    let local = |naive: NaiveDateTime| {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt)
            && let Some(t) = local(n)
        {
            return Ok(t);
        }
    }
    if s.len() == 10
        && let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = local(d.and_time(NaiveTime::MIN))
    {
        return Ok(t);
    }
    Err(Failure::new(format!(
        "{what} {text:?} is not a date or time (nothing was saved)"
    ))
    .code("invalid_timestamp")
    .hint(TIME_FORMS)
    .into())
}

/// Refuse instants more than five minutes in the future.
pub fn not_future(t: DateTime<Utc>, what: &str) -> Result<()> {
    if t > Utc::now() + Duration::minutes(5) {
        return Err(Failure::new(format!(
            "{what} {} is in the future (nothing was saved)",
            crate::output::local_dt(t)
        ))
        .code("out_of_range")
        .into());
    }
    Ok(())
}

/// A position from `--lat/--lon`, checked; `None` when not given.
pub fn position(p: Position) -> Result<Option<LatLon>> {
    let (Some(lat), Some(lon)) = (p.lat, p.lon) else {
        return Ok(None);
    };
    let pos = LatLon { lat, lon };
    if !pos.is_valid() {
        return Err(Failure::new(format!("position {lat}, {lon} is not on Earth: latitude must be -90..90 and longitude -180..180 (nothing was saved)"))
            .code("invalid_coordinates")
            .hint("give decimal degrees, e.g. --lat 31.2304 --lon 121.4737")
            .into());
    }
    Ok(Some(pos))
}

/// A position as a field value.
pub fn pos_value(p: LatLon) -> Value {
    json!({"lat": p.lat, "lon": p.lon})
}

/// A position read from a field value.
pub fn pos_of(v: Option<&Value>) -> Option<LatLon> {
    v.and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A password: from stdin with `--password-stdin`, otherwise by prompt
/// (only when stdin is a terminal).
pub fn password(from_stdin: bool, prompt: &str) -> Result<String> {
    let pw = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::new(format!("cannot read the password from stdin: {e}")))?;
        let s = s.strip_suffix('\n').unwrap_or(&s);
        s.strip_suffix('\r').unwrap_or(s).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)
            .map_err(|e| Failure::new(format!("cannot read the password: {e}")))?
    } else {
        return Err(
            Failure::new("no password given and stdin is not a terminal to prompt on")
                .hint("pipe it in: echo \"$PASSWORD\" | fieldsync ... --password-stdin")
                .into(),
        );
    };
    if pw.is_empty() {
        return Err(Failure::new("the password is empty").into());
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_several_forms() {
        assert!(parse_time("2026-11-28T09:30:00+08:00", "at").is_ok());
        assert!(parse_time("2026-11-28 09:30", "at").is_ok());
        assert!(parse_time("2026-11-28", "at").is_ok());
        assert!(parse_time("2026-13-01", "at").is_err());
        assert!(parse_time("yesterday-ish", "at").is_err());
    }

    #[test]
    fn positions_are_checked() {
        assert!(
            position(Position {
                lat: Some(91.0),
                lon: Some(0.0)
            })
            .is_err()
        );
        assert!(
            position(Position {
                lat: Some(f64::NAN),
                lon: Some(0.0)
            })
            .is_err()
        );
        assert!(
            position(Position {
                lat: Some(31.0),
                lon: Some(121.0)
            })
            .unwrap()
            .is_some()
        );
        assert!(
            position(Position {
                lat: None,
                lon: None
            })
            .unwrap()
            .is_none()
        );
    }
}
