//! Every state machine of the schema table, move by move: listed moves are
//! accepted for the roles that may make them, everything else is refused
//! with the right code.

use serde_json::{Value, json};
use sync_protocol::merge::RecordState;
use sync_protocol::schema::{self, FieldType, Role};
use sync_protocol::validate::{Author, check_against_state, validate_op};
use sync_protocol::{DeviceId, ErrorCode, Hlc, Op, OpId, OpKind, RecordId, StateChange};
use uuid::Uuid;

fn sample(ty: FieldType) -> Value {
    match ty {
        FieldType::Text(_) => json!("because"),
        FieldType::Int(lo, _) => json!(lo),
        FieldType::Number(lo, _) => json!(lo),
        FieldType::Money(_) => json!({"minor": 100, "currency": "CNY"}),
        FieldType::Timestamp => json!("2026-11-28T09:00:00.000Z"),
        FieldType::Date => json!("2026-11-28"),
        FieldType::Enum(v) => json!(v[0]),
        FieldType::LatLon => json!({"lat": 1.0, "lon": 2.0}),
        FieldType::Ref(_) => json!(Uuid::from_u128(9).to_string()),
        FieldType::Bool => json!(true),
        FieldType::List(_, _) => json!([]),
    }
}

fn state_in(coll: &str, field: &str, value: &str) -> RecordState {
    let mut s = RecordState::new(RecordId(Uuid::from_u128(1)), coll);
    let dev = DeviceId(Uuid::from_u128(5));
    let mut op = transition_op(coll, field, value, value, &[]);
    op.kind = OpKind::Create;
    op.transition = None;
    op.hlc = Hlc {
        millis: 1,
        counter: 0,
        node: dev,
    };
    s.apply(&op);
    let mut set = transition_op(coll, field, "", value, &[]);
    set.hlc = Hlc {
        millis: 2,
        counter: 0,
        node: dev,
    };
    s.apply(&set);
    s
}

fn transition_op(coll: &str, field: &str, from: &str, to: &str, requires: &[&str]) -> Op {
    let c = schema::collection(coll).unwrap();
    Op {
        op_id: OpId(Uuid::from_u128(2)),
        device_id: DeviceId(Uuid::from_u128(5)),
        device_seq: 1,
        hlc: Hlc {
            millis: 10,
            counter: 0,
            node: DeviceId(Uuid::from_u128(5)),
        },
        schema_version: 1,
        collection: coll.into(),
        record_id: RecordId(Uuid::from_u128(1)),
        kind: OpKind::Transition,
        fields: requires
            .iter()
            .map(|r| ((*r).to_owned(), sample(c.field(r).unwrap().ty)))
            .collect(),
        transition: Some(StateChange {
            field: field.into(),
            from: from.into(),
            to: to.into(),
        }),
        base: None,
    }
}

#[test]
fn every_listed_move_is_accepted_for_its_roles_and_refused_for_others() {
    let mut checked = 0;
    for c in schema::ALL {
        let Some((field, machine)) = c.transition_field() else {
            continue;
        };
        for mv in machine.moves {
            let op = transition_op(c.name, field.name, mv.from, mv.to, mv.requires);
            validate_op(&op, Author::Device)
                .unwrap_or_else(|e| panic!("{} {}->{}: {e}", c.name, mv.from, mv.to));
            let state = state_in(c.name, field.name, mv.from);
            for role in Role::ALL {
                let r = check_against_state(&op, c, Some(&state), role);
                if mv.by.contains(&role) {
                    assert!(
                        r.is_ok(),
                        "{} {}->{} by {role}: {r:?}",
                        c.name,
                        mv.from,
                        mv.to
                    );
                } else {
                    assert_eq!(
                        r.unwrap_err().code,
                        ErrorCode::Forbidden,
                        "{} {}->{} by {role}",
                        c.name,
                        mv.from,
                        mv.to
                    );
                }
            }
            // The same move from a state the record is no longer in is stale.
            let elsewhere = machine
                .states()
                .into_iter()
                .find(|s| *s != mv.from)
                .unwrap();
            let stale = state_in(c.name, field.name, elsewhere);
            let err = check_against_state(&op, c, Some(&stale), mv.by[0]).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::StaleTransition,
                "{} {}->{}",
                c.name,
                mv.from,
                mv.to
            );
            // Each required field is really required.
            for req in mv.requires {
                let mut missing = op.clone();
                missing.fields.remove(*req);
                assert_eq!(
                    validate_op(&missing, Author::Device).unwrap_err().code,
                    ErrorCode::MissingField
                );
            }
            checked += 1;
        }
        // Moves not in the table are invalid.
        for from in machine.states() {
            for to in machine.states() {
                if machine.find(from, to).is_none() {
                    let op = transition_op(c.name, field.name, from, to, &[]);
                    assert_eq!(
                        validate_op(&op, Author::Device).unwrap_err().code,
                        ErrorCode::InvalidTransition,
                        "{} {from}->{to}",
                        c.name
                    );
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} moves checked");
}

#[test]
fn feedback_resolution_is_required_and_a_closed_complaint_cannot_be_resolved_again() {
    let op = transition_op("feedback", "status", "open", "resolved", &[]);
    let err = validate_op(&op, Author::Device).unwrap_err();
    assert_eq!(
        (err.code, err.field.as_deref()),
        (ErrorCode::MissingField, Some("resolution"))
    );
    let ok = transition_op(
        "feedback",
        "status",
        "in_progress",
        "resolved",
        &["resolution"],
    );
    let closed = state_in("feedback", "status", "closed");
    let coll = schema::collection("feedback").unwrap();
    assert_eq!(
        check_against_state(&ok, coll, Some(&closed), Role::Rep)
            .unwrap_err()
            .code,
        ErrorCode::StaleTransition
    );
}

#[test]
fn only_the_rep_acknowledges_an_evaluation_and_only_managers_submit_it() {
    let coll = schema::collection("evaluations").unwrap();
    let ack = transition_op("evaluations", "status", "submitted", "acknowledged", &[]);
    let submitted = state_in("evaluations", "status", "submitted");
    assert!(check_against_state(&ack, coll, Some(&submitted), Role::Rep).is_ok());
    assert_eq!(
        check_against_state(&ack, coll, Some(&submitted), Role::Supervisor)
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    let submit = transition_op(
        "evaluations",
        "status",
        "draft",
        "submitted",
        &["rating", "comment"],
    );
    let draft = state_in("evaluations", "status", "draft");
    assert!(check_against_state(&submit, coll, Some(&draft), Role::Supervisor).is_ok());
    assert_eq!(
        check_against_state(&submit, coll, Some(&draft), Role::Rep)
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
}

#[test]
fn ops_on_missing_or_archived_records_are_refused() {
    let coll = schema::collection("feedback").unwrap();
    let op = transition_op("feedback", "status", "open", "in_progress", &[]);
    assert_eq!(
        check_against_state(&op, coll, None, Role::Rep)
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    let mut archived = state_in("feedback", "status", "open");
    archived.archived = Some(Hlc {
        millis: 3,
        counter: 0,
        node: DeviceId(Uuid::from_u128(5)),
    });
    assert_eq!(
        check_against_state(&op, coll, Some(&archived), Role::Rep)
            .unwrap_err()
            .code,
        ErrorCode::Archived
    );
}
