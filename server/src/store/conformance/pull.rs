//! Pulls: changes by cursor, head, limit and scope; evictions; concurrent writes.

use super::{at, rec, seqs, user};
use crate::store::{ChangeRow, RecordScope, ScopeFilter, Store, StoreError, read, write};
use sync_protocol::ownership::Reassignment;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, Hlc, RecordId, TeamId, UserId};

pub(super) fn changes_honour_cursor_head_limit_and_scope(s: &dyn Store) {
    let (ann, bob) = (
        user("ann", Role::Rep, None, None, 1),
        user("bob", Role::Rep, None, None, 2),
    );
    let team = TeamId::new_v7(at(3));
    let ids: Vec<RecordId> = (0..6).map(|i| RecordId::new_v7(at(10 + i))).collect();
    write(s, |tx| -> Result<(), StoreError> {
        tx.insert_user(&ann)?;
        tx.insert_user(&bob)?;
        tx.set_customer_owner(ids[0], ann.id)?;
        rec(
            tx,
            ids[0],
            "customers",
            RecordScope {
                customer_id: Some(ids[0]),
                ..Default::default()
            },
        ); // 1: ann's customer
        rec(
            tx,
            ids[1],
            "visits",
            RecordScope {
                customer_id: Some(ids[0]),
                ..Default::default()
            },
        ); // 2: of ann's customer
        rec(
            tx,
            ids[2],
            "courses",
            RecordScope {
                public: true,
                ..Default::default()
            },
        ); // 3: public
        rec(
            tx,
            ids[3],
            "work_reports",
            RecordScope {
                subject_user: Some(bob.id),
                ..Default::default()
            },
        ); // 4: bob's
        rec(
            tx,
            ids[4],
            "goals",
            RecordScope {
                subject_team: Some(team),
                ..Default::default()
            },
        ); // 5: team goal
        rec(
            tx,
            ids[5],
            "work_reports",
            RecordScope {
                subject_user: Some(ann.id),
                ..Default::default()
            },
        ); // 6: ann's
        Ok(())
    })
    .unwrap();
    let ann_scope = ScopeFilter {
        all: false,
        users: vec![ann.id],
        teams: vec![team],
    };
    let all = read(s, |tx| tx.changes(&ann_scope, 0, 6, 100)).unwrap();
    assert_eq!(seqs(&all), vec![1, 2, 3, 5, 6]);
    assert_eq!(
        seqs(&read(s, |tx| tx.changes(&ann_scope, 2, 6, 2)).unwrap()),
        vec![3, 5]
    );
    assert_eq!(
        seqs(&read(s, |tx| tx.changes(&ann_scope, 0, 4, 100)).unwrap()),
        vec![1, 2, 3]
    );
    let every = ScopeFilter {
        all: true,
        ..Default::default()
    };
    assert_eq!(
        seqs(&read(s, |tx| tx.changes(&every, 0, 6, 100)).unwrap()),
        vec![1, 2, 3, 4, 5, 6]
    );
    let mut n = 0;
    read(s, |tx| tx.scope_records(&ann_scope, &mut |_, _| n += 1)).unwrap();
    assert_eq!(n, 5);
    // Moving a record to a new seq moves it in the change order.
    write(s, |tx| -> Result<(), StoreError> {
        let seq = tx.next_seq()?;
        tx.set_record_seq(ids[0], seq)
    })
    .unwrap();
    assert_eq!(
        seqs(&read(s, |tx| tx.changes(&ann_scope, 0, 7, 100)).unwrap()),
        vec![2, 3, 5, 6, 7]
    );
    assert_eq!(read(s, |tx| tx.customer_unit(ids[0])).unwrap().len(), 2);
}

pub(super) fn evictions_reach_only_the_previous_owners_scope(s: &dyn Store) {
    let (ann, bob, cid) = (
        UserId::new_v7(at(1)),
        UserId::new_v7(at(2)),
        RecordId::new_v7(at(3)),
    );
    let change = Reassignment {
        hlc: Hlc {
            millis: 1_798_848_000_123,
            counter: 7,
            node: DeviceId::new_v7(at(4)),
        },
        from: ann,
        to: bob,
    };
    write(s, |tx| -> Result<(), StoreError> {
        tx.set_customer_owner(cid, ann)?;
        rec(
            tx,
            cid,
            "customers",
            RecordScope {
                customer_id: Some(cid),
                ..Default::default()
            },
        );
        tx.set_customer_owner(cid, bob)?;
        let seq = tx.next_seq()?;
        tx.add_eviction(seq, cid, &change, "x")?;
        let seq = tx.next_seq()?;
        tx.set_record_seq(cid, seq)
    })
    .unwrap();
    assert_eq!(
        read(s, |tx| tx.reassignments(cid)).unwrap(),
        vec![change],
        "a reassignment keeps its clock"
    );
    assert_eq!(
        read(s, |tx| tx.reassigned_customers()).unwrap(),
        vec![cid],
        "the customers ever reassigned"
    );
    let for_ann = read(s, |tx| {
        tx.changes(
            &ScopeFilter {
                all: false,
                users: vec![ann],
                teams: vec![],
            },
            0,
            3,
            100,
        )
    })
    .unwrap();
    assert_eq!(
        for_ann,
        vec![ChangeRow::Evict {
            seq: 2,
            customer_id: cid
        }]
    );
    let for_bob = read(s, |tx| {
        tx.changes(
            &ScopeFilter {
                all: false,
                users: vec![bob],
                teams: vec![],
            },
            0,
            3,
            100,
        )
    })
    .unwrap();
    assert_eq!(seqs(&for_bob), vec![3]);
    // A supervisor of both keeps the customer: no eviction.
    let sup = read(s, |tx| {
        tx.changes(
            &ScopeFilter {
                all: false,
                users: vec![ann, bob],
                teams: vec![],
            },
            0,
            3,
            100,
        )
    })
    .unwrap();
    assert_eq!(seqs(&sup), vec![3]);
}

/// Writers on several threads create records while a reader pulls with a
/// cursor: every page must continue exactly where the last one ended, so the
/// reader ends holding every change exactly once.
pub(super) fn a_pull_during_concurrent_writes_never_skips_a_change(s: &dyn Store) {
    const WRITERS: usize = 4;
    const EACH: usize = 60;
    let all = ScopeFilter {
        all: true,
        ..ScopeFilter::default()
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let seen = std::thread::scope(|sc| {
        for w in 0..WRITERS {
            let done = &done;
            sc.spawn(move || {
                for i in 0..EACH {
                    let id = RecordId::new_v7(at((w * EACH + i) as i64));
                    write(s, |tx| -> Result<(), StoreError> {
                        rec(tx, id, "customers", RecordScope::default());
                        Ok(())
                    })
                    .unwrap();
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let mut cursor = 0;
        let mut seen = Vec::new();
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
            let page = read(s, |tx| {
                let head = tx.head_seq()?;
                tx.changes(&all, cursor, head, 50)
            })
            .unwrap();
            for row in &page {
                assert_eq!(row.seq(), cursor + 1, "a pull skipped a change");
                cursor = row.seq();
                seen.push(cursor);
            }
            if finished && page.is_empty() {
                break seen;
            }
        }
    });
    assert_eq!(seen.len(), WRITERS * EACH);
    assert_eq!(read(s, |tx| tx.head_seq()).unwrap(), seen.len() as u64);
}
