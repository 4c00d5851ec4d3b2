//! Who a visit or sale counts for (`credited_to`, see
//! `sync_protocol::schema::CREDITED_TO_AUTHOR`). A push writes it when the
//! record is created; [`backfill`] writes it once for the work stored
//! before credits existed on customers that have since been reassigned —
//! the only records whose credit differs from "the customer's owner", what
//! an uncredited record counts for.

use super::{ServerClock, decode_state, save_record, server_write};
use crate::store::{self, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::json;
use sync_protocol::ownership::{credited_to, owner_at};
use sync_protocol::schema::{self, CREDIT_FIELD};
use sync_protocol::{Fields, OpKind, UserId};

/// Meta key set once [`backfill`] has run.
pub const BACKFILLED_KEY: &str = "work_credits_backfilled";

/// The server-written fields that credit work to `to` (none when nobody
/// can be named).
pub fn credit_fields(to: Option<UserId>) -> Fields {
    let mut f = Fields::new();
    if let Some(to) = to {
        f.insert(CREDIT_FIELD.into(), json!(to.to_string()));
    }
    f
}

/// Credit the uncredited visits and sales of every reassigned customer, by
/// the rule a push applies (a rep author, else the owner when it was
/// created); once per store. Each credited
/// record gets a new change number, so the devices of the user it is
/// credited to pull it. Returns how many records were credited.
pub fn backfill(store: &dyn Store, now: DateTime<Utc>) -> Result<u64, StoreError> {
    if store::read(store, |tx| tx.meta(BACKFILLED_KEY))?.is_some() {
        return Ok(0);
    }
    store::write(store, |tx| {
        if tx.meta(BACKFILLED_KEY)?.is_some() {
            return Ok(0);
        }
        let credited = credit_reassigned(tx, now)?;
        tx.set_meta(BACKFILLED_KEY, &format!("{credited} records"))?;
        Ok(credited)
    })
}

fn credit_reassigned(tx: &mut dyn WriteTx, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let customers = tx.reassigned_customers()?;
    if customers.is_empty() {
        return Ok(0);
    }
    let mut server = ServerClock::load(tx)?;
    let mut credited = 0;
    for customer in customers {
        let changes = tx.reassignments(customer)?;
        let owner = tx.customer_owner(customer)?;
        for id in tx.customer_unit(customer)? {
            let Some(row) = tx.record(id)? else { continue };
            let Some(coll) = schema::collection(&row.collection).filter(|c| c.credited_to_author())
            else {
                continue;
            };
            let mut state = decode_state(&row.state)?;
            if state.get(CREDIT_FIELD).is_some() {
                continue;
            }
            let Some(author) = state.created_by.map(|a| tx.user(a)).transpose()?.flatten() else {
                continue;
            };
            let made = state.created;
            let to = credited_to(author.id, author.role, || {
                Ok::<_, StoreError>(owner.zip(made).map(|(o, at)| owner_at(o, &changes, at)))
            })?;
            if to.is_none() {
                continue;
            }
            server_write(
                &mut server,
                &mut state,
                OpKind::Patch,
                credit_fields(to),
                now,
            )?;
            save_record(tx, coll, &state)?;
            credited += 1;
        }
    }
    server.save(tx)?;
    Ok(credited)
}
