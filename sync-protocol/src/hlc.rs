//! Hybrid logical clock.
//!
//! A timestamp is `(millis, counter, node)`: wall-clock milliseconds, a
//! counter that orders events within one millisecond, and the device id as
//! a deterministic tie-break. The clock never goes backwards, even when the
//! wall clock does, and every received timestamp is observed so that a
//! device orders its next edit after everything it has seen.

use crate::id::DeviceId;
use chrono::{DateTime, Utc};
use serde::de::{self, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Largest millisecond value that fits the 12 hex digits of the string form.
const MAX_MILLIS: u64 = 0xFFFF_FFFF_FFFF;

/// One hybrid-logical-clock reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (physical part).
    pub millis: u64,
    /// Logical counter within one millisecond.
    pub counter: u16,
    /// The device that produced the reading; breaks ties deterministically.
    pub node: DeviceId,
}

impl Hlc {
    /// The smallest reading of a node; useful as "nothing seen yet".
    pub fn zero(node: DeviceId) -> Self {
        Self {
            millis: 0,
            counter: 0,
            node,
        }
    }

    /// A reading taken directly from a wall-clock instant.
    pub fn from_wall(wall: DateTime<Utc>, node: DeviceId) -> Self {
        Self {
            millis: wall_millis(wall),
            counter: 0,
            node,
        }
    }

    /// How many milliseconds this reading is ahead of `reference`
    /// (negative when behind).
    pub fn drift_ms(&self, reference: DateTime<Utc>) -> i64 {
        self.millis as i64 - wall_millis(reference) as i64
    }

    /// The physical part as a UTC instant.
    pub fn to_datetime(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis as i64).unwrap_or_default()
    }
}

impl Ord for Hlc {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.millis, self.counter, self.node).cmp(&(other.millis, other.counter, other.node))
    }
}

impl PartialOrd for Hlc {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Length of the text form.
const TEXT_LEN: usize = 50;

impl Hlc {
    /// The text form written digit by digit (clocks are written for every
    /// field of every record a pull stores); `None` past [`MAX_MILLIS`],
    /// which needs more than 12 digits.
    fn text(&self) -> Option<[u8; TEXT_LEN]> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if self.millis > MAX_MILLIS {
            return None;
        }
        let mut out = [b'-'; TEXT_LEN];
        for (i, b) in out[..12].iter_mut().enumerate() {
            *b = HEX[((self.millis >> (4 * (11 - i))) & 0xf) as usize];
        }
        for (i, b) in out[13..17].iter_mut().enumerate() {
            *b = HEX[usize::from((self.counter >> (4 * (3 - i))) & 0xf)];
        }
        self.node.0.simple().encode_lower(&mut out[18..]);
        Some(out)
    }
}

impl fmt::Display for Hlc {
    /// Fixed-width form whose byte order equals the clock order:
    /// `0192f1a2b3c4-0001-<32 hex digits of the node>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.text()
            && let Ok(s) = std::str::from_utf8(&text)
        {
            return f.write_str(s);
        }
        write!(
            f,
            "{:012x}-{:04x}-{}",
            self.millis,
            self.counter,
            self.node.0.simple()
        )
    }
}

/// A string that is not a valid clock reading.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid clock value {0:?}: expected 12 hex digits, '-', 4 hex digits, '-', 32 hex digits")]
pub struct ParseHlcError(pub String);

