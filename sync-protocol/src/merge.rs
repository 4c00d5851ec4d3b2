//! Merging ops into record state.
//!
//! Every field is an independent register ordered by hybrid logical clock:
//! `fact` and `write_once` fields keep the *first* write, every other policy
//! keeps the *last*. Because each register takes a minimum or a maximum,
//! applying the same ops in any order, with any number of duplicates, yields
//! the same state on every replica. (Admission — whether an op is allowed at
//! all, e.g. a stale transition — is decided before merging, by the server;
//! see [`crate::validate`].)
//!
//! Conflicts. Whichever write wins, the merge reports a value that lost to
//! a write that had not seen it: an op carries, per field, the clock of the
//! value its device had when the user edited ([`crate::op::Bases`]). When
//! the op wins and its base is the current clock, the edit was sequential
//! and nothing is reported; when its base is older (or absent: the device
//! never saw the field), the displaced value is reported in
//! [`Applied::displaced`]. When the op loses, its value is reported in
//! [`Applied::conflicts`]: delivered in device order through one hub (the
//! server), the current value cannot have been written by someone who saw
//! the arriving one. Ops without base clocks (older clients) report only
//! their own losses, as before base clocks.

use crate::hlc::Hlc;
use crate::id::{RecordId, UserId};
use crate::op::{Op, OpKind};
use crate::schema::{self, Policy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A field's current value and the clock of the write that set it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldState {
    /// The value (`null` when cleared).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
    /// Clock of the winning write.
    pub hlc: Hlc,
}

/// The merged state of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordState {
    /// Record id.
    pub id: RecordId,
    /// Collection name.
    pub collection: String,
    /// Field registers.
    pub fields: BTreeMap<String, FieldState>,
    /// Clock of the (earliest) create op, once one has been applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Hlc>,
    /// Clock of the (earliest) archive op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<Hlc>,
    /// The user who created the record (set by whoever applies the create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
}

/// A write that lost on one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// The value that lost.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub losing_value: Value,
    /// The value that is kept.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub winning_value: Value,
    /// Clock of the losing write.
    pub losing_hlc: Hlc,
    /// Clock of the winning write.
    pub winning_hlc: Hlc,
}

/// What applying one op did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    /// Whether the state changed.
    pub changed: bool,
    /// Fields on which the op lost to an existing value that differs.
    pub conflicts: Vec<FieldConflict>,
    /// Fields on which the op won over a value that differs and that its
    /// device had not seen (the displaced value is the losing side), or
    /// overwrote a later value of a first-writer-wins field.
    pub displaced: Vec<FieldConflict>,
}

/// What the writer of an op had seen of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// The op carries no base clocks (an older client).
    Unknown,
    /// The clock of the value the device had (`None`: it had none).
    Base(Option<Hlc>),
}

impl Seen {
    /// Whether a write with this base had seen the value written at `hlc`.
    fn saw(self, hlc: Hlc) -> bool {
        match self {
            Seen::Unknown => true,
            Seen::Base(b) => b == Some(hlc),
        }
    }
}

impl RecordState {
    /// An empty record, before any op.
    pub fn new(id: RecordId, collection: &str) -> Self {
        Self {
            id,
            collection: collection.to_owned(),
            fields: BTreeMap::new(),
            created: None,
            archived: None,
            created_by: None,
        }
    }

