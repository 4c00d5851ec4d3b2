//! Problems are decided by reviewers: applied (checked again, as the
//! reviewer's decision) or discarded with a reason; the author's device
//! learns which.

use crate::helpers::{Device, customer_fields, error_of, json_of, spawn_app, upserts};
use serde_json::json;
use sync_protocol::OpId;
use sync_protocol::schema::Role;
use sync_protocol::wire::{ProblemDecisionsResponse, ProblemInfo, Verdict};

#[test]
fn reviewers_apply_or_discard_problems_and_the_author_learns_which() {
    let app = spawn_app();
    app.create_team("north");
    app.create_team("south");
    let sue = app.user_device("sue", Role::Supervisor, Some("north"));
    let sam = app.user_device("sam", Role::Supervisor, Some("south"));
    let mut ann = app.user_device("ann", Role::Rep, Some("north"));
    let mut bob = app.user_device("bob", Role::Rep, Some("north"));
    app.user_device("carl", Role::Rep, Some("south"));
    let (acme, c1) = ann.create("customers", customer_fields("Acme"));
    let (bolt, c2) = ann.create("customers", customer_fields("Bolt"));
    app.push(&mut ann, vec![c1, c2]);
    let now = chrono::Utc::now().timestamp_millis().unsigned_abs();
    for (customer, to) in [(acme, "bob"), (bolt, "carl")] {
        let r = app.post(
            &format!("/v1/admin/customers/{customer}/assign"),
            Some(&app.admin.token),
            &json!({"to": to}),
        );
        assert_eq!(r.status().as_u16(), 200);
    }
    // Ann, not having synced, goes on working on both: three problems.
    let after = |op| Device::at(op, now + 5_000);
    let (visit, v) = ann.create(
        "visits",
        json!({"customer_id": acme, "started_at": "2026-11-28T09:30:00.000Z"}),
    );
    let (_, v2) = ann.create(
        "visits",
        json!({"customer_id": acme, "started_at": "2026-11-29T09:30:00.000Z"}),
    );
    let (_, v3) = ann.create(
        "visits",
        json!({"customer_id": bolt, "started_at": "2026-11-29T10:30:00.000Z"}),
    );
    let op_ids: Vec<OpId> = [&v, &v2, &v3].iter().map(|o| o.op_id).collect();
    app.push(&mut ann, vec![after(v), after(v2), after(v3)]);
    let list = |dev: &Device, query: &str| -> Vec<ProblemInfo> {
        json_of(
            app.get(&format!("/v1/admin/problems{query}"), Some(&dev.token)),
            200,
        )
    };
    let open = list(&sue, "");
    assert_eq!(open.len(), 3, "{open:?}");
    let id_of = |op: OpId| open.iter().find(|p| p.op.op_id == op).unwrap().id;
    let (p1, p2, p3) = (id_of(op_ids[0]), id_of(op_ids[1]), id_of(op_ids[2]));
    let apply = |dev: &Device, id: i64| {
        app.post(
            &format!("/v1/admin/problems/{id}/apply"),
            Some(&dev.token),
            &json!({}),
        )
    };
    let discard = |dev: &Device, id: i64, reason: &str| {
        app.post(
            &format!("/v1/admin/problems/{id}/discard"),
            Some(&dev.token),
            &json!({"reason": reason}),
        )
    };

    // Who may decide: not the rep, not another team's supervisor.
    assert_eq!(error_of(apply(&ann, p1)), (403, "forbidden".into()));
    assert_eq!(error_of(apply(&sam, p1)), (404, "not_found".into()));
    assert_eq!(error_of(apply(&sue, 999_999)), (404, "not_found".into()));

    // Sue applies the first visit: Acme is bob's, in her team.
    let applied: ProblemInfo = json_of(apply(&sue, p1), 200);
    let d = applied.decision.expect("decided");
    assert_eq!((d.verdict, d.by.as_str()), (Verdict::Applied, "sue"));
    let records = app.pull(&mut bob);
    let got = upserts(&records)
        .into_iter()
        .find(|r| r.id == visit)
        .expect("bob has the applied visit");
    assert_eq!(got.created_by, Some(ann.user.id), "still ann's visit");
    assert_eq!(error_of(apply(&sue, p1)), (409, "conflict".into()));

    // A discard says why.
    assert_eq!(
        error_of(discard(&sue, p2, "  ")),
        (400, "malformed_request".into())
    );
    let long = "x".repeat(501);
    assert_eq!(
        error_of(discard(&sue, p2, &long)),
        (400, "malformed_request".into())
    );
    let discarded: ProblemInfo = json_of(discard(&sue, p2, "logged twice"), 200);
    let d = discarded.decision.expect("decided");
    assert_eq!(
        (d.verdict, d.reason.as_deref()),
        (Verdict::Discarded, Some("logged twice"))
    );
    assert_eq!(error_of(apply(&sue, p2)), (409, "conflict".into()));

    // Bolt is carl's now, outside sue's team: her decision does not pass;
    // an admin's does.
    assert_eq!(error_of(apply(&sue, p3)), (403, "out_of_scope".into()));
    assert_eq!(list(&sue, "").len(), 1, "still open");
    let _: ProblemInfo = json_of(apply(&app.admin, p3), 200);
    assert!(list(&sue, "").is_empty());
    let all = list(&sue, "?all=true");
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|p| p.decision.is_some()));

    // Ann's device asks what became of its problems; nobody else learns.
    let ask = |dev: &Device| -> ProblemDecisionsResponse {
        json_of(
            app.post(
                "/v1/sync/problems",
                Some(&dev.token),
                &json!({"op_ids": op_ids}),
            ),
            200,
        )
    };
    let mine = ask(&ann);
    assert_eq!(mine.decided.len(), 3);
    let of = |op: OpId| {
        mine.decided
            .iter()
            .find(|d| d.op_id == op)
            .map(|d| (d.decision.verdict, d.decision.by.clone()))
    };
    assert_eq!(of(op_ids[0]), Some((Verdict::Applied, "sue".into())));
    assert_eq!(of(op_ids[1]), Some((Verdict::Discarded, "sue".into())));
    assert_eq!(of(op_ids[2]), Some((Verdict::Applied, "admin".into())));
    assert!(ask(&bob).decided.is_empty());
    let too_many: Vec<OpId> = (0..1001)
        .map(|_| OpId::new_v7(chrono::Utc::now()))
        .collect();
    let r = app.post(
        "/v1/sync/problems",
        Some(&ann.token),
        &json!({"op_ids": too_many}),
    );
    assert_eq!(error_of(r), (413, "payload_too_large".into()));
}
