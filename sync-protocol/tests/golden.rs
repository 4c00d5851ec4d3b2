//! Golden wire fixtures: messages of released protocol versions. These
//! files never change once released; if a test here fails, the change broke
//! old clients or servers.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sync_protocol::wire::{Change, Outcome, PullResponse, PushRequest, PushResponse};
use sync_protocol::{ErrorCode, OpKind};

fn check<T: DeserializeOwned + Serialize>(text: &str) -> T {
    let parsed: T = serde_json::from_str(text).expect("fixture parses");
    let again = serde_json::to_value(&parsed).unwrap();
    let original: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        again, original,
        "re-serialised message differs from the fixture"
    );
    parsed
}

#[test]
fn push_request_v1_is_stable() {
    let req: PushRequest = check(include_str!("fixtures/push_request.v1.json"));
    let kinds: Vec<OpKind> = req.ops.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [OpKind::Create, OpKind::Transition, OpKind::Archive]);
    assert_eq!(req.ops[1].transition.as_ref().unwrap().to, "resolved");
    assert!(
        req.ops.iter().all(|o| o.base.is_none()),
        "ops of clients before base clocks carry none"
    );
}

#[test]
fn push_request_with_base_clocks_is_stable() {
    let req: PushRequest = check(include_str!("fixtures/push_request.base.json"));
    let patch = &req.ops[0];
    let base = patch.base.as_ref().expect("base clocks");
    // The address was never seen by the device: it has no base clock.
    assert_eq!(base.keys().collect::<Vec<_>>(), ["phone"]);
    assert_eq!(base["phone"].millis, 0x0193_a1b2_c3d4);
    for op in &req.ops {
        sync_protocol::validate::validate_op(op, sync_protocol::validate::Author::Device)
            .expect("a valid op");
    }
}

#[test]
fn push_response_v1_is_stable() {
    let resp: PushResponse = check(include_str!("fixtures/push_response.v1.json"));
    assert!(matches!(
        resp.outcomes[2].outcome,
        Outcome::Rejected {
            code: ErrorCode::OutOfScope,
            ..
        }
    ));
    assert_eq!(resp.clock_warning.unwrap().ahead_ms, 3_600_000);
}

#[test]
fn push_response_with_a_divergence_is_stable() {
    let resp: PushResponse = check(include_str!("fixtures/push_response.diverged.json"));
    let statuses: Vec<&str> = resp.outcomes.iter().map(|o| o.outcome.status()).collect();
    assert_eq!(statuses, ["applied", "device_diverged", "device_diverged"]);
    assert_eq!(resp.acked_through, 45);
}

#[test]
fn pull_response_v1_is_stable() {
    let resp: PullResponse = check(include_str!("fixtures/pull_response.v1.json"));
    assert!(matches!(resp.changes[1], Change::Evict { seq: 102, .. }));
    let Change::Upsert { record, .. } = &resp.changes[0] else {
        panic!()
    };
    assert_eq!(record.get_str("name"), Some("上海贸易有限公司"));
}
