//! Forgeries through raw pushes, past any client: a rep moving their own
//! training due date or rewriting their supervisor's one-on-one notes, and
//! visits that amend what is not theirs. Each is refused with a stable code
//! naming the field, nothing of it is stored, the rest of the batch goes
//! on, and `/metrics` counts the refusals by code.

use crate::helpers::{Device, TestApp, spawn_app};
use serde_json::{Value, json};
use sync_protocol::schema::Role;
use sync_protocol::wire::Change;
use sync_protocol::{OpKind, RecordId};

/// The outcome of one op as (status, code, field).
fn verdict(v: &Value) -> (&str, &str, &str) {
    (
        v["status"].as_str().unwrap_or_default(),
        v["code"].as_str().unwrap_or_default(),
        v["field"].as_str().unwrap_or_default(),
    )
}

fn outcomes(app: &TestApp, dev: &mut Device, ops: Vec<sync_protocol::Op>) -> Vec<Value> {
    app.push(dev, ops)
        .outcomes
        .iter()
        .map(|o| serde_json::to_value(&o.outcome).expect("json"))
        .collect()
}

/// The current value of `field` of record `id`, as `dev` pulls it.
fn pulled(app: &TestApp, dev: &mut Device, id: RecordId, field: &str) -> Option<Value> {
    dev.cursor = 0;
    let mut found = None;
    for c in app.pull(dev) {
        if let Change::Upsert { record, .. } = c
            && record.id == id
        {
            found = record.get(field).cloned();
        }
    }
    found
}

