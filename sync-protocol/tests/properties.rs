//! Property tests of the protocol's laws: convergence of merging, validation
//! of every field type, and JSON round trips of every wire type.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use sync_protocol::error::ErrorCode;
use sync_protocol::merge::RecordState;
use sync_protocol::schema::{self, FieldType, Policy};
use sync_protocol::validate::validate_value;
use sync_protocol::wire::{
    Change, OpOutcome, Outcome, PullRequest, PullResponse, PushRequest, PushResponse, ScopeSummary,
};
use sync_protocol::{DeviceId, FieldConflict, Hlc, Op, OpId, OpKind, RecordId, StateChange};
use uuid::Uuid;

const CONVERGENCE_CASES: u32 = 1_000;
const VALIDATION_CASES: u32 = 3_000;
const WIRE_CASES: u32 = 500;

fn device(n: u8) -> DeviceId {
    DeviceId(Uuid::from_bytes([n + 1; 16]))
}

fn record(n: u8) -> RecordId {
    RecordId(Uuid::from_u128(u128::from(n) + 1))
}

/// An op on one of two customer records or one feedback record, with a
/// clock that is unique per op (distinct counter), as real devices produce.
fn arb_op(index: u16) -> impl Strategy<Value = Op> {
    let fields = prop::collection::btree_map(
        prop::sample::select(vec!["name", "phone", "segment", "created_at"]),
        prop::sample::select(vec![json!("a"), json!("b"), json!("c"), Value::Null]),
        0..3,
    );
    (
        0u8..3,
        0u64..20,
        0u8..3,
        0u8..5,
        fields,
        prop::sample::select(vec!["open", "in_progress", "resolved", "closed"]),
        prop::option::of(prop::collection::btree_map(
            prop::sample::select(vec!["name", "phone", "segment", "status"]),
            (0u64..20, 0u16..30),
            0..3,
        )),
    )
        .prop_map(move |(node, millis, rec, kind, fields, to, base)| {
            let feedback = rec == 2;
            let kind = match kind {
                0 => OpKind::Create,
                1 | 2 => OpKind::Patch,
                3 => OpKind::Transition,
                _ => OpKind::Archive,
            };
            let mut fields: BTreeMap<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if feedback {
                fields = fields
                    .into_iter()
                    .map(|(k, v)| (if k == "name" { "text".into() } else { k }, v))
                    .collect();
            }
            if kind == OpKind::Archive {
                fields.clear();
            }
            let transition = (kind == OpKind::Transition && feedback).then(|| StateChange {
                field: "status".into(),
                from: "open".into(),
                to: to.into(),
            });
            Op {
                op_id: OpId(Uuid::from_u128(u128::from(index) + 1000)),
                device_id: device(node),
                device_seq: u64::from(index) + 1,
                hlc: Hlc {
                    millis,
                    counter: index,
                    node: device(node),
                },
                schema_version: 1,
                collection: if feedback {
                    "feedback".into()
                } else {
                    "customers".into()
                },
                record_id: record(rec),
                kind,
                fields,
                transition,
                // Base clocks never change the merged state, whatever they say.
                base: base.map(|b| {
                    b.into_iter()
                        .map(|(f, (millis, counter))| {
                            let hlc = Hlc {
                                millis,
                                counter,
                                node: device(node),
                            };
                            (f.to_owned(), hlc)
                        })
                        .collect()
                }),
            }
        })
}

fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
    (1usize..25).prop_flat_map(|n| (0..n).map(|i| arb_op(i as u16)).collect::<Vec<_>>())
}

fn replay(ops: &[Op]) -> BTreeMap<RecordId, RecordState> {
    let mut states = BTreeMap::new();
    for op in ops {
        states
            .entry(op.record_id)
            .or_insert_with(|| RecordState::new(op.record_id, &op.collection))
            .apply(op);
    }
    states
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CONVERGENCE_CASES))]

    /// Any multiset of ops, delivered to several replicas in any order and
    /// with any number of duplicates, yields identical states.
    #[test]
    fn replicas_converge_whatever_the_order_and_duplicates(
        ops in arb_ops(),
        orders in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..60), 3),
        seeds in prop::collection::vec(any::<u64>(), 3),
    ) {
        let reference = replay(&ops);
        for (extra, seed) in orders.iter().zip(seeds) {
            let mut delivery: Vec<Op> = ops.clone();
            delivery.extend(extra.iter().map(|i| ops[i.index(ops.len())].clone()));
            // Deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..delivery.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                delivery.swap(i, (s % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(&replay(&delivery), &reference);
        }
    }
}

