//! The sync rules, independent of the store: admission (validation order,
//! scope, permission, state checks), merging, server-computed fields,
//! pulls and reassignment. They talk to storage only through
//! [`crate::store::ReadTx`] / [`crate::store::WriteTx`], so they hold for
//! every store.

pub mod assign;
pub mod conflicts;
pub mod credits;
mod gps;
pub mod problems;
pub mod pull;
pub mod push;

use crate::store::{ReadTx, RecordRow, RecordScope, StoreError, WriteTx};
use chrono::{DateTime, Utc};
use sync_protocol::merge::RecordState;
use sync_protocol::schema::{self, Anchor, Collection};
use sync_protocol::validate::{Author, validate_op};
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::{DeviceId, Fields, Hlc, HlcClock, Op, OpId, OpKind, RecordId};

/// An op clock more than this far ahead of the server's wall clock is re-stamped.
pub const CLOCK_LIMIT_MS: i64 = 5 * 60 * 1000;

pub use crate::store::{META_CLOCK, META_DEVICE};

/// The server's own identity and clock, loaded from and saved to the store
/// inside a transaction (so several instances sharing a database agree).
pub struct ServerClock {
    /// The server's device id (author of server-computed fields).
    pub device: DeviceId,
    /// Its clock.
    pub clock: HlcClock,
}

impl ServerClock {
    /// Load the persisted clock ([`ensure_identity`] must have run).
    pub fn load(tx: &mut dyn ReadTx) -> Result<Self, StoreError> {
        let mut values = tx.metas(&[META_DEVICE, META_CLOCK])?.into_iter();
        let (device, clock) = (values.next().flatten(), values.next().flatten());
        let device: DeviceId = device
            .ok_or_else(|| StoreError::Corrupt("server device id missing".into()))?
            .parse()
            .map_err(|_| StoreError::Corrupt("bad server device id".into()))?;
        let clock = match clock {
            Some(s) => HlcClock::restore(
                s.parse::<Hlc>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
            None => HlcClock::new(device),
        };
        Ok(Self { device, clock })
    }

    /// Persist the clock.
    pub fn save(&self, tx: &mut dyn WriteTx) -> Result<(), StoreError> {
        tx.set_meta(META_CLOCK, &self.clock.last().to_string())
    }

    /// A reading for a response, without persisting it.
    pub fn now(&mut self, wall: DateTime<Utc>) -> Hlc {
        self.clock.now(wall)
    }
}

/// Create the server's device id and clock on first start.
pub fn ensure_identity(tx: &mut dyn WriteTx, now: DateTime<Utc>) -> Result<(), StoreError> {
    if tx.meta(META_DEVICE)?.is_none() {
        let device = DeviceId::new_v7(now);
        tx.set_meta(META_DEVICE, &device.to_string())?;
        tx.set_meta(META_CLOCK, &Hlc::from_wall(now, device).to_string())?;
    }
    Ok(())
}

/// Decode a stored record state.
pub fn decode_state(json: &str) -> Result<RecordState, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("record state: {e}")))
}

/// The scope columns of a record, from its collection's anchor.
pub fn record_scope(coll: &Collection, state: &RecordState) -> RecordScope {
    let id_of = |f: &str| state.get_str(f).and_then(|s| s.parse::<uuid::Uuid>().ok());
    match coll.anchor {
        Anchor::Customer => RecordScope {
            customer_id: Some(state.id),
            ..RecordScope::default()
        },
        // Work stays in the scope of the user it is credited to after its
        // customer moves on (see `schema::CREDITED_TO_AUTHOR`; `save_record`
        // keeps it only while that user does not own the customer).
        Anchor::CustomerRef(f) => RecordScope {
            customer_id: id_of(f).map(RecordId),
            subject_user: coll
                .credited_to_author()
                .then(|| id_of(schema::CREDIT_FIELD))
                .flatten()
                .map(Into::into),
            ..RecordScope::default()
        },
        Anchor::User(f) => RecordScope {
            subject_user: id_of(f).map(Into::into),
            ..RecordScope::default()
        },
        Anchor::UserOrTeam(u, t) => RecordScope {
            subject_user: id_of(u).map(Into::into),
            subject_team: id_of(t).map(Into::into),
            ..RecordScope::default()
        },
        Anchor::Public => RecordScope {
            public: true,
            ..RecordScope::default()
        },
    }
}

/// Store a record's state under the next change number; returns the number.
///
/// Work credited to the owner of its customer has no subject user: the
/// owner's scope holds it through the customer, and without one a visit
/// costs no entry in the subject index nor a second branch of every pull.
/// A reassignment stores the customer's work again, so the subject follows.
pub fn save_record(
    tx: &mut dyn WriteTx,
    coll: &Collection,
    state: &RecordState,
) -> Result<u64, StoreError> {
    let mut scope = record_scope(coll, state);
    if let (true, Some(credited), Some(customer)) = (
        coll.credited_to_author(),
        scope.subject_user,
        scope.customer_id,
    ) && tx.customer_owner(customer)? == Some(credited)
    {
        scope.subject_user = None;
    }
    let seq = tx.next_seq()?;
    tx.put_record(&RecordRow {
        id: state.id,
        collection: coll.name.to_owned(),
        seq,
        state: sync_protocol::integrity::canonical_json(state),
        scope,
    })?;
    Ok(seq)
}

/// Apply a server-authored write (clock and device of the server) to `state`.
/// Server ops are validated like device ops, as [`Author::Server`].
pub fn server_write(
    server: &mut ServerClock,
    state: &mut RecordState,
    kind: OpKind,
    fields: Fields,
    wall: DateTime<Utc>,
) -> Result<(), StoreError> {
    let op = Op {
        op_id: OpId::new_v7(wall),
        device_id: server.device,
        device_seq: 1,
        hlc: server.clock.now(wall),
        schema_version: SCHEMA_VERSION,
        collection: state.collection.clone(),
        record_id: state.id,
        kind,
        fields,
        transition: None,
        base: None,
    };
    validate_op(&op, Author::Server).map_err(|e| {
        StoreError::Corrupt(format!("server write to {} rejected: {e}", op.collection))
    })?;
    state.apply(&op);
    Ok(())
}

/// Create or update a public directory record (`users`, `teams`) written by
/// the server, and store it under a new change number.
pub fn write_directory_record(
    tx: &mut dyn WriteTx,
    collection: &'static str,
    id: RecordId,
    fields: Fields,
    created_by: sync_protocol::UserId,
    wall: DateTime<Utc>,
) -> Result<(), StoreError> {
    let coll = schema::collection(collection)
        .ok_or_else(|| StoreError::Corrupt(format!("no collection {collection}")))?;
    let mut server = ServerClock::load(tx)?;
    let existing = tx.record(id)?.map(|r| decode_state(&r.state)).transpose()?;
    let (mut state, kind) = match existing {
        Some(s) => (s, OpKind::Patch),
        None => (RecordState::new(id, collection), OpKind::Create),
    };
    server_write(&mut server, &mut state, kind, fields, wall)?;
    if state.created_by.is_none() {
        state.created_by = Some(created_by);
    }
    save_record(tx, coll, &state)?;
    server.save(tx)
}