fn rejected_count(app: &TestApp, code: &str) -> u64 {
    let m = app.get("/metrics", None).text().expect("metrics");
    let key = format!("fieldsync_ops_rejected_total{{code=\"{code}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

struct Team {
    app: TestApp,
    sup: Device,
    rep: Device,
}

fn team() -> Team {
    let app = spawn_app();
    app.create_team("north");
    let sup = app.user_device("sup", Role::Supervisor, Some("north"));
    let rep = app.user_device("ann", Role::Rep, Some("north"));
    Team { app, sup, rep }
}

#[test]
fn a_rep_cannot_move_their_own_training_due_date() {
    let Team {
        app,
        mut sup,
        mut rep,
    } = team();
    let mut hq = app.user_device("hq", Role::Hq, None);
    let (course, op) = hq.create(
        "courses",
        json!({"title": "Product basics", "kind": "product", "hours": 2}),
    );
    assert_eq!(verdict(&app.push_one(&mut hq, op)).0, "applied");
    let (assignment, op) = sup.create(
        "training_assignments",
        json!({"rep_id": rep.user.id, "course_id": course, "due": "2026-12-20"}),
    );
    assert_eq!(verdict(&app.push_one(&mut sup, op)).0, "applied");

    let before = rejected_count(&app, "forbidden");
    let forged = rep.op(
        "training_assignments",
        assignment,
        OpKind::Patch,
        json!({"due": "2099-12-31"}),
    );
    let completed = rep.transition(
        "training_assignments",
        assignment,
        "status",
        "assigned",
        "completed",
        json!({"completed_at": "2026-12-07T10:00:00Z", "score": 90}),
    );
    let out = outcomes(&app, &mut rep, vec![forged, completed]);
    assert_eq!(
        verdict(&out[0]),
        ("rejected", "forbidden", "due"),
        "{}",
        out[0]
    );
    assert!(
        out[0]["message"]
            .as_str()
            .unwrap()
            .contains("supervisor (team)"),
        "the refusal says who writes it: {}",
        out[0]
    );
    assert_eq!(
        verdict(&out[1]).0,
        "applied",
        "the rest of the batch goes on"
    );
    assert_eq!(rejected_count(&app, "forbidden"), before + 1);
    assert_eq!(
        pulled(&app, &mut sup, assignment, "due"),
        Some(json!("2026-12-20"))
    );
    assert_eq!(
        pulled(&app, &mut sup, assignment, "status"),
        Some(json!("completed"))
    );

    // The supervisor, who assigned it, may move it.
    let moved = sup.op(
        "training_assignments",
        assignment,
        OpKind::Patch,
        json!({"due": "2027-01-15"}),
    );
    assert_eq!(verdict(&app.push_one(&mut sup, moved)).0, "applied");
}

#[test]
fn a_rep_cannot_rewrite_their_supervisors_one_on_one_notes() {
    let Team {
        app,
        mut sup,
        mut rep,
    } = team();
    let (meeting, op) = sup.create(
        "one_on_ones",
        json!({"rep_id": rep.user.id, "held_at": "2026-12-01T10:00:00Z", "notes": "Coverage is low in the east"}),
    );
    assert_eq!(verdict(&app.push_one(&mut sup, op)).0, "applied");
    for (field, value) in [
        ("notes", json!("Great month, no concerns")),
        ("actions", json!(["Supervisor approves a bonus"])),
    ] {
        let forged = rep.op(
            "one_on_ones",
            meeting,
            OpKind::Patch,
            json!({ field: value }),
        );
        let out = app.push_one(&mut rep, forged);
        assert_eq!(verdict(&out), ("rejected", "forbidden", field), "{out}");
    }
    // Acknowledging is the rep's to do, and with it no note may ride along.
    let sneaky = rep.transition(
        "one_on_ones",
        meeting,
        "status",
        "held",
        "acknowledged",
        json!({"notes": "Agreed: no concerns"}),
    );
    let out = app.push_one(&mut rep, sneaky);
    assert_eq!(verdict(&out), ("rejected", "forbidden", "notes"), "{out}");
    let ack = rep.transition(
        "one_on_ones",
        meeting,
        "status",
        "held",
        "acknowledged",
        json!({}),
    );
    assert_eq!(verdict(&app.push_one(&mut rep, ack)).0, "applied");
    assert_eq!(
        pulled(&app, &mut sup, meeting, "notes"),
        Some(json!("Coverage is low in the east"))
    );
}

#[test]
fn a_visit_may_amend_only_a_visit_its_author_may_change() {
    let app = spawn_app();
    app.create_team("north");
    app.create_team("south");
    let mut ann = app.user_device("ann", Role::Rep, Some("north"));
    let mut sam = app.user_device("sam", Role::Rep, Some("south"));
    let hq = app.user_device("hq", Role::Hq, None);
    let customer = |dev: &mut Device, app: &TestApp| {
        let (id, op) = dev.create(
            "customers",
            json!({"name": "Acme", "created_at": "2026-11-02T08:00:00Z"}),
        );
        assert_eq!(verdict(&app.push_one(dev, op)).0, "applied");
        id
    };
    let visit = |dev: &mut Device, app: &TestApp, customer: RecordId, amends: Option<RecordId>| {
        let mut f = json!({"customer_id": customer, "started_at": "2026-11-03T09:00:00Z", "no_location_reason": "indoors"});
        if let Some(a) = amends {
            f["amends"] = json!(a);
            f["amend_reason"] = json!("wrong customer");
        }
        let (_, op) = dev.create("visits", f);
        app.push_one(dev, op)
    };
    let theirs = customer(&mut sam, &app);
    let mine = customer(&mut ann, &app);
    let v = visit(&mut sam, &app, theirs, None);
    assert_eq!(verdict(&v).0, "applied");
    let sams_visit = pulled_visit(&app, &mut sam);

    let before = rejected_count(&app, "bad_reference");
    let out = visit(&mut ann, &app, mine, Some(sams_visit));
    assert_eq!(
        verdict(&out),
        ("rejected", "bad_reference", "amends"),
        "{out}"
    );
    let nowhere = RecordId::new_v7(chrono::Utc::now());
    let out = visit(&mut ann, &app, mine, Some(nowhere));
    assert_eq!(
        verdict(&out),
        ("rejected", "bad_reference", "amends"),
        "{out}"
    );
    // A reference must name a record of its own collection.
    let out = visit(&mut ann, &app, mine, Some(mine));
    assert_eq!(
        verdict(&out),
        ("rejected", "bad_reference", "amends"),
        "{out}"
    );
    assert_eq!(rejected_count(&app, "bad_reference"), before + 3);

    // HQ's visits report and scorecard still count Sam's visit.
    for (report, table) in [("visits", "by_rep"), ("scorecard", "rows")] {
        let r: Value = crate::helpers::json_of(
            app.get(
                &format!("/v1/reports/{report}?period=2026-11"),
                Some(&hq.token),
            ),
            200,
        );
        assert_eq!(visits_of(&r, table, "sam"), Some(1.0), "{r}");
    }

    // Ann may amend her own visit.
    let first = visit(&mut ann, &app, mine, None);
    assert_eq!(verdict(&first).0, "applied");
    let own = pulled_visit(&app, &mut ann);
    let out = visit(&mut ann, &app, mine, Some(own));
    assert_eq!(verdict(&out).0, "applied", "{out}");
}

/// The newest visit `dev` can see.
fn pulled_visit(app: &TestApp, dev: &mut Device) -> RecordId {
    dev.cursor = 0;
    app.pull(dev)
        .into_iter()
        .filter_map(|c| match c {
            Change::Upsert { record, .. } if record.collection == "visits" => Some(record.id),
            _ => None,
        })
        .max_by_key(ToString::to_string)
        .expect("a visit")
}

/// The `visits` cell of `rep`'s row in report table `table`.
fn visits_of(report: &Value, table: &str, rep: &str) -> Option<f64> {
    let t = report["tables"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == table)?;
    let i = t["columns"]
        .as_array()?
        .iter()
        .position(|c| c == "visits")?;
    t["rows"]
        .as_array()?
        .iter()
        .find(|r| r[0] == rep)
        .and_then(|r| r[i].as_f64())
}

#[test]
fn a_rep_cannot_forge_their_evaluation_nor_a_supervisor_create_one_about_themself() {
    let Team {
        app,
        mut sup,
        mut rep,
    } = team();
    let mut hq = app.user_device("hq", Role::Hq, None);
    let (eval, op) = sup.create(
        "evaluations",
        json!({"rep_id": rep.user.id, "period": "2026-11", "metric_score": 30.0}),
    );
    assert_eq!(verdict(&app.push_one(&mut sup, op)).0, "applied");
    let submit = sup.transition(
        "evaluations",
        eval,
        "status",
        "draft",
        "submitted",
        json!({"rating": 2, "comment": "Below target", "score": 40.0, "tier": "bronze"}),
    );
    assert_eq!(verdict(&app.push_one(&mut sup, submit)).0, "applied");
    // The rep may not score themself while acknowledging.
    let greedy = rep.transition(
        "evaluations",
        eval,
        "status",
        "submitted",
        "acknowledged",
        json!({"score": 99.0}),
    );
    assert_eq!(
        verdict(&app.push_one(&mut rep, greedy)),
        ("rejected", "forbidden", "score")
    );
    let ack = rep.transition(
        "evaluations",
        eval,
        "status",
        "submitted",
        "acknowledged",
        json!({}),
    );
    assert_eq!(verdict(&app.push_one(&mut rep, ack)).0, "applied");
    let calibrate = hq.transition(
        "evaluations",
        eval,
        "status",
        "acknowledged",
        "final",
        json!({"score": 40.0, "tier": "bronze", "calibration_reason": "Confirmed"}),
    );
    assert_eq!(verdict(&app.push_one(&mut hq, calibrate)).0, "applied");

    for (field, value) in [
        ("score", json!(99.0)),
        ("tier", json!("gold")),
        ("calibration_reason", json!("HQ regional calibration")),
        ("rep_comment", json!("I agree with 99")),
    ] {
        let forged = rep.op("evaluations", eval, OpKind::Patch, json!({ field: value }));
        let out = app.push_one(&mut rep, forged);
        assert_eq!(verdict(&out), ("rejected", "forbidden", field), "{out}");
    }
    // Nor may the rep make the final evaluation disappear.
    let gone = rep.op("evaluations", eval, OpKind::Archive, json!({}));
    assert_eq!(verdict(&app.push_one(&mut rep, gone)).1, "forbidden");
    // Not even HQ changes a final evaluation's score by a plain patch.
    let late = hq.op("evaluations", eval, OpKind::Patch, json!({"score": 70.0}));
    assert_eq!(
        verdict(&app.push_one(&mut hq, late)),
        ("rejected", "forbidden", "score")
    );
    assert_eq!(pulled(&app, &mut hq, eval, "score"), Some(json!(40.0)));

    // An evaluation is about a rep: a supervisor cannot evaluate themself.
    let (_, own) = sup.create(
        "evaluations",
        json!({"rep_id": sup.user.id, "period": "2026-11"}),
    );
    assert_eq!(
        verdict(&app.push_one(&mut sup, own)),
        ("rejected", "bad_reference", "rep_id")
    );
}
