//! Merging ops into record state.
//!
//! Every field is an independent register ordered by hybrid logical clock:
//! `fact` and `write_once` fields keep the *first* write, every other policy
//! keeps the *last*. Because each register takes a minimum or a maximum,
//! applying the same ops in any order, with any number of duplicates, yields
//! the same state on every replica. (Admission — whether an op is allowed at
//! all, e.g. a stale transition — is decided before merging, by the server;
//! see [`crate::validate`].)

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
                    self.write(field.name, &initial, op.hlc, field.policy, &mut out);
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
                    self.write(&t.field, &to, op.hlc, policy_of(&t.field), &mut out);
                }
            }
        }
        for (name, value) in &op.fields {
            self.write(name, value, op.hlc, policy_of(name), &mut out);
        }
        out
    }

    fn write(&mut self, name: &str, value: &Value, hlc: Hlc, policy: Policy, out: &mut Applied) {
        let Some(cur) = self.fields.get_mut(name) else {
            self.fields.insert(
                name.to_owned(),
                FieldState {
                    value: value.clone(),
                    hlc,
                },
            );
            out.changed = true;
            return;
        };
        if cur.hlc == hlc && cur.value == *value {
            return; // duplicate delivery
        }
        let incoming_wins = match hlc.cmp(&cur.hlc) {
            // Equal clocks with different values cannot come from correct
            // devices; break the tie on the value so replicas still agree.
            Ordering::Equal => tie_break(value, &cur.value),
            Ordering::Less => policy.first_writer_wins(),
            Ordering::Greater => !policy.first_writer_wins(),
        };
        if incoming_wins {
            let old = std::mem::replace(
                cur,
                FieldState {
                    value: value.clone(),
                    hlc,
                },
            );
            out.changed = true;
            // A first-writer-wins field overwritten by an earlier write: the
            // displaced value is the loser.
            if policy.first_writer_wins() && old.value != *value {
                out.conflicts.push(FieldConflict {
                    field: name.to_owned(),
                    losing_value: old.value,
                    winning_value: value.clone(),
                    losing_hlc: old.hlc,
                    winning_hlc: hlc,
                });
            }
        } else if cur.value != *value {
            out.conflicts.push(FieldConflict {
                field: name.to_owned(),
                losing_value: value.clone(),
                winning_value: cur.value.clone(),
                losing_hlc: hlc,
                winning_hlc: cur.hlc,
            });
        }
    }
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
        assert_eq!(r.conflicts[0].losing_value, json!("first"));
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