    /// The current value of a field (`None` when absent or null).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .get(field)
            .map(|f| &f.value)
            .filter(|v| !v.is_null())
    }

    /// The current value of a text or enum field.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    /// Whether a create op has been applied.
    pub fn exists(&self) -> bool {
        self.created.is_some()
    }

    /// The current field values without their clocks (null fields left out),
    /// e.g. for [`crate::metrics::PlainRecord`].
    pub fn values(&self) -> serde_json::Map<String, Value> {
        self.fields
            .iter()
            .filter(|(_, f)| !f.value.is_null())
            .map(|(k, f)| (k.clone(), f.value.clone()))
            .collect()
    }

    /// Apply one op. Unknown collections and fields are merged as `lww`
    /// registers so that merging never fails; validation rejects them earlier.
    pub fn apply(&mut self, op: &Op) -> Applied {
        let coll = schema::collection(&op.collection);
        let policy_of = |name: &str| {
            coll.and_then(|c| c.field(name))
                .map_or(Policy::Lww, |f| f.policy)
        };
        let seen = |name: &str| {
            op.base
                .as_ref()
                .map_or(Seen::Unknown, |b| Seen::Base(b.get(name).copied()))
        };
        let mut out = Applied::default();
        match op.kind {
            OpKind::Create => {
                if self.created.is_none_or(|c| op.hlc < c) {
                    self.created = Some(op.hlc);
                    out.changed = true;
                }
                if let Some((field, machine)) = coll.and_then(schema::Collection::transition_field)
                    && !op.fields.contains_key(field.name)
                {
                    let initial = Value::String(machine.initial.to_owned());
                    let w = Write {
                        value: &initial,
                        hlc: op.hlc,
                        seen: Seen::Base(None),
                        policy: field.policy,
                    };
                    self.write(field.name, &w, &mut out);
                }
            }
            OpKind::Archive => {
                if self.archived.is_none_or(|a| op.hlc < a) {
                    self.archived = Some(op.hlc);
                    out.changed = true;
                }
            }
            OpKind::Patch => {}
            OpKind::Transition => {
                if let Some(t) = &op.transition {
                    let to = Value::String(t.to.clone());
                    let w = Write {
                        value: &to,
                        hlc: op.hlc,
                        seen: seen(&t.field),
                        policy: policy_of(&t.field),
                    };
                    self.write(&t.field, &w, &mut out);
                }
            }
        }
        for (name, value) in &op.fields {
            let w = Write {
                value,
                hlc: op.hlc,
                seen: match op.kind {
                    // A create writes fields nobody can have seen.
                    OpKind::Create => Seen::Base(None),
                    _ => seen(name),
                },
                policy: policy_of(name),
            };
            self.write(name, &w, &mut out);
        }
        out
    }

    fn write(&mut self, name: &str, w: &Write<'_>, out: &mut Applied) {
        let Some(cur) = self.fields.get_mut(name) else {
            self.fields.insert(
                name.to_owned(),
                FieldState {
                    value: w.value.clone(),
                    hlc: w.hlc,
                },
            );
            out.changed = true;
            return;
        };
        if cur.hlc == w.hlc && cur.value == *w.value {
            return; // duplicate delivery
        }
        let incoming_wins = match w.hlc.cmp(&cur.hlc) {
            // Equal clocks with different values cannot come from correct
            // devices; break the tie on the value so replicas still agree.
            Ordering::Equal => tie_break(w.value, &cur.value),
            Ordering::Less => w.policy.first_writer_wins(),
            Ordering::Greater => !w.policy.first_writer_wins(),
        };
        if incoming_wins {
            let old = std::mem::replace(
                cur,
                FieldState {
                    value: w.value.clone(),
                    hlc: w.hlc,
                },
            );
            out.changed = true;
            // The displaced value lost: to an earlier write of a
            // first-writer-wins field, or to a write that had not seen it.
            let unseen = w.policy.first_writer_wins() || !w.seen.saw(old.hlc);
            if unseen && old.value != *w.value {
                out.displaced.push(FieldConflict {
                    field: name.to_owned(),
                    losing_value: old.value,
                    winning_value: w.value.clone(),
                    losing_hlc: old.hlc,
                    winning_hlc: w.hlc,
                });
            }
        } else if cur.value != *w.value {
            out.conflicts.push(FieldConflict {
                field: name.to_owned(),
                losing_value: w.value.clone(),
                winning_value: cur.value.clone(),
                losing_hlc: w.hlc,
                winning_hlc: cur.hlc,
            });
        }
    }
}

/// One field write of an op.
struct Write<'a> {
    value: &'a Value,
    hlc: Hlc,
    seen: Seen,
    policy: Policy,
}

