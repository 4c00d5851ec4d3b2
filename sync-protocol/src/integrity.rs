//! Per-scope counts and checksums that let a device prove it holds exactly
//! what the server holds for its scope.
//!
//! A record's checksum is the 64-bit FNV-1a hash of its canonical JSON (the
//! `serde_json` serialisation of [`crate::merge::RecordState`], whose maps are
//! ordered); a scope's checksum is the wrapping sum over its records, so it
//! does not depend on order.

use crate::merge::RecordState;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The canonical JSON of a record state.
pub fn canonical_json(state: &RecordState) -> String {
    serde_json::to_string(state).unwrap_or_default()
}

/// Running count and checksum of one scope (one collection of one device's view).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Number of records.
    pub count: u64,
    /// Wrapping sum of record hashes.
    pub checksum: u64,
}

impl Tally {
    /// Add one record, given its canonical JSON.
    pub fn add(&mut self, canonical: &[u8]) {
        self.count += 1;
        self.checksum = self.checksum.wrapping_add(fnv1a64(canonical));
    }

    /// The checksum as 16 hex digits (JSON numbers cannot hold every u64 safely).
    pub fn checksum_hex(&self) -> String {
        format!("{:016x}", self.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values_and_order_independence() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let (mut a, mut b) = (Tally::default(), Tally::default());
        a.add(b"x");
        a.add(b"y");
        b.add(b"y");
        b.add(b"x");
        assert_eq!(a, b);
        assert_eq!(a.checksum_hex().len(), 16);
    }
}
