//! Reassigning a customer: in one transaction the owner changes, the
//! customer and every record of it get new change numbers (so the new
//! owner's next pull brings the full history) and an eviction is recorded
//! with the server's clock (so the old owner's devices drop it, and ops
//! they made before it are still judged as the old owner's; see
//! `sync_protocol::ownership`). The customer's visits and sales without a
//! credit get one first (`credits::settle`): until now they counted for
//! the old owner, and they go on counting for whoever did them.

use super::{ServerClock, credits, decode_state, save_record, server_write};
use crate::error::ApiError;
use crate::store::{UserRow, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::json;
use sync_protocol::ownership::Reassignment;
use sync_protocol::schema::{self, Collection};
use sync_protocol::time::format_ts;
use sync_protocol::wire::{AssignCustomerResponse, AssignCustomersResponse};
use sync_protocol::{ErrorCode as E, Fields, OpKind, RecordId};

/// Assign `customer` to the user named `to`.
pub fn assign(
    tx: &mut dyn WriteTx,
    customer: RecordId,
    to: &str,
    now: DateTime<Utc>,
) -> Result<AssignCustomerResponse, ApiError> {
    let coll = customers()?;
    let new_owner = new_owner(tx, to)?;
    let mut server = ServerClock::load(tx)?;
    let (from, moved) = move_customer(tx, &mut server, coll, customer, &new_owner, now)?;
    server.save(tx)?;
    Ok(AssignCustomerResponse {
        customer_id: customer,
        from,
        to: new_owner.id,
        records_moved: moved,
    })
}

/// Assign every customer of the user named `from` to the user named `to`
/// (a deactivated rep's customers, in one command).
pub fn assign_all(
    tx: &mut dyn WriteTx,
    from: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<AssignCustomersResponse, ApiError> {
    let coll = customers()?;
    let old_owner = tx
        .user_by_name(from)?
        .ok_or_else(|| ApiError::not_found(format!("there is no user {from:?}")))?;
    let new_owner = new_owner(tx, to)?;
    if old_owner.id == new_owner.id {
        return Err(ApiError::field(
            E::MalformedRequest,
            "to",
            format!("{to} already owns {from}'s customers: name another user"),
        ));
    }
    let mut server = ServerClock::load(tx)?;
    let customers = tx.customers_owned_by(old_owner.id)?;
    let mut moved = 0;
    for &customer in &customers {
        moved += move_customer(tx, &mut server, coll, customer, &new_owner, now)?.1;
    }
    server.save(tx)?;
    Ok(AssignCustomersResponse {
        from: old_owner.id,
        to: new_owner.id,
        customers,
        records_moved: moved,
    })
}

fn customers() -> Result<&'static Collection, ApiError> {
    schema::collection("customers")
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no customers collection")))
}

/// The user named `to`, if customers may be assigned to them.
fn new_owner(tx: &mut dyn WriteTx, to: &str) -> Result<UserRow, ApiError> {
    let user = tx
        .user_by_name(to)?
        .ok_or_else(|| ApiError::not_found(format!("there is no user {to:?}")))?;
    if !user.role.owns_customers() {
        return Err(ApiError::field(
            E::Forbidden,
            "to",
            format!(
                "customers are assigned to reps and supervisors; {to} is {}",
                user.role
            ),
        ));
    }
    if !user.active {
        return Err(ApiError::field(
            E::Forbidden,
            "to",
            format!("user {to} is deactivated"),
        ));
    }
    Ok(user)
}

/// Move one existing customer to `new_owner`: its previous owner and the
/// number of records moved (none when it is already theirs).
fn move_customer(
    tx: &mut dyn WriteTx,
    server: &mut ServerClock,
    coll: &'static Collection,
    customer: RecordId,
    new_owner: &UserRow,
    now: DateTime<Utc>,
) -> Result<(Option<sync_protocol::UserId>, u64), ApiError> {
    let row = tx
        .record(customer)?
        .filter(|r| r.collection == coll.name)
        .ok_or_else(|| ApiError::not_found(format!("there is no customer {customer}")))?;
    let from = tx.customer_owner(customer)?;
    if from == Some(new_owner.id) {
        return Ok((from, 0));
    }
    // Before the owner changes: the changes so far judge who owned it when.
    let changes = tx.reassignments(customer)?;
    tx.set_customer_owner(customer, new_owner.id)?;
    if let Some(old) = from {
        // The moment of the change: ops stamped before it were made while
        // the customer was `old`'s.
        let change = Reassignment {
            hlc: server.clock.now(now),
            from: old,
            to: new_owner.id,
        };
        let seq = tx.next_seq()?;
        tx.add_eviction(seq, customer, &change, &format_ts(now))?;
    }
    let mut state = decode_state(&row.state)?;
    let mut f = Fields::new();
    f.insert("owner_id".into(), json!(new_owner.id.to_string()));
    server_write(server, &mut state, OpKind::Patch, f, now)?;
    save_record(tx, coll, &state)?;
    let mut moved = 1u64;
    for id in tx.customer_unit(customer)? {
        if id == customer {
            continue;
        }
        let Some(row) = tx.record(id)? else { continue };
        // Work without a credit counted for the owner until now: it gets
        // one. Whether work is about the user it is credited to depends on
        // the owner (see `save_record`): stored again either way.
        if let Some(c) = schema::collection(&row.collection).filter(|c| c.credited_to_author()) {
            let mut state = decode_state(&row.state)?;
            if let Some(to) = credits::settle(tx, &state, from, &changes)? {
                let f = credits::credit_fields(Some(to));
                server_write(server, &mut state, OpKind::Patch, f, now)?;
            }
            save_record(tx, c, &state)?;
        } else {
            let seq = tx.next_seq()?;
            tx.set_record_seq(id, seq)?;
        }
        moved += 1;
    }
    Ok((from, moved))
}
