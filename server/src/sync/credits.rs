//! Who a visit or sale counts for (`credited_to`, see
//! `sync_protocol::schema::CREDITED_TO_AUTHOR`).
//!
//! A record without a credit counts for its customer's owner, which is the
//! answer for nearly all work: a rep's visits of their own customers. So
//! the credit is written only where it differs from the owner, and no
//! everyday visit carries it (a larger state on every push and pull):
//! - a push writes it when it creates work whose credit is not the
//!   customer's owner now (work made before a reassignment arriving after
//!   it, a problem applied by a reviewer);
//! - a reassignment writes it on the customer's uncredited work before the
//!   owner changes ([`settle`], from `assign::move_customer`);
//! - [`backfill`] writes it once for work stored by an older server on
//!   customers reassigned before credits existed.

use super::{ServerClock, decode_state, save_record, server_write};
use crate::store::{self, Store, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use serde_json::json;
use sync_protocol::merge::RecordState;
use sync_protocol::ownership::{Reassignment, credited_to, owner_at};
use sync_protocol::schema::{self, CREDIT_FIELD};
use sync_protocol::{Fields, OpKind, RecordId, UserId};

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

/// The credit of stored work that has none, by the rule a push applies (a
/// rep author, else the owner when it was created), for a customer owned by
/// `owner` whose reassignments are `changes`: `None` when it has one
/// already, or nobody can be named.
pub fn settle(
    tx: &mut dyn WriteTx,
    state: &RecordState,
    owner: Option<UserId>,
    changes: &[Reassignment],
) -> Result<Option<UserId>, StoreError> {
    if state.get(CREDIT_FIELD).is_some() {
        return Ok(None);
    }
    let Some(author) = state.created_by.map(|a| tx.user(a)).transpose()?.flatten() else {
        return Ok(None);
    };
    let made = state.created;
    credited_to(author.id, author.role, || {
        Ok(owner.zip(made).map(|(o, at)| owner_at(o, changes, at)))
    })
}

/// Credit the work on every reassigned customer that an older server
/// stored without a credit, where the credit is not the customer's owner;
/// once per store. Each credited record gets a new change number, so the
/// devices of the user it is credited to pull it. Returns how many records
/// were credited.
pub fn backfill(store: &dyn Store, now: DateTime<Utc>) -> Result<u64, StoreError> {
    if store::read(store, |tx| tx.meta(BACKFILLED_KEY))?.is_some() {
        return Ok(0);
    }
    store::write(store, |tx| {
        if tx.meta(BACKFILLED_KEY)?.is_some() {
            return Ok(0);
        }
        let mut credited = 0;
        let customers = tx.reassigned_customers()?;
        if !customers.is_empty() {
            let mut server = ServerClock::load(tx)?;
            for customer in customers {
                credited += credit_customer(tx, &mut server, customer, now)?;
            }
            server.save(tx)?;
        }
        tx.set_meta(BACKFILLED_KEY, &format!("{credited} records"))?;
        Ok(credited)
    })
}

fn credit_customer(
    tx: &mut dyn WriteTx,
    server: &mut ServerClock,
    customer: RecordId,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let changes = tx.reassignments(customer)?;
    let owner = tx.customer_owner(customer)?;
    let mut credited = 0;
    for id in tx.customer_unit(customer)? {
        let Some(row) = tx.record(id)? else { continue };
        let Some(coll) = schema::collection(&row.collection).filter(|c| c.credited_to_author())
        else {
            continue;
        };
        let mut state = decode_state(&row.state)?;
        let Some(to) = settle(tx, &state, owner, &changes)? else {
            continue;
        };
        if Some(to) == owner {
            continue;
        }
        server_write(
            server,
            &mut state,
            OpKind::Patch,
            credit_fields(Some(to)),
            now,
        )?;
        save_record(tx, coll, &state)?;
        credited += 1;
    }
    Ok(credited)
}
