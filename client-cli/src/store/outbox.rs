//! The outbox: every local write becomes an op here, in the same
//! transaction as its effect on the local view.

use super::{Store, key, load_clock, save_clock, view};
use crate::error::Failure;
use anyhow::{Context, Result};
use chrono::Utc;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_protocol::schema::rules::{self, Person};
use sync_protocol::schema::{Anchor, Collection, Relation};
use sync_protocol::time::format_ts;
use sync_protocol::validate::{Author, check_admission, validate_op};
use sync_protocol::version::SCHEMA_VERSION;
use sync_protocol::{
    Bases, DeviceId, Fields, Op, OpId, OpKind, RecordId, RecordState, StateChange, TeamId, UserId,
};

/// An op before it gets its id, sequence number and clock.
#[derive(Clone, Debug)]
pub struct Draft {
    /// Collection.
    pub collection: String,
    /// The record.
    pub record_id: RecordId,
    /// What it does.
    pub kind: OpKind,
    /// Field values.
    pub fields: Fields,
    /// State change (transitions).
    pub transition: Option<StateChange>,
}

impl Draft {
    /// A create op for a new record.
    pub fn create(collection: &str, record_id: RecordId, fields: Fields) -> Self {
        Self {
            collection: collection.to_owned(),
            record_id,
            kind: OpKind::Create,
            fields,
            transition: None,
        }
    }

    /// A patch.
    pub fn patch(collection: &str, record_id: RecordId, fields: Fields) -> Self {
        Self {
            collection: collection.to_owned(),
            record_id,
            kind: OpKind::Patch,
            fields,
            transition: None,
        }
    }

    /// A transition.
    pub fn transition(
        collection: &str,
        record_id: RecordId,
        change: StateChange,
        fields: Fields,
    ) -> Self {
        Self {
            collection: collection.to_owned(),
            record_id,
            kind: OpKind::Transition,
            fields,
            transition: Some(change),
        }
    }

    /// An archive op.
    pub fn archive(collection: &str, record_id: RecordId) -> Self {
        Self {
            collection: collection.to_owned(),
            record_id,
            kind: OpKind::Archive,
            fields: Fields::new(),
            transition: None,
        }
    }
}

