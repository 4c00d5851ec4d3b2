//! The authorization matrix, generated from the schema table: every
//! collection × role × (create, change) × relation (own, same team, other
//! team). An op is allowed iff the schema's reach for the role covers the
//! relation; otherwise it is rejected as `forbidden` or `out_of_scope`.

use crate::helpers::{Device, TestApp, spawn_app};
use serde_json::{Map, Value, json};
use sync_protocol::schema::{self, Anchor, Collection, FieldType, Policy, Relation, Role};
use sync_protocol::{Op, OpKind, RecordId, UserId};

fn sample(ty: &FieldType) -> Value {
    match *ty {
        FieldType::Text(_) => json!("x"),
        FieldType::Int(lo, hi) => json!(lo.max(0).min(hi)),
        FieldType::Number(lo, hi) => json!(lo.max(0.0).min(hi)),
        FieldType::Money(_) => json!({"minor": 100, "currency": "CNY"}),
        FieldType::Timestamp => json!("2026-11-28T09:30:00.000Z"),
        FieldType::Date => json!("2026-11-28"),
        FieldType::Enum(v) => json!(v[0]),
        FieldType::LatLon => json!({"lat": 31.23, "lon": 121.47}),
        FieldType::Ref(_) => json!(RecordId::new_v7(chrono::Utc::now())),
        FieldType::Bool => json!(true),
        FieldType::List(inner, _) => json!([sample(inner)]),
    }
}

/// Valid create fields with the anchor pointing at `subject` (or its customer).
fn create_fields(coll: &Collection, subject: UserId, customer: Option<RecordId>) -> Value {
    let mut m = Map::new();
    for f in coll
        .fields
        .iter()
        .filter(|f| f.required && !matches!(f.policy, Policy::ServerOnly | Policy::Transition(_)))
    {
        m.insert(f.name.into(), sample(&f.ty));
    }
    match coll.anchor {
        Anchor::CustomerRef(f) => {
            m.insert(f.into(), json!(customer.expect("customer")));
        }
        Anchor::User(f) | Anchor::UserOrTeam(f, _) => {
            m.insert(f.into(), json!(subject));
        }
        Anchor::Customer | Anchor::Public => {}
    }
    Value::Object(m)
}

fn change_op(dev: &mut Device, coll: &Collection, id: RecordId) -> Op {
    match coll.fields.iter().find(|f| f.policy == Policy::Lww) {
        Some(f) => dev.op(
            coll.name,
            id,
            OpKind::Patch,
            json!({ f.name: sample(&f.ty) }),
        ),
        None => dev.op(coll.name, id, OpKind::Archive, json!({})),
    }
}

struct Case {
    coll: &'static Collection,
    role: Role,
    create: bool,
    rel: Relation,
}

fn relations_for(coll: &Collection, create: bool) -> Vec<Relation> {
    match coll.anchor {
        // Public records relate to nobody; a new customer is always its creator's own.
        Anchor::Public => vec![Relation::Other],
        Anchor::Customer if create => vec![Relation::Own],
        _ => vec![Relation::Own, Relation::Team, Relation::Other],
    }
}

fn outcome_of(app: &TestApp, dev: &mut Device, op: Op) -> (String, String) {
    let v = app.push_one(dev, op);
    (
        v["status"].as_str().unwrap_or_default().to_owned(),
        v["code"].as_str().unwrap_or_default().to_owned(),
    )
}

enum Verdict {
    Pass,
    Fail(String),
    Impossible,
}

/// Run one case; `subject` is `None` when the record is about the actor.
fn run_case(
    app: &TestApp,
    case: &Case,
    actor: &mut Device,
    mut subject: Option<&mut Device>,
    admin: &mut Device,
) -> Verdict {
    let coll = case.coll;
    let subject_id = subject.as_ref().map_or(actor.user.id, |s| s.user.id);
    // A customer of the subject, for records anchored to customers.
    let needs_customer = match coll.anchor {
        Anchor::CustomerRef(_) => true,
        Anchor::Customer => !case.create,
        _ => false,
    };
    let customer = if needs_customer {
        let owner: &mut Device = match subject.as_deref_mut() {
            Some(s) => s,
            None => &mut *actor,
        };
        let (cid, op) = owner.create(
            "customers",
            json!({"name": "c", "created_at": "2026-11-28T09:00:00.000Z"}),
        );
        assert_eq!(outcome_of(app, owner, op).0, "applied");
        Some(cid)
    } else {
        None
    };
    let target = if case.create {
        None
    } else if coll.anchor == Anchor::Customer {
        customer
    } else {
        // A record to change, written by someone allowed to create it.
        let by_admin = coll.access_for(Role::Admin).create.covers(Relation::Other)
            && !matches!(coll.anchor, Anchor::CustomerRef(_));
        let author: &mut Device = if by_admin {
            admin
        } else {
            match subject {
                Some(s) => s,
                None => &mut *actor,
            }
        };
        let (id, op) = author.create(coll.name, create_fields(coll, subject_id, customer));
        let (st, code) = outcome_of(app, author, op);
        if st != "applied" {
            // Nobody may create such a record (e.g. a work report about a
            // supervisor): there is nothing to change.
            assert_eq!(code, "forbidden", "setup of {} failed", coll.name);
            return Verdict::Impossible;
        }
        Some(id)
    };
    let op = match target {
        None => {
            actor
                .create(coll.name, create_fields(coll, subject_id, customer))
                .1
        }
        Some(id) => change_op(actor, coll, id),
    };
    let access = coll.access_for(case.role);
    let allowed = if case.create {
        access.create
    } else {
        access.change
    }
    .covers(case.rel);
    let (st, code) = outcome_of(app, actor, op);
    let ok = if allowed {
        st == "applied" || st == "superseded"
    } else {
        st == "rejected" && (code == "forbidden" || code == "out_of_scope")
    };
    if ok {
        return Verdict::Pass;
    }
    Verdict::Fail(format!(
        "{} {} {:?} by {}: expected {}, got {st} {code}",
        if case.create { "create" } else { "change" },
        coll.name,
        case.rel,
        case.role,
        if allowed { "allowed" } else { "refused" }
    ))
}

#[test]
fn authorization_matrix_follows_the_schema_table() {
    let app = spawn_app();
    app.create_team("t1");
    app.create_team("t2");
    let mut actors: Vec<Device> = vec![
        app.user_device("rep1", Role::Rep, Some("t1")),
        app.user_device("sup1", Role::Supervisor, Some("t1")),
        app.user_device("hq1", Role::Hq, Some("t1")),
        app.user_device("admin1", Role::Admin, Some("t1")),
    ];
    let mut mate = app.user_device("rep2", Role::Rep, Some("t1"));
    let mut stranger = app.user_device("rep3", Role::Rep, Some("t2"));
    let mut admin = app.user_device("setup", Role::Admin, None);
    let mut checked = 0;
    let mut failures = Vec::new();
    for coll in schema::ALL {
        for actor in &mut actors {
            for create in [true, false] {
                for rel in relations_for(coll, create) {
                    let case = Case {
                        coll,
                        role: actor.user.role,
                        create,
                        rel,
                    };
                    let subject = match rel {
                        Relation::Own => None,
                        Relation::Team => Some(&mut mate),
                        Relation::Other => Some(&mut stranger),
                    };
                    match run_case(&app, &case, actor, subject, &mut admin) {
                        Verdict::Pass => checked += 1,
                        Verdict::Fail(msg) => failures.push(msg),
                        Verdict::Impossible => {}
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases wrong ({checked} right):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 200, "{checked}");
}
