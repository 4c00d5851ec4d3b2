//! Concurrent edits of one field: the displaced value is a conflict
//! whichever side reaches the server first; a sequential edit is none.

use crate::helpers::{Device, TestApp, customer_fields, error_of, json_of, spawn_app, upserts};
use chrono::Utc;
use serde_json::json;
use sync_protocol::schema::Role;
use sync_protocol::wire::{
    ConflictInfo, ConflictsRequest, ConflictsResponse, Keep, MAX_SETTLEMENTS, Settlement,
};
use sync_protocol::{Bases, Hlc, Op, OpKind, RecordId};

/// A rep (ann) and her supervisor (sam), and ann's customer Acme, pulled by both.
fn team() -> (TestApp, Device, Device, RecordId) {
    let app = spawn_app();
    app.create_team("north");
    app.create_user("sam", Role::Supervisor, Some("north"), None);
    app.create_user("ann", Role::Rep, Some("north"), Some("sam"));
    let mut ann = app.login("ann", "ann-password");
    let mut sam = app.login("sam", "sam-password");
    let (id, create) = ann.create("customers", customer_fields("Acme"));
    app.push(&mut ann, vec![create]);
    app.pull(&mut ann);
    app.pull(&mut sam);
    (app, ann, sam, id)
}

/// A phone edit that saw the phone of `seen` (none when it had none),
/// stamped `ahead_ms` from now.
fn phone(dev: &mut Device, id: RecordId, value: &str, seen: Option<Hlc>, ahead_ms: u64) -> Op {
    let op = dev.op("customers", id, OpKind::Patch, json!({"phone": value}));
    let mut op = Device::at(op, Utc::now().timestamp_millis() as u64 + ahead_ms);
    op.base = Some(
        seen.map(|h| ("phone".to_owned(), h))
            .into_iter()
            .collect::<Bases>(),
    );
    op
}

fn review(app: &TestApp, dev: &Device) -> Vec<ConflictInfo> {
    json_of(app.get("/v1/admin/conflicts", Some(&dev.token)), 200)
}

fn phone_clock(app: &TestApp, dev: &mut Device, id: RecordId) -> Hlc {
    app.pull(dev);
    let all = app.pull_page(dev, 0, None, false).changes;
    upserts(&all)
        .into_iter()
        .find(|r| r.id == id)
        .expect("the customer")
        .fields["phone"]
        .hlc
}

#[test]
fn the_displaced_phone_is_a_conflict_whichever_laptop_syncs_first() {
    for ann_first in [true, false] {
        let (app, mut ann, mut sam, id) = team();
        let mine = phone(&mut ann, id, "021-1111", None, 1_000);
        let theirs = phone(&mut sam, id, "021-2222", None, 2_000);
        if ann_first {
            assert_eq!(
                crate::helpers::status(&app.push_one(&mut ann, mine)),
                "applied"
            );
            assert_eq!(
                crate::helpers::status(&app.push_one(&mut sam, theirs)),
                "applied"
            );
        } else {
            assert_eq!(
                crate::helpers::status(&app.push_one(&mut sam, theirs)),
                "applied"
            );
            let lost = app.push_one(&mut ann, mine);
            assert_eq!(crate::helpers::status(&lost), "superseded", "{lost}");
        }
        let open = review(&app, &sam);
        assert_eq!(open.len(), 1, "ann first: {ann_first}: {open:?}");
        let c = &open[0];
        assert_eq!(
            (c.collection.as_str(), c.record_id, c.field.as_str()),
            ("customers", id, "phone")
        );
        assert_eq!(
            (&c.losing_value, &c.winning_value),
            (&json!("021-1111"), &json!("021-2222"))
        );
        assert_eq!(c.loser.username.as_deref(), Some("ann"));
        assert_eq!(c.loser.device_id, Some(ann.id));
        assert_eq!(c.winner.username.as_deref(), Some("sam"));
        assert_eq!(c.winner.device_id, Some(sam.id));
        assert!(c.losing_hlc < c.winning_hlc);
        // The admin sees it too; the rep may not review.
        let admin = app.login("admin", crate::helpers::ADMIN_PASSWORD);
        assert_eq!(review(&app, &admin).len(), 1);
        assert_eq!(
            error_of(app.get("/v1/admin/conflicts", Some(&ann.token))).0,
            403
        );
        // Ann saw sam's phone and changes it again: sequential, no new conflict.
        let seen = phone_clock(&app, &mut ann, id);
        let again = phone(&mut ann, id, "021-3333", Some(seen), 3_000);
        assert_eq!(
            crate::helpers::status(&app.push_one(&mut ann, again)),
            "applied"
        );
        assert_eq!(review(&app, &sam).len(), 1);
    }
}