fn all_fields() -> Vec<(&'static str, &'static schema::Field)> {
    schema::ALL
        .iter()
        .flat_map(|c| c.fields.iter().map(move |f| (c.name, f)))
        .collect()
}

fn valid_value(ty: FieldType) -> BoxedStrategy<Value> {
    match ty {
        FieldType::Text(max) => prop::collection::vec(prop::char::range('a', '龥'), 0..max.min(40))
            .prop_map(|c| json!(c.into_iter().collect::<String>()))
            .boxed(),
        FieldType::Int(lo, hi) => (lo..=hi).prop_map(|i| json!(i)).boxed(),
        FieldType::Number(lo, hi) => (lo..=hi).prop_map(|x| json!(x)).boxed(),
        FieldType::Money(positive) => (
            (if positive { 1 } else { i64::MIN / 2 })..i64::MAX / 2,
            prop::sample::select(vec!["CNY", "USD", "JPY"]),
        )
            .prop_map(|(m, c)| json!({"minor": m, "currency": c}))
            .boxed(),
        FieldType::Timestamp => (0i64..4_000_000_000_000)
            .prop_map(|ms| {
                json!(sync_protocol::time::format_ts(
                    chrono::DateTime::from_timestamp_millis(ms).unwrap()
                ))
            })
            .boxed(),
        FieldType::Date => (1i32..9999, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}")))
            .boxed(),
        FieldType::Enum(values) => prop::sample::select(values.to_vec())
            .prop_map(|v| json!(v))
            .boxed(),
        FieldType::LatLon => (-90.0f64..=90.0, -180.0f64..=180.0)
            .prop_map(|(lat, lon)| json!({"lat": lat, "lon": lon}))
            .boxed(),
        FieldType::Ref(_) => any::<u128>()
            .prop_map(|u| json!(Uuid::from_u128(u).to_string()))
            .boxed(),
        FieldType::Bool => any::<bool>().prop_map(|b| json!(b)).boxed(),
        FieldType::List(inner, max) => prop::collection::vec(valid_value(*inner), 0..=max.min(5))
            .prop_map(Value::Array)
            .boxed(),
    }
}

