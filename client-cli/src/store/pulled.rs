//! A pulled record as storing it needs it, read off the server's JSON
//! text on the thread that parses a page.
//!
//! Storing a record without pending ops takes its text (kept byte for
//! byte), its id and collection, the view's query columns and its newest
//! field clock. Reading those borrows the field names and values from
//! the text instead of building a [`RecordState`] with an allocation per
//! field name, value and map node, which cost more to build and to drop
//! than storing the record did. The rare record with pending ops is
//! parsed in full when it is stored ([`PulledRecord::state`]).

use super::columns::{Columns, FieldSource};
use anyhow::{Context, Result};
use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, de};
use serde_json::value::RawValue;
use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::fmt;
use sync_protocol::{Hlc, RecordId, RecordState, UserId};

/// One pulled record: the JSON text as received, and what storing it needs.
#[derive(Debug)]
pub struct PulledRecord {
    raw: Box<RawValue>,
    id: String,
    collection: String,
    exists: bool,
    newest: Option<Hlc>,
    columns: Columns,
}

impl PulledRecord {
    /// The canonical JSON text the server sent.
    pub fn json(&self) -> &str {
        self.raw.get()
    }

    /// The record id, as text.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The collection.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Whether a create op has been applied (see [`RecordState::exists`]).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The newest clock among its fields.
    pub fn newest(&self) -> Option<&Hlc> {
        self.newest.as_ref()
    }

    /// The view's query columns of the record as sent.
    pub(crate) fn columns(&self) -> &Columns {
        &self.columns
    }

    /// The record parsed in full.
    pub fn state(&self) -> Result<RecordState> {
        serde_json::from_str(self.json())
            .with_context(|| format!("the server sent a damaged record {}", self.id))
    }
}

impl<'de> Deserialize<'de> for PulledRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let state: StateRef<'_> = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        let newest = state.fields.values().map(|f| f.hlc).max();
        let (id, collection) = (state.id.to_string(), state.collection.clone().into_owned());
        let (exists, columns) = (state.created.is_some(), Columns::of(&state));
        drop(state);
        Ok(Self {
            raw,
            id,
            collection,
            exists,
            newest,
            columns,
        })
    }
}

/// [`RecordState`]'s shape, its names and values borrowed from the text
/// and its values left unparsed. As strict as [`RecordState`]: the same
/// fields, no others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateRef<'a> {
    id: RecordId,
    #[serde(borrow)]
    collection: Cow<'a, str>,
    #[serde(borrow)]
    fields: BTreeMap<Key<'a>, FieldRef<'a>>,
    #[serde(default)]
    created: Option<Hlc>,
    #[serde(default)]
    archived: Option<Hlc>,
    /// Read to refuse what a [`RecordState`] would refuse; not needed here.
    #[serde(default)]
    #[allow(dead_code)]
    created_by: Option<UserId>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldRef<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    hlc: Hlc,
}

/// A field name, borrowed unless it holds an escape.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(Cow<'a, str>);

