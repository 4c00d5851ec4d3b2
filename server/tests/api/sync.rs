use crate::helpers::{customer_fields, spawn_app, upserts};
use sync_protocol::integrity::{Tally, canonical_json};
use sync_protocol::schema::Role;
use sync_protocol::wire::Change;

#[test]
fn pull_pages_in_seq_order_up_to_the_checkpoint() {
    let app = spawn_app();
    let mut rep = app.user_device("ann", Role::Rep, None);
    let ops: Vec<_> = (0..7)
        .map(|i| rep.create("customers", customer_fields(&format!("C{i}"))).1)
        .collect();
    app.push(&mut rep, ops);
    let mut cursor = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = app.pull_page(&rep, cursor, Some(3), false);
        pages += 1;
        assert!(page.changes.len() <= 3);
        seen.extend(page.changes.iter().map(Change::seq));
        cursor = page.cursor;
        if !page.more {
            assert_eq!(cursor, page.checkpoint);
            break;
        }
    }
    assert!(pages >= 3);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let again = app.pull_page(&rep, cursor, None, false);
    assert!(again.changes.is_empty() && !again.more);
}

#[test]
fn reps_see_only_their_own_customers_and_checksums_match_the_records() {
    let app = spawn_app();
    let mut ann = app.user_device("ann", Role::Rep, None);
    let mut bob = app.user_device("bob", Role::Rep, None);
    let (a, op) = ann.create("customers", customer_fields("Ann's"));
    app.push(&mut ann, vec![op]);
    let (b, op) = bob.create("customers", customer_fields("Bob's"));
    app.push(&mut bob, vec![op]);
    let changes = app.pull(&mut ann);
    let recs = upserts(&changes);
    assert!(recs.iter().any(|r| r.id == a));
    assert!(!recs.iter().any(|r| r.id == b));
    let last = app.pull_page(&ann, 0, None, true);
    let scope = last.scope.expect("scope summaries");
    let mut tally = Tally::default();
    for r in upserts(&last.changes)
        .into_iter()
        .filter(|r| r.collection == "customers")
    {
        tally.add(canonical_json(r).as_bytes());
    }
    let customers = scope.iter().find(|s| s.collection == "customers").unwrap();
    assert_eq!(
        (customers.count, customers.checksum.clone()),
        (1, tally.checksum_hex())
    );
}