fn invalid_value(ty: FieldType) -> BoxedStrategy<(Value, ErrorCode)> {
    let wrong = |v: Value| Just((v, ErrorCode::WrongType));
    match ty {
        FieldType::Text(max) => prop_oneof![
            (max + 1..max + 30).prop_map(|n| (json!("x".repeat(n)), ErrorCode::TooLong)),
            wrong(json!(5)),
            wrong(json!(["a"])),
        ]
        .boxed(),
        FieldType::Int(lo, hi) => prop_oneof![
            (1i64..1000).prop_map(move |d| (json!(hi.saturating_add(d)), ErrorCode::OutOfRange)),
            (1i64..1000).prop_map(move |d| (json!(lo.saturating_sub(d)), ErrorCode::OutOfRange)),
            wrong(json!("3")),
            wrong(json!(2.5)),
        ]
        .boxed(),
        FieldType::Number(lo, hi) => prop_oneof![
            (1.0f64..1e6).prop_map(move |d| (
                json!(hi + d.max(hi.abs() * 1e-6 + 1.0)),
                ErrorCode::OutOfRange
            )),
            (1.0f64..1e6).prop_map(move |d| (
                json!(lo - d.max(lo.abs() * 1e-6 + 1.0)),
                ErrorCode::OutOfRange
            )),
            wrong(json!("1")),
        ]
        .boxed(),
        FieldType::Money(positive) => {
            let mut cases = vec![
                (json!(12.5), ErrorCode::InvalidMoney),
                (
                    json!({"minor": 1, "currency": "EURO"}),
                    ErrorCode::InvalidMoney,
                ),
                (
                    json!({"minor": 1.5, "currency": "CNY"}),
                    ErrorCode::InvalidMoney,
                ),
                (json!({"minor": 1}), ErrorCode::InvalidMoney),
            ];
            if positive {
                cases.push((
                    json!({"minor": 0, "currency": "CNY"}),
                    ErrorCode::InvalidMoney,
                ));
                cases.push((
                    json!({"minor": -100, "currency": "CNY"}),
                    ErrorCode::InvalidMoney,
                ));
            }
            prop::sample::select(cases).boxed()
        }
        FieldType::Timestamp => prop::sample::select(vec![
            json!("2026-11-28 09:00:00"),
            json!("yesterday"),
            json!(1_700_000_000),
            json!("2026-13-01T00:00:00Z"),
        ])
        .prop_map(|v| (v, ErrorCode::InvalidTimestamp))
        .boxed(),
        FieldType::Date => prop::sample::select(vec![
            json!("2026-02-30"),
            json!("2026-2-3"),
            json!("28/11/2026"),
            json!(20_261_128),
        ])
        .prop_map(|v| (v, ErrorCode::InvalidDate))
        .boxed(),
        FieldType::Enum(values) => prop_oneof![
            "[A-Z]{1,8}"
                .prop_filter("not a value", move |s| !values.contains(&s.as_str()))
                .prop_map(|s| (json!(s), ErrorCode::NotInEnum)),
            wrong(json!(1)),
        ]
        .boxed(),
        FieldType::LatLon => prop_oneof![
            (90.0001f64..1000.0).prop_map(|lat| (
                json!({"lat": lat, "lon": 0.0}),
                ErrorCode::InvalidCoordinates
            )),
            (180.0001f64..1000.0).prop_map(|lon| (
                json!({"lat": 0.0, "lon": -lon}),
                ErrorCode::InvalidCoordinates
            )),
            Just((json!({"lat": 1.0}), ErrorCode::InvalidCoordinates)),
            Just((
                json!({"lat": 1.0, "lon": 2.0, "alt": 3}),
                ErrorCode::InvalidCoordinates
            )),
            Just((json!("31.2,121.4"), ErrorCode::InvalidCoordinates)),
        ]
        .boxed(),
        FieldType::Ref(_) => prop::sample::select(vec![json!("not-a-uuid"), json!(42), json!("")])
            .prop_map(|v| (v, ErrorCode::InvalidId))
            .boxed(),
        FieldType::Bool => prop::sample::select(vec![json!("true"), json!(1), json!(null)])
            .prop_map(|v| (v, ErrorCode::WrongType))
            .boxed(),
        FieldType::List(inner, max) => prop_oneof![
            Just((json!("a"), ErrorCode::WrongType)),
            Just((Value::Array(vec![json!(null); max + 1]), ErrorCode::TooLong)),
            invalid_value(*inner).prop_map(|(v, code)| (json!([v]), code)),
        ]
        .boxed(),
    }
}

fn field_index() -> impl Strategy<Value = usize> {
    0..all_fields().len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VALIDATION_CASES))]

    /// Every generated valid value of every field of every collection is accepted.
    #[test]
    fn valid_values_are_accepted((i, v) in field_index().prop_flat_map(|i| (Just(i), valid_value(all_fields()[i].1.ty)))) {
        let (coll, f) = all_fields()[i];
        prop_assert!(validate_value(f, &v).is_ok(), "{coll}.{} rejected {v}: {:?}", f.name, validate_value(f, &v));
    }

    /// Every generated invalid value is rejected with the right code and names the field.
    #[test]
    fn invalid_values_are_rejected_with_their_code((i, (v, code)) in field_index().prop_flat_map(|i| (Just(i), invalid_value(all_fields()[i].1.ty)))) {
        let (coll, f) = all_fields()[i];
        let err = validate_value(f, &v).expect_err(&format!("{coll}.{} accepted {v}", f.name));
        prop_assert_eq!(err.code, code, "{}.{} {} -> {}", coll, f.name, v, err.message);
        prop_assert_eq!(err.field.as_deref(), Some(f.name));
    }
}

fn arb_hlc() -> impl Strategy<Value = Hlc> {
    (0u64..0xFFFF_FFFF_FFFF, any::<u16>(), any::<u128>()).prop_map(|(millis, counter, n)| Hlc {
        millis,
        counter,
        node: DeviceId(Uuid::from_u128(n)),
    })
}

fn arb_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(|i| json!(i)),
        "[a-z\\u4e00-\\u4e20 ,\"\n]{0,12}".prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b))
    ]
}

