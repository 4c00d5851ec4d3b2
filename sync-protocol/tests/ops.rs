//! Whole-op validation examples: the shape rules every store and client share.

use serde_json::{Value, json};
use sync_protocol::validate::{Author, validate_op};
use sync_protocol::{DeviceId, ErrorCode, Hlc, Op, OpId, OpKind, RecordId};
use uuid::Uuid;

fn op(collection: &str, kind: OpKind, fields: Value) -> Op {
    Op {
        op_id: OpId(Uuid::from_u128(1)),
        device_id: DeviceId(Uuid::from_u128(2)),
        device_seq: 1,
        hlc: Hlc {
            millis: 1,
            counter: 0,
            node: DeviceId(Uuid::from_u128(2)),
        },
        schema_version: 1,
        collection: collection.into(),
        record_id: RecordId(Uuid::from_u128(3)),
        kind,
        fields: serde_json::from_value(fields).unwrap(),
        transition: None,
        base: None,
    }
}

fn code(op: &Op) -> ErrorCode {
    validate_op(op, Author::Device).unwrap_err().code
}

#[test]
fn a_complete_create_is_accepted() {
    let ok = op(
        "customers",
        OpKind::Create,
        json!({"name": "Acme", "created_at": "2026-11-28T09:00:00.000Z", "location": {"lat": 31.2, "lon": 121.5}}),
    );
    assert_eq!(validate_op(&ok, Author::Device).unwrap().name, "customers");
}

#[test]
fn shape_errors_have_their_codes() {
    let base = json!({"name": "Acme", "created_at": "2026-11-28T09:00:00.000Z"});
    let mut unknown = op("customers", OpKind::Create, base.clone());
    unknown.fields.insert("colour".into(), json!("red"));
    assert_eq!(code(&unknown), ErrorCode::UnknownField);
    assert_eq!(
        code(&op(
            "customers",
            OpKind::Create,
            json!({"created_at": "2026-11-28T09:00:00.000Z"})
        )),
        ErrorCode::MissingField
    );
    assert_eq!(
        code(&op(
            "customers",
            OpKind::Create,
            json!({"name": "  ", "created_at": "2026-11-28T09:00:00.000Z"})
        )),
        ErrorCode::MissingField
    );
    let mut server = op("customers", OpKind::Create, base.clone());
    server
        .fields
        .insert("owner_id".into(), json!(Uuid::from_u128(7).to_string()));
    assert_eq!(code(&server), ErrorCode::ServerOnlyField);
    assert!(
        validate_op(&server, Author::Server).is_ok(),
        "the server may write server_only fields"
    );
    assert_eq!(
        code(&op("planets", OpKind::Create, base.clone())),
        ErrorCode::UnknownCollection
    );
    let mut future = op("customers", OpKind::Create, base);
    future.schema_version = 99;
    assert_eq!(code(&future), ErrorCode::UnsupportedSchemaVersion);
    assert_eq!(
        code(&op("customers", OpKind::Patch, json!({}))),
        ErrorCode::InvalidOp
    );
    assert_eq!(
        code(&op(
            "customers",
            OpKind::Patch,
            json!({"created_at": "2026-11-28T09:00:00.000Z"})
        )),
        ErrorCode::ImmutableField
    );
    assert_eq!(
        code(&op("customers", OpKind::Patch, json!({"name": null}))),
        ErrorCode::MissingField
    );
    assert!(
        validate_op(
            &op("customers", OpKind::Patch, json!({"phone": null})),
            Author::Device
        )
        .is_ok(),
        "optional lww fields can be cleared"
    );
    assert_eq!(
        code(&op("feedback", OpKind::Patch, json!({"status": "closed"}))),
        ErrorCode::TransitionOnlyField
    );
    assert_eq!(
        code(&op("customers", OpKind::Archive, json!({"name": "x"}))),
        ErrorCode::InvalidOp
    );
    assert_eq!(
        code(&op("customers", OpKind::Transition, json!({}))),
        ErrorCode::InvalidOp
    );
}

#[test]
fn goals_need_exactly_one_subject() {
    let both = json!({"rep_id": Uuid::from_u128(1).to_string(), "team_id": Uuid::from_u128(2).to_string(), "metric": "visits", "period": "2026-11", "target": 40});
    assert_eq!(
        code(&op("goals", OpKind::Create, both)),
        ErrorCode::MissingField
    );
    let one = json!({"rep_id": Uuid::from_u128(1).to_string(), "metric": "visits", "period": "2026-11", "target": 40});
    assert!(validate_op(&op("goals", OpKind::Create, one), Author::Device).is_ok());
}

#[test]
fn bad_values_in_a_create_carry_the_field() {
    let err = validate_op(
        &op("feedback", OpKind::Create, json!({"customer_id": Uuid::from_u128(1).to_string(), "kind": "survey", "csat": 7, "text": "ok", "opened_at": "2026-11-28T09:00:00.000Z"})),
        Author::Device,
    )
    .unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref()),
        (ErrorCode::OutOfRange, Some("csat"))
    );
    let sale = json!({"customer_id": Uuid::from_u128(1).to_string(), "amount": {"minor": -5, "currency": "CNY"}, "product": "5G plan", "sold_at": "2026-11-28T09:00:00.000Z"});
    assert_eq!(
        code(&op("sales", OpKind::Create, sale)),
        ErrorCode::InvalidMoney
    );
}

#[test]
fn base_clocks_name_written_fields_and_are_older_than_the_op() {
    let clock = |millis| Hlc {
        millis,
        counter: 0,
        node: DeviceId(Uuid::from_u128(9)),
    };
    let mut patch = op("customers", OpKind::Patch, json!({"phone": "021-1111"}));
    patch.hlc = clock(10);
    patch.base = Some([("phone".to_owned(), clock(5))].into());
    assert!(validate_op(&patch, Author::Device).is_ok());
    patch.base = Some([].into());
    assert!(validate_op(&patch, Author::Device).is_ok(), "saw none");

    let mut other = patch.clone();
    other.base = Some([("name".to_owned(), clock(5))].into());
    let e = validate_op(&other, Author::Device).unwrap_err();
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidOp, Some("name"))
    );

    let mut future = patch.clone();
    future.base = Some([("phone".to_owned(), clock(10))].into());
    assert_eq!(code(&future), ErrorCode::InvalidOp, "not older than the op");

    let mut create = op(
        "customers",
        OpKind::Create,
        json!({"name": "Acme", "created_at": "2026-11-28T09:00:00.000Z"}),
    );
    create.hlc = clock(10);
    create.base = Some([("name".to_owned(), clock(5))].into());
    assert_eq!(code(&create), ErrorCode::InvalidOp);
}