/// Deterministic order of two values for equal clocks: by their JSON text.
fn tie_break(incoming: &Value, current: &Value) -> bool {
    let (a, b) = (incoming.to_string(), current.to_string());
    a > b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{DeviceId, OpId};
    use crate::op::StateChange;
    use serde_json::json;
    use uuid::Uuid;

    fn dev(n: u8) -> DeviceId {
        DeviceId(Uuid::from_bytes([n; 16]))
    }

    fn op(kind: OpKind, ms: u64, node: u8, fields: serde_json::Value) -> Op {
        Op {
            op_id: OpId(Uuid::from_u128(u128::from(ms) << 8 | u128::from(node))),
            device_id: dev(node),
            device_seq: 1,
            hlc: Hlc {
                millis: ms,
                counter: 0,
                node: dev(node),
            },
            schema_version: 1,
            collection: "customers".into(),
            record_id: RecordId(Uuid::from_u128(1)),
            kind,
            fields: serde_json::from_value(fields).unwrap(),
            transition: None,
            base: None,
        }
    }

    #[test]
    fn different_fields_both_survive_and_same_field_later_wins() {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), "customers");
        s.apply(&op(
            OpKind::Create,
            1,
            1,
            json!({"name": "Acme", "created_at": "2026-01-01T00:00:00.000Z"}),
        ));
        s.apply(&op(OpKind::Patch, 5, 1, json!({"phone": "1"})));
        s.apply(&op(OpKind::Patch, 4, 2, json!({"address": "Main St"})));
        assert_eq!(s.get_str("phone"), Some("1"));
        assert_eq!(s.get_str("address"), Some("Main St"));
        let later = s.apply(&op(OpKind::Patch, 9, 2, json!({"name": "Acme Ltd"})));
        assert!(later.conflicts.is_empty());
        let lost = s.apply(&op(OpKind::Patch, 7, 1, json!({"name": "ACME"})));
        assert_eq!(s.get_str("name"), Some("Acme Ltd"));
        assert_eq!(lost.conflicts.len(), 1);
        assert_eq!(lost.conflicts[0].losing_value, json!("ACME"));
        assert_eq!(lost.conflicts[0].winning_value, json!("Acme Ltd"));
    }

    #[test]
    fn write_once_keeps_the_first_write() {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), "visits");
        let mut a = op(OpKind::Patch, 5, 1, json!({"outcome": "first"}));
        a.collection = "visits".into();
        let mut b = op(OpKind::Patch, 3, 2, json!({"outcome": "earlier"}));
        b.collection = "visits".into();
        s.apply(&a);
        let r = s.apply(&b);
        assert_eq!(s.get_str("outcome"), Some("earlier"));
        assert!(r.conflicts.is_empty(), "the arriving op won");
        assert_eq!(r.displaced[0].losing_value, json!("first"));
    }

    fn based(mut op: Op, field: &str, base: Option<Hlc>) -> Op {
        let mut b = crate::op::Bases::new();
        if let Some(h) = base {
            b.insert(field.to_owned(), h);
        }
        op.base = Some(b);
        op
    }

    #[test]
    fn a_write_that_saw_the_current_value_is_sequential_and_one_that_did_not_displaces_it() {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), "customers");
        s.apply(&op(OpKind::Patch, 5, 1, json!({"phone": "1111"})));
        let first = s.fields["phone"].hlc;
        // Device 2 saw 1111 and changed it: sequential.
        let seq = s.apply(&based(
            op(OpKind::Patch, 6, 2, json!({"phone": "2222"})),
            "phone",
            Some(first),
        ));
        assert!(seq.changed && seq.conflicts.is_empty() && seq.displaced.is_empty());
        // Device 3 never saw the field: it wins by clock, 2222 is displaced.
        let blind = s.apply(&based(
            op(OpKind::Patch, 9, 3, json!({"phone": "3333"})),
            "phone",
            None,
        ));
        assert_eq!(s.get_str("phone"), Some("3333"));
        assert!(blind.conflicts.is_empty());
        assert_eq!(blind.displaced.len(), 1);
        assert_eq!(blind.displaced[0].losing_value, json!("2222"));
        assert_eq!(blind.displaced[0].winning_value, json!("3333"));
        // Device 4 saw 1111 only (an older value): 3333 is displaced too.
        let stale = s.apply(&based(
            op(OpKind::Patch, 12, 4, json!({"phone": "4444"})),
            "phone",
            Some(first),
        ));
        assert_eq!(stale.displaced[0].losing_value, json!("3333"));
        // An older client (no base at all) reports only its own losses.
        let old = s.apply(&op(OpKind::Patch, 20, 5, json!({"phone": "5555"})));
        assert!(old.displaced.is_empty() && old.conflicts.is_empty());
        // A losing op is reported whatever its base.
        let late = s.apply(&based(
            op(OpKind::Patch, 15, 6, json!({"phone": "6666"})),
            "phone",
            None,
        ));
        assert_eq!(late.conflicts[0].losing_value, json!("6666"));
        assert!(late.displaced.is_empty());
    }

    #[test]
    fn create_sets_initial_state_and_transitions_move_it() {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), "feedback");
        let mut c = op(OpKind::Create, 1, 1, json!({"kind": "complaint"}));
        c.collection = "feedback".into();
        s.apply(&c);
        assert_eq!(s.get_str("status"), Some("open"));
        let mut t = op(OpKind::Transition, 2, 1, json!({"resolution": "fixed"}));
        t.collection = "feedback".into();
        t.transition = Some(StateChange {
            field: "status".into(),
            from: "open".into(),
            to: "resolved".into(),
        });
        s.apply(&t);
        assert_eq!(s.get_str("status"), Some("resolved"));
        assert_eq!(s.get_str("resolution"), Some("fixed"));
    }

    #[test]
    fn archive_is_sticky_and_idempotent() {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), "customers");
        assert!(s.apply(&op(OpKind::Archive, 4, 1, json!({}))).changed);
        assert!(!s.apply(&op(OpKind::Archive, 4, 1, json!({}))).changed);
        assert_eq!(s.archived.map(|h| h.millis), Some(4));
    }
}
