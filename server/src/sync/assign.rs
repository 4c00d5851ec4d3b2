//! Reassigning a customer: in one transaction the owner changes, the
//! customer and every record of it get new change numbers (so the new
//! owner's next pull brings the full history) and an eviction is recorded
//! (so the old owner's devices drop it).

use super::{ServerClock, decode_state, save_record, server_write};
use crate::error::ApiError;
use crate::store::WriteTx;
use chrono::{DateTime, Utc};
use serde_json::json;
use sync_protocol::schema::{self, Role};
use sync_protocol::time::format_ts;
use sync_protocol::wire::AssignCustomerResponse;
use sync_protocol::{ErrorCode as E, Fields, OpKind, RecordId};

/// Assign `customer` to the user named `to`.
pub fn assign(
    tx: &mut dyn WriteTx,
    customer: RecordId,
    to: &str,
    now: DateTime<Utc>,
) -> Result<AssignCustomerResponse, ApiError> {
    let coll = schema::collection("customers")
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no customers collection")))?;
    let row = tx
        .record(customer)?
        .filter(|r| r.collection == coll.name)
        .ok_or_else(|| ApiError::not_found(format!("there is no customer {customer}")))?;
    let new_owner = tx
        .user_by_name(to)?
        .ok_or_else(|| ApiError::not_found(format!("there is no user {to:?}")))?;
    if !matches!(new_owner.role, Role::Rep | Role::Supervisor) {
        return Err(ApiError::field(
            E::Forbidden,
            "to",
            format!(
                "customers are assigned to reps and supervisors; {to} is {}",
                new_owner.role
            ),
        ));
    }
    if !new_owner.active {
        return Err(ApiError::field(
            E::Forbidden,
            "to",
            format!("user {to} is deactivated"),
        ));
    }
    let from = tx.customer_owner(customer)?;
    if from == Some(new_owner.id) {
        return Ok(AssignCustomerResponse {
            customer_id: customer,
            from,
            to: new_owner.id,
            records_moved: 0,
        });
    }
    let at = format_ts(now);
    let mut server = ServerClock::load(tx)?;
    tx.set_customer_owner(customer, new_owner.id)?;
    if let Some(old) = from {
        let seq = tx.next_seq()?;
        tx.add_eviction(seq, customer, old, new_owner.id, &at)?;
    }
    let mut state = decode_state(&row.state)?;
    let mut f = Fields::new();
    f.insert("owner_id".into(), json!(new_owner.id.to_string()));
    server_write(&mut server, &mut state, OpKind::Patch, f, now)?;
    save_record(tx, coll, &state)?;
    let mut moved = 1u64;
    for id in tx.customer_unit(customer)? {
        if id != customer {
            let seq = tx.next_seq()?;
            tx.set_record_seq(id, seq)?;
            moved += 1;
        }
    }
    server.save(tx)?;
    Ok(AssignCustomerResponse {
        customer_id: customer,
        from,
        to: new_owner.id,
        records_moved: moved,
    })
}