impl FromStr for Hlc {
    type Err = ParseHlcError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseHlcError(s.to_owned());
        let mut parts = s.split('-');
        let (Some(m), Some(c), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        if m.len() != 12 || c.len() != 4 || n.len() != 32 {
            return Err(err());
        }
        let millis = u64::from_str_radix(m, 16).map_err(|_| err())?;
        let counter = u16::from_str_radix(c, 16).map_err(|_| err())?;
        let node = Uuid::try_parse(n).map_err(|_| err())?;
        Ok(Self {
            millis,
            counter,
            node: DeviceId(node),
        })
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.text() {
            Some(text) => s.serialize_str(std::str::from_utf8(&text).map_err(S::Error::custom)?),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Hlc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a clock reading")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Hlc, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

crate::string_schema!(
    Hlc,
    "Hybrid logical clock: 12 hex digits of milliseconds, '-', 4 hex digits of counter, '-', 32 hex digits of node id"
);

/// A remote reading too far ahead of the local wall clock to be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("clock is {ahead_ms} ms ahead of the reference (limit {limit_ms} ms)")]
pub struct ClockAhead {
    /// How far ahead the remote reading is.
    pub ahead_ms: i64,
    /// The tolerated limit.
    pub limit_ms: i64,
}

/// The clock of one node. Persist [`HlcClock::last`] and [`HlcClock::restore`]
/// it to keep monotonicity across restarts.
#[derive(Clone, Debug)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A fresh clock for `node`.
    pub fn new(node: DeviceId) -> Self {
        Self {
            last: Hlc::zero(node),
        }
    }

    /// Resume a clock from its last issued or observed reading.
    pub fn restore(last: Hlc) -> Self {
        Self { last }
    }

    /// The last reading issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// A new reading strictly greater than every reading issued or observed,
    /// whatever the wall clock says.
    pub fn now(&mut self, wall: DateTime<Utc>) -> Hlc {
        let pt = wall_millis(wall);
        if pt > self.last.millis {
            self.last.millis = pt;
            self.last.counter = 0;
        } else {
            self.bump();
        }
        self.last
    }

    /// Take a received reading into account: afterwards every new reading is
    /// greater than `remote`.
    pub fn observe(&mut self, remote: &Hlc) {
        let (ours, theirs) = (
            (self.last.millis, self.last.counter),
            (remote.millis, remote.counter),
        );
        if theirs > ours {
            self.last.millis = remote.millis;
            self.last.counter = remote.counter;
        }
    }

    /// Like [`HlcClock::observe`], but refuses (and ignores) a reading more
    /// than `limit_ms` ahead of `wall`.
    pub fn observe_bounded(
        &mut self,
        remote: &Hlc,
        wall: DateTime<Utc>,
        limit_ms: i64,
    ) -> Result<(), ClockAhead> {
        let ahead_ms = remote.drift_ms(wall);
        if ahead_ms > limit_ms {
            return Err(ClockAhead { ahead_ms, limit_ms });
        }
        self.observe(remote);
        Ok(())
    }

    fn bump(&mut self) {
        if self.last.counter == u16::MAX {
            self.last.millis = (self.last.millis + 1).min(MAX_MILLIS);
            self.last.counter = 0;
        } else {
            self.last.counter += 1;
        }
    }
}

fn wall_millis(wall: DateTime<Utc>) -> u64 {
    u64::try_from(wall.timestamp_millis())
        .unwrap_or(0)
        .min(MAX_MILLIS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(n: u8) -> DeviceId {
        DeviceId(Uuid::from_bytes([n; 16]))
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    #[test]
    fn string_form_round_trips_and_sorts_like_the_clock() {
        let a = Hlc {
            millis: 5,
            counter: 2,
            node: node(1),
        };
        let b = Hlc {
            millis: 5,
            counter: 10,
            node: node(0),
        };
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        assert_eq!(a.to_string().parse::<Hlc>().unwrap(), a);
        assert!("zz".parse::<Hlc>().is_err());
    }

    #[test]
    fn ties_break_by_node() {
        let a = Hlc {
            millis: 5,
            counter: 0,
            node: node(1),
        };
        let b = Hlc {
            millis: 5,
            counter: 0,
            node: node(2),
        };
        assert!(a < b);
    }

    #[test]
    fn observe_moves_past_remote_even_with_a_slow_wall_clock() {
        let mut c = HlcClock::new(node(1));
        c.observe(&Hlc {
            millis: 10_000,
            counter: 7,
            node: node(2),
        });
        let t = c.now(at(5));
        assert!(
            t > Hlc {
                millis: 10_000,
                counter: 7,
                node: node(2)
            }
        );
    }

    #[test]
    fn bounded_observe_refuses_far_future() {
        let mut c = HlcClock::new(node(1));
        let far = Hlc {
            millis: 10_000_000,
            counter: 0,
            node: node(2),
        };
        let err = c.observe_bounded(&far, at(1_000), 60_000).unwrap_err();
        assert_eq!(err.limit_ms, 60_000);
        assert_eq!(c.last().millis, 0);
        assert_eq!(far.drift_ms(at(1_000)), 9_999_000);
    }

    #[test]
    fn counter_overflow_advances_millis() {
        let mut c = HlcClock::restore(Hlc {
            millis: 3,
            counter: u16::MAX,
            node: node(1),
        });
        let t = c.now(at(0));
        assert_eq!((t.millis, t.counter), (4, 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The clock is strictly monotonic under arbitrary wall-clock
        /// sequences, including jumps back and far forward, interleaved with
        /// observed remote readings.
        #[test]
        fn clock_is_strictly_monotonic(steps in proptest::collection::vec(
            (0i64..4_000_000_000_000, any::<bool>(), 0u64..4_000_000_000_000, any::<u16>()), 1..200)) {
            let mut c = HlcClock::new(node(9));
            let mut prev = c.last();
            for (wall, observe, rm, rc) in steps {
                if observe {
                    let remote = Hlc { millis: rm, counter: rc, node: node(3) };
                    c.observe(&remote);
                    let next = c.now(at(wall));
                    prop_assert!(next > remote);
                    prop_assert!(next > prev);
                    prev = next;
                } else {
                    let next = c.now(at(wall));
                    prop_assert!(next > prev, "{next} !> {prev}");
                    prev = next;
                }
            }
        }

        /// The digit-by-digit text form is the formatted one, and it reads
        /// back through serde (plain and with escapes) to the same reading.
        #[test]
        fn text_form_matches_the_formatted_one(millis in 0..=MAX_MILLIS, counter in any::<u16>(), n in any::<u128>()) {
            let h = Hlc { millis, counter, node: DeviceId(Uuid::from_u128(n)) };
            let formatted = format!("{millis:012x}-{counter:04x}-{}", Uuid::from_u128(n).simple());
            prop_assert_eq!(h.to_string(), formatted.clone());
            let json = serde_json::to_string(&h).unwrap();
            prop_assert_eq!(&json, &format!("\"{formatted}\""));
            prop_assert_eq!(serde_json::from_str::<Hlc>(&json).unwrap(), h);
            let escaped = format!("\"\\u00{:02x}{}\"", formatted.as_bytes()[0], &formatted[1..]);
            prop_assert_eq!(serde_json::from_str::<Hlc>(&escaped).unwrap(), h);
        }
    }

    #[test]
    fn a_reading_past_twelve_digits_still_prints_in_full() {
        let h = Hlc {
            millis: MAX_MILLIS + 1,
            counter: 1,
            node: node(1),
        };
        assert!(h.to_string().starts_with("1000000000000-0001-"), "{h}");
        assert!(serde_json::from_str::<Hlc>("17").is_err());
    }
}