fn last_seq(conn: &Connection) -> Result<u64> {
    Ok(super::get_meta(conn, key::LAST_SEQ)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn current_state(conn: &Connection, id: &RecordId) -> Result<Option<RecordState>> {
    use rusqlite::OptionalExtension;
    let s: Option<String> = conn
        .prepare_cached(&format!(
            "SELECT coalesce(r.state, s.state) FROM {} WHERE r.id = ?1",
            super::view::VIEW
        ))?
        .query_row([id.to_string()], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(s.map(|s| serde_json::from_str(&s)).transpose()?)
}

/// The base clocks of a patch or transition: for each field it writes,
/// the clock of the value this laptop shows now (left out where it shows
/// none). Creates and archives overwrite no value and carry none.
fn base_clocks(d: &Draft, current: Option<&RecordState>) -> Option<Bases> {
    if !matches!(d.kind, OpKind::Patch | OpKind::Transition) {
        return None;
    }
    let written = d
        .fields
        .keys()
        .map(String::as_str)
        .chain(d.transition.as_ref().map(|t| t.field.as_str()));
    Some(
        written
            .filter_map(|name| {
                let hlc = current?.fields.get(name)?.hlc;
                Some((name.to_owned(), hlc))
            })
            .collect(),
    )
}

fn uuid_in(v: Option<&Value>) -> Option<uuid::Uuid> {
    v.and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
}

/// A user as this laptop's copy of the directory knows them.
fn person(conn: &Connection, id: UserId) -> Result<Option<Person>> {
    Ok(current_state(conn, &RecordId(id.0))?.map(|s| Person {
        id,
        team: uuid_in(s.get("team_id")).map(TeamId),
        supervisor: uuid_in(s.get("supervisor_id")).map(UserId),
    }))
}

/// How the op's record relates to the writer, by the server's rule
/// ([`rules::relation_to_user`]) over what this laptop knows. Where it
/// cannot tell (a directory not yet synced, a customer created here), the
/// answer is `Own`, the relation every grant covers: the laptop refuses
/// only what it knows the server would.
fn relation(
    conn: &Connection,
    ident: super::Identity,
    coll: &Collection,
    op: &Op,
    current: Option<&RecordState>,
) -> Result<Relation> {
    let get = |name: &str| match op.kind {
        OpKind::Create => op.fields.get(name).filter(|v| !v.is_null()).cloned(),
        _ => current.and_then(|s| s.get(name)).cloned(),
    };
    let subject = match coll.anchor {
        Anchor::Public => return Ok(Relation::Other),
        Anchor::Customer if op.kind == OpKind::Create => return Ok(Relation::Own),
        Anchor::Customer => uuid_in(current.and_then(|s| s.get("owner_id"))),
        Anchor::CustomerRef(f) => match uuid_in(get(f).as_ref()) {
            Some(c) => match current_state(conn, &RecordId(c))? {
                Some(customer) => uuid_in(customer.get("owner_id")),
                // Work kept here after its customer moved to another owner
                // (it counts for this user): the server would refuse it.
                None if current.is_some() => {
                    return Err(Failure::new(format!(
                        "this {} belongs to a customer that is no longer in your care; it still counts for whoever did it, but it cannot be changed here",
                        coll.name.trim_end_matches('s')
                    ))
                    .hint("ask the customer's new owner or a supervisor to change it")
                    .into());
                }
                None => None,
            },
            None => None,
        },
        Anchor::User(f) => uuid_in(get(f).as_ref()),
        Anchor::UserOrTeam(u, t) => match (uuid_in(get(u).as_ref()), uuid_in(get(t).as_ref())) {
            (Some(user), _) => Some(user),
            (None, Some(team)) => {
                return Ok(person(conn, ident.user)?.map_or(Relation::Own, |me| {
                    rules::relation_to_team(me.team, TeamId(team))
                }));
            }
            (None, None) => None,
        },
    };
    let Some(subject) = subject.map(UserId) else {
        return Ok(Relation::Own);
    };
    if subject == ident.user {
        return Ok(Relation::Own);
    }
    Ok(match (person(conn, ident.user)?, person(conn, subject)?) {
        (Some(me), Some(them)) => rules::relation_to_user(&me, &them),
        _ => Relation::Own,
    })
}

impl Store {
    /// Write ops: validate each (refusing all of them if one is invalid),
    /// allocate gap-free `device_seq`s, tick and persist the clock, append to
    /// the outbox and refresh the view — all in one transaction.
    pub fn write(&mut self, drafts: Vec<Draft>) -> Result<Vec<Op>> {
        self.write_with(drafts, |_| Ok(()))
    }

    /// Like [`Store::write`], also running `also` in the same transaction.
    pub fn write_with(
        &mut self,
        drafts: Vec<Draft>,
        also: impl FnOnce(&Connection) -> Result<()>,
    ) -> Result<Vec<Op>> {
        let ident = self.identity.ok_or_else(Failure::not_logged_in)?;
        let tx = self.write_tx()?;
        let mut clock = load_clock(&tx, ident.device)?;
        let mut seq = last_seq(&tx)?;
        let mut written = Vec::with_capacity(drafts.len());
        for d in drafts {
            seq += 1;
            let now = Utc::now();
            let current = current_state(&tx, &d.record_id)?;
            let base = base_clocks(&d, current.as_ref());
            for hlc in base.iter().flat_map(|b| b.values()) {
                clock.observe(hlc);
            }
            let op = Op {
                op_id: OpId::new_v7(now),
                device_id: ident.device,
                device_seq: seq,
                hlc: clock.now(now),
                schema_version: SCHEMA_VERSION,
                collection: d.collection,
                record_id: d.record_id,
                kind: d.kind,
                fields: d.fields,
                transition: d.transition,
                base,
            };
            let coll = validate_op(&op, Author::Device).map_err(|e| Failure::invalid(&e))?;
            let rel = relation(&tx, ident, coll, &op, current.as_ref())?;
            check_admission(&op, coll, current.as_ref(), ident.role, rel)
                .map_err(|e| Failure::invalid(&e))?;
            insert(&tx, &op)?;
            view::refresh(&tx, &op.record_id.to_string())?;
            written.push(op);
        }
        super::set_meta(&tx, key::LAST_SEQ, &seq.to_string())?;
        save_clock(&tx, &clock)?;
        also(&tx)?;
        tx.commit()?;
        Ok(written)
    }

    /// The oldest outbox ops, at most `max_ops` of them and about `max_bytes`
    /// of JSON (always at least one op when the outbox is not empty).
    pub fn outbox_batch(&self, max_ops: usize, max_bytes: usize) -> Result<Vec<Op>> {
        let mut stmt = self
            .conn
            .prepare("SELECT op FROM outbox ORDER BY device_seq LIMIT ?1")?;
        let rows = stmt.query_map([max_ops as i64], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for row in rows {
            let text = row?;
            bytes += text.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(serde_json::from_str(&text).context("an op in the outbox is damaged")?);
        }
        Ok(out)
    }

    /// Lowest `device_seq` still in the outbox.
    pub fn outbox_first_seq(&self) -> Result<Option<u64>> {
        let v: Option<i64> =
            self.conn
                .query_row("SELECT min(device_seq) FROM outbox", [], |r| r.get(0))?;
        Ok(v.map(|v| v as u64))
    }

    /// After a login that registered a *different* device: re-stamp every
    /// pending op for the new device (new `device_seq` from 1, same op ids,
    /// records, clocks and content), so no unsynced work is lost.
    pub fn adopt_device(&mut self, device: DeviceId) -> Result<u64> {
        let tx = self.write_tx()?;
        let n = renumber(&tx, device)?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [key::NEW_DEVICE])?;
        tx.commit()?;
        self.set_device(device);
        Ok(n)
    }

    /// The device this profile set out to become and has not finished
    /// becoming (see [`Store::begin_new_device`]).
    pub fn new_device_underway(&self) -> Result<Option<NewDevice>> {
        self.meta(key::NEW_DEVICE)?
            .map(|s| {
                serde_json::from_str(&s).context("the new device noted in the store is damaged")
            })
            .transpose()
    }

    /// Start becoming a new device because `previous`'s history diverged
    /// from the server's: note the new device's id before it is
    /// registered, so that a command killed on the way registers the same
    /// one again. The one already noted, if any.
    pub fn begin_new_device(&mut self, previous: DeviceId) -> Result<NewDevice> {
        self.note_new_device(previous, false)
    }

    /// Drop the noted new device (it turned out to be in use) and note
    /// another one.
    pub fn begin_new_device_again(&mut self, previous: DeviceId) -> Result<NewDevice> {
        self.note_new_device(previous, true)
    }

    fn note_new_device(&mut self, previous: DeviceId, replace: bool) -> Result<NewDevice> {
        let tx = self.write_tx()?;
        let noted: Option<String> = super::get_meta(&tx, key::NEW_DEVICE)?;
        let new = if let Some(s) = noted.filter(|_| !replace) {
            serde_json::from_str(&s).context("the new device noted in the store is damaged")?
        } else {
            let now = Utc::now();
            let new = NewDevice {
                device_id: DeviceId::new_v7(now),
                previous_device_id: previous,
                at: format_ts(now),
            };
            super::set_meta(&tx, key::NEW_DEVICE, &serde_json::to_string(&new)?)?;
            new
        };
        tx.commit()?;
        Ok(new)
    }

    /// The registered new device takes over the outbox: every pending op
    /// is renumbered for it (same op ids, so one the server already has is
    /// answered as a replay). Safe to repeat: it renumbers what is there.
    pub fn renumber_for(&mut self, device: DeviceId) -> Result<u64> {
        let tx = self.write_tx()?;
        let n = renumber(&tx, device)?;
        tx.commit()?;
        self.set_device(device);
        Ok(n)
    }

    /// Finish becoming `new`: write `retry` (ops the server refused only
    /// because what they refer to was held up behind the divergence) and
    /// mark their problems retried, and note the change as done, in one
    /// transaction. Returns the ops written.
    pub fn finish_new_device(&mut self, new: &NewDevice, retry: Vec<(i64, Draft)>) -> Result<u64> {
        let (ids, drafts): (Vec<i64>, Vec<Draft>) = retry.into_iter().unzip();
        let now = format_ts(Utc::now());
        let done = NewDevice {
            at: now.clone(),
            ..new.clone()
        };
        let written = self.write_with(drafts, |conn| {
            for id in &ids {
                conn.execute(
                    "UPDATE problems SET resolved_at = ?2, resolution = 'retried' WHERE id = ?1",
                    params![id, now],
                )?;
            }
            conn.execute("DELETE FROM meta WHERE key = ?1", [key::NEW_DEVICE])?;
            super::set_meta(conn, key::DEVICE_REPAIRED, &serde_json::to_string(&done)?)
        })?;
        Ok(written.len() as u64)
    }
}

/// A device this profile became because its history diverged from the
/// server's (restored from a backup, or copied to another computer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// The new device.
    pub device_id: DeviceId,
    /// The device whose history diverged.
    pub previous_device_id: DeviceId,
    /// When the change began (while under way) or was done (RFC 3339).
    pub at: String,
}

/// Re-stamp every pending op for `device`: `device_seq` from 1 in the
/// order they were written, same op ids, records, clocks and content.
fn renumber(tx: &Connection, device: DeviceId) -> Result<u64> {
    let mut stmt = tx.prepare("SELECT op FROM outbox ORDER BY device_seq")?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    tx.execute("DELETE FROM outbox", [])?;
    let mut seq = 0u64;
    for text in &rows {
        let mut op: Op = serde_json::from_str(text).context("an op in the outbox is damaged")?;
        seq += 1;
        op.device_id = device;
        op.device_seq = seq;
        insert(tx, &op)?;
    }
    super::set_meta(tx, key::LAST_SEQ, &seq.to_string())?;
    let clock = load_clock(tx, device)?;
    save_clock(tx, &clock)?;
    Ok(seq)
}

pub(crate) fn insert(conn: &Connection, op: &Op) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (device_seq, op_id, collection, record_id, op, written_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![op.device_seq as i64, op.op_id.to_string(), op.collection, op.record_id.to_string(), serde_json::to_string(op)?, format_ts(Utc::now())],
    )?;
    Ok(())
}