fn arb_wire_op() -> impl Strategy<Value = Op> {
    (
        arb_op(0),
        arb_hlc(),
        prop::collection::btree_map("[a-z_]{1,10}", arb_json(), 0..4),
        prop::option::of(prop::collection::btree_map("[a-z_]{1,10}", arb_hlc(), 0..3)),
    )
        .prop_map(|(mut op, hlc, fields, base)| {
            op.hlc = hlc;
            if op.kind != OpKind::Archive {
                op.fields = fields;
            }
            op.base = base;
            op
        })
}

fn arb_state() -> impl Strategy<Value = RecordState> {
    (any::<u128>(), prop::collection::vec(arb_wire_op(), 0..4)).prop_map(|(id, ops)| {
        let mut s = RecordState::new(RecordId(Uuid::from_u128(id)), "customers");
        for op in &ops {
            s.apply(op);
        }
        s.created_by = ops
            .first()
            .map(|_| sync_protocol::UserId(Uuid::from_u128(id ^ 7)));
        s
    })
}

fn arb_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Applied),
        (arb_json(), arb_json(), arb_hlc(), arb_hlc()).prop_map(|(l, w, lh, wh)| {
            Outcome::Superseded {
                conflicts: vec![FieldConflict {
                    field: "name".into(),
                    losing_value: l,
                    winning_value: w,
                    losing_hlc: lh,
                    winning_hlc: wh,
                }],
            }
        }),
        ("[a-z ]{0,20}", any::<bool>()).prop_map(|(m, f)| Outcome::Rejected {
            code: ErrorCode::OutOfScope,
            message: m,
            field: f.then(|| "customer_id".into())
        }),
        "[a-z ]{0,20}".prop_map(|message| Outcome::DeviceDiverged { message }),
    ]
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&back, v);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(WIRE_CASES))]

    /// Every wire type survives a JSON round trip unchanged.
    #[test]
    fn wire_types_round_trip_through_json(
        ops in prop::collection::vec(arb_wire_op(), 0..5),
        clock in arb_hlc(),
        outcomes in prop::collection::vec(arb_outcome(), 0..5),
        states in prop::collection::vec(arb_state(), 0..4),
        cursor in any::<u64>(), more in any::<bool>(), resend in any::<Option<u64>>(),
    ) {
        round_trip(&PushRequest { ops: ops.clone(), clock })?;
        round_trip(&PushResponse {
            deactivated: more.then(|| sync_protocol::wire::Deactivation { at: resend.map(|_| "2026-12-07T10:00:00.000Z".to_owned()) }),
            outcomes: outcomes.into_iter().enumerate().map(|(i, outcome)| OpOutcome { op_id: OpId(Uuid::from_u128(i as u128)), device_seq: i as u64 + 1, outcome }).collect(),
            acked_through: cursor / 2,
            resend_from: resend,
            server_clock: clock,
            clock_warning: resend.map(|r| sync_protocol::wire::ClockWarning { ahead_ms: r as i64 / 2, limit_ms: 300_000 }),
        })?;
        round_trip(&PullRequest { cursor, limit: resend.map(|r| r as u32), checksums: more })?;
        let mut changes: Vec<Change> = states.into_iter().enumerate().map(|(i, record)| Change::Upsert { seq: i as u64 + 1, record }).collect();
        changes.push(Change::Evict { seq: 99, customer_id: record(1) });
        round_trip(&PullResponse {
            changes,
            cursor,
            checkpoint: cursor,
            more,
            scope: more.then(|| vec![ScopeSummary { collection: "visits".into(), count: cursor, checksum: format!("{cursor:016x}") }]),
            server_clock: clock,
        })?;
        for op in &ops {
            round_trip(op)?;
        }
    }
}

#[test]
fn every_policy_name_is_documented() {
    for c in schema::ALL {
        for f in c.fields {
            assert!(
                ["fact", "write_once", "lww", "transition", "server_only"]
                    .contains(&f.policy.name())
            );
            if let Policy::Transition(m) = f.policy {
                assert!(
                    matches!(f.ty, FieldType::Enum(vals) if m.states().iter().all(|s| vals.contains(s))),
                    "{}.{}",
                    c.name,
                    f.name
                );
            }
        }
    }
}
