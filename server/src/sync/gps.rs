//! The server's GPS verdict on a visit: distance from the customer's
//! location (`geo::judge_check_in`) plus an impossible-travel check against
//! the same rep's previous check-in.

use super::decode_state;
use crate::store::{CheckIn, StoreError, WriteTx};
use serde_json::{Value, json};
use std::collections::HashMap;
use sync_protocol::geo::{GpsRules, GpsVerdict, LatLon, judge_check_in};
use sync_protocol::merge::RecordState;
use sync_protocol::time::parse_ts;
use sync_protocol::{Fields, RecordId, UserId};

/// Faster than this between two check-ins is physically implausible.
pub const MAX_TRAVEL_KMH: f64 = 250.0;

fn lat_lon(v: Option<&Value>) -> Option<LatLon> {
    v.and_then(|v| serde_json::from_value::<LatLon>(v.clone()).ok())
        .filter(LatLon::is_valid)
}

/// Compute `gps_verdict`, `gps_distance_m` and `gps_reasons` for a newly
/// created visit, and remember its check-in for later travel checks.
/// Customer locations read during one push: a batch of visits at the same
/// customers reads and decodes each customer once. An entry must be
/// forgotten when the push writes that customer.
#[derive(Debug, Default)]
pub struct Locations(HashMap<RecordId, Option<LatLon>>);

impl Locations {
    /// The stored location of `customer` (none when it or its location is missing).
    pub fn get(
        &mut self,
        tx: &mut dyn WriteTx,
        customer: RecordId,
    ) -> Result<Option<LatLon>, StoreError> {
        if let Some(l) = self.0.get(&customer) {
            return Ok(*l);
        }
        let loc = match tx.record(customer)? {
            Some(row) => lat_lon(decode_state(&row.state)?.get("location")),
            None => None,
        };
        self.0.insert(customer, loc);
        Ok(loc)
    }

    /// Forget `id` after it was written.
    pub fn forget(&mut self, id: RecordId) {
        self.0.remove(&id);
    }
}

pub fn judge_visit(
    tx: &mut dyn WriteTx,
    visit: &RecordState,
    rep: UserId,
    locations: &mut Locations,
) -> Result<Fields, StoreError> {
    let rules = GpsRules::default();
    let check_in = lat_lon(visit.get("check_in"));
    let accuracy = visit.get("check_in_accuracy_m").and_then(Value::as_f64);
    let customer_location = match visit
        .get_str("customer_id")
        .and_then(|s| s.parse::<RecordId>().ok())
    {
        Some(cid) => locations.get(tx, cid)?,
        None => None,
    };
    let (mut verdict, distance) = judge_check_in(check_in, accuracy, customer_location, &rules);
    let mut reasons: Vec<String> = Vec::new();
    match verdict {
        GpsVerdict::OutOfRange => {
            reasons.push(format!(
                "check-in is {:.0} m from the customer (allowed {:.0} m)",
                distance.unwrap_or_default(),
                rules.radius_m
            ));
        }
        GpsVerdict::Unverified if check_in.is_none() => reasons.push("no check-in position".into()),
        GpsVerdict::Unverified if customer_location.is_none() => {
            reasons.push("the customer has no location".into());
        }
        GpsVerdict::Unverified => reasons.push(format!(
            "check-in accuracy is worse than {:.0} m",
            rules.max_accuracy_m
        )),
        _ => {}
    }
    let started = visit
        .get_str("started_at")
        .and_then(parse_ts)
        .map(|t| t.timestamp_millis());
    if let (Some(at), Some(started_ms)) = (check_in, started) {
        if let Some(prev) = tx.previous_check_in(rep, started_ms, visit.id)? {
            let km = at.distance_m(&prev.at) / 1000.0;
            let hours = (started_ms - prev.started_at_ms) as f64 / 3_600_000.0;
            let kmh = if hours > 0.0 {
                km / hours
            } else {
                f64::INFINITY
            };
            if km > 1.0 && kmh > MAX_TRAVEL_KMH {
                verdict = GpsVerdict::Suspicious;
                reasons.push(format!(
                    "{km:.0} km from the previous check-in {:.0} min earlier would mean {kmh:.0} km/h (limit {MAX_TRAVEL_KMH:.0})",
                    hours * 60.0
                ));
            }
        }
        tx.put_check_in(&CheckIn {
            visit_id: visit.id,
            user_id: rep,
            started_at_ms: started_ms,
            at,
        })?;
    }
    let mut fields = Fields::new();
    fields.insert("gps_verdict".into(), json!(verdict.as_str()));
    if let Some(d) = distance {
        fields.insert(
            "gps_distance_m".into(),
            json!(d.round().clamp(0.0, 40_100_000.0) as i64),
        );
    }
    reasons.truncate(10);
    fields.insert("gps_reasons".into(), json!(reasons));
    Ok(fields)
}