impl Borrow<str> for Key<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl FieldSource for StateRef<'_> {
    fn id(&self) -> RecordId {
        self.id
    }

    fn collection(&self) -> &str {
        &self.collection
    }

    fn text(&self, field: &str) -> Option<Cow<'_, str>> {
        let raw = self.fields.get(field)?.value.get();
        if !raw.starts_with('"') {
            return None;
        }
        match serde_json::from_str::<&str>(raw) {
            Ok(s) => Some(Cow::Borrowed(s)),
            // Escapes: the text must be copied to be read.
            Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        }
    }

    fn is_set(&self, field: &str) -> bool {
        self.fields
            .get(field)
            .is_some_and(|f| f.value.get().trim() != "null")
    }

    fn is_archived(&self) -> bool {
        self.archived.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sync_protocol::integrity::canonical_json;
    use sync_protocol::{DeviceId, FieldState};

    fn hlc(millis: u64, counter: u16) -> Hlc {
        Hlc {
            millis,
            counter,
            node: DeviceId(uuid::Uuid::from_u128(7)),
        }
    }

    fn state(collection: &str, fields: serde_json::Value) -> RecordState {
        let mut s = RecordState::new(RecordId(uuid::Uuid::from_u128(42)), collection);
        s.created = Some(hlc(1_700_000_000_000, 0));
        let serde_json::Value::Object(map) = fields else {
            panic!("fields must be an object")
        };
        for (i, (k, v)) in map.into_iter().enumerate() {
            let at = hlc(1_700_000_000_000 + i as u64, (i * 3 % 5) as u16);
            s.fields.insert(k, FieldState { value: v, hlc: at });
        }
        s
    }

    fn pulled(s: &RecordState) -> PulledRecord {
        serde_json::from_str(&canonical_json(s)).expect("a record the server would send")
    }

    #[test]
    fn columns_read_off_the_text_are_those_of_the_parsed_state() {
        let customer = "01900000-0000-7000-8000-000000000001";
        let mut archived = state(
            "customers",
            json!({"name": "Acme \"East\" Ltd", "segment": "retail"}),
        );
        archived.archived = Some(hlc(1_700_000_000_100, 0));
        let mut never_created = state("visits", json!({"customer_id": customer}));
        never_created.created = None;
        let cases = [
            state(
                "visits",
                json!({"customer_id": customer, "started_at": "2026-12-01T09:00:00+08:00", "purpose": "review"}),
            ),
            state(
                "visits",
                json!({"customer_id": customer, "started_at": "2026-12-01T01:00:00.000Z", "ended_at": null, "amends": "01900000-0000-7000-8000-000000000009"}),
            ),
            state(
                "visits",
                json!({"customer_id": customer, "started_at": "2026-12-01T01:00:00.000Z", "ended_at": "2026-12-01T02:00:00.000Z"}),
            ),
            state(
                "feedback",
                json!({"customer_id": customer, "status": "open", "opened_at": "2026-11-30", "text": "caf\u{e9} \\ tab\t"}),
            ),
            state(
                "sales",
                json!({"customer_id": 17, "sold_at": null, "amount": {"minor": 100, "currency": "CNY"}}),
            ),
            state("users", json!({"username": "li.wei", "role": "rep"})),
            state(
                "courses",
                json!({"title": "Negotiation", "created_at": "2026-01-01T00:00:00Z"}),
            ),
            archived,
            never_created,
        ];
        for s in &cases {
            let p = pulled(s);
            assert_eq!(p.columns(), &Columns::of(s), "{}", canonical_json(s));
            assert_eq!(p.id(), s.id.to_string());
            assert_eq!(p.collection(), s.collection);
            assert_eq!(p.exists(), s.exists());
            assert_eq!(p.newest(), s.fields.values().map(|f| &f.hlc).max());
            assert_eq!(p.json(), canonical_json(s));
            assert_eq!(p.state().expect("parses in full"), *s);
        }
        assert_eq!(
            pulled(&cases[0]).columns().at.as_deref(),
            Some("2026-12-01T01:00:00.000Z")
        );
        assert!(pulled(&cases[1]).columns().open);
        assert!(!pulled(&cases[2]).columns().open);
        assert_eq!(pulled(&cases[3]).columns().status.as_deref(), Some("open"));
        assert_eq!(
            pulled(&cases[7]).columns().name.as_deref(),
            Some("Acme \"East\" Ltd")
        );
    }

    #[test]
    fn a_record_a_state_would_refuse_is_refused() {
        let good = canonical_json(&state("visits", json!({"purpose": "review"})));
        assert!(serde_json::from_str::<PulledRecord>(&good).is_ok());
        for bad in [
            good.replacen("\"collection\"", "\"kind\"", 1),
            good.replacen("\"fields\":{", "\"fields\":{\"x\":{\"value\":1},", 1),
            good.replacen(
                "\"fields\":{",
                "\"fields\":{\"x\":{\"value\":1,\"hlc\":\"no\"},",
                1,
            ),
            format!("{},\"extra\":true}}", &good[..good.len() - 1]),
            good.replacen("\"id\":\"", "\"id\":\"x", 1),
        ] {
            assert!(
                serde_json::from_str::<RecordState>(&bad).is_err(),
                "the state accepts {bad}"
            );
            assert!(
                serde_json::from_str::<PulledRecord>(&bad).is_err(),
                "the pulled record accepts {bad}"
            );
        }
    }
}