#[test]
fn an_op_without_base_clocks_is_judged_as_before() {
    let (app, mut ann, mut sam, id) = team();
    let first = phone(&mut ann, id, "021-1111", None, 1_000);
    app.push_one(&mut ann, first);
    // An older client's edit wins without a word, as it did.
    let mut old = phone(&mut sam, id, "021-2222", None, 2_000);
    old.base = None;
    assert_eq!(
        crate::helpers::status(&app.push_one(&mut sam, old)),
        "applied"
    );
    assert!(review(&app, &sam).is_empty());
}

#[test]
fn bad_base_clocks_are_rejected_as_invalid_ops() {
    let (app, mut ann, _, id) = team();
    let mut op = phone(&mut ann, id, "021-1111", None, 1_000);
    op.base = Some([("name".to_owned(), Hlc::zero(ann.id))].into());
    let out = app.push_one(&mut ann, op);
    assert_eq!(out["status"], "rejected", "{out}");
    assert_eq!(
        (out["code"].as_str(), out["field"].as_str()),
        (Some("invalid_op"), Some("name"))
    );
}

fn exchange(app: &TestApp, dev: &Device, settle: Vec<Settlement>) -> ConflictsResponse {
    json_of(
        app.post(
            "/v1/sync/conflicts",
            Some(&dev.token),
            &ConflictsRequest { settle },
        ),
        200,
    )
}

#[test]
fn the_loser_is_told_and_only_the_loser_settles() {
    let (app, mut ann, mut sam, id) = team();
    // Ann's laptop syncs first: her op is applied, and then displaced.
    let mine = phone(&mut ann, id, "021-1111", None, 1_000);
    app.push_one(&mut ann, mine);
    let theirs = phone(&mut sam, id, "021-2222", None, 2_000);
    app.push_one(&mut sam, theirs);

    let told = exchange(&app, &ann, vec![]);
    assert_eq!(told.settled, 0);
    assert_eq!(told.open.len(), 1, "{told:?}");
    let c = &told.open[0];
    assert_eq!(c.losing_value, json!("021-1111"));
    assert_eq!(c.winner.username.as_deref(), Some("sam"));
    assert!(exchange(&app, &sam, vec![]).open.is_empty(), "sam won");

    let theirs = |keep| Settlement {
        record_id: id,
        field: "phone".into(),
        losing_hlc: c.losing_hlc,
        keep,
    };
    // Sam cannot settle ann's conflict; a settlement naming nothing is dropped.
    assert_eq!(exchange(&app, &sam, vec![theirs(Keep::Theirs)]).settled, 0);
    assert_eq!(review(&app, &sam).len(), 1);
    let mut other = theirs(Keep::Theirs);
    other.field = "address".into();
    assert_eq!(exchange(&app, &ann, vec![other]).settled, 0);
    // Ann settles it: gone from her list and from the review; a resend
    // (a lost answer) counts it again and changes nothing.
    let done = exchange(&app, &ann, vec![theirs(Keep::Theirs)]);
    assert_eq!((done.settled, done.open.len()), (1, 0));
    assert!(review(&app, &sam).is_empty());
    assert_eq!(exchange(&app, &ann, vec![theirs(Keep::Mine)]).settled, 1);

    let too_many = ConflictsRequest {
        settle: vec![theirs(Keep::Theirs); MAX_SETTLEMENTS + 1],
    };
    let r = app.post("/v1/sync/conflicts", Some(&ann.token), &too_many);
    assert_eq!(error_of(r), (413, "payload_too_large".into()));
}

#[test]
fn a_clock_naming_another_users_device_is_refused() {
    let (app, mut ann, sam, id) = team();
    let mut op = phone(&mut ann, id, "021-1111", None, 1_000);
    op.hlc.node = sam.id;
    let out = app.push_one(&mut ann, op);
    assert_eq!(out["status"], "rejected", "{out}");
    assert_eq!(out["code"], "wrong_device", "{out}");
    // Another device of her own (ops written before a re-login) is fine.
    let tablet = app.login("ann", "ann-password");
    let mut op = phone(&mut ann, id, "021-1111", None, 1_000);
    op.hlc.node = tablet.id;
    assert_eq!(
        crate::helpers::status(&app.push_one(&mut ann, op)),
        "applied"
    );
}
