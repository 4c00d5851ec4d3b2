//! Writes: change numbers, rollback, stored ops and outcomes, problems, check-ins.

use super::{at, check_in, rec, seqs, user};
use crate::store::{
    CheckIn, ConflictFilter, ConflictRow, DecisionRow, OpRow, ProblemRow, RecordScope, ScopeFilter,
    Side, Store, StoreError, read, write,
};
use sync_protocol::schema::Role;
use sync_protocol::wire::Verdict;
use sync_protocol::{DeviceId, OpId, RecordId, UserId};

pub(super) fn change_numbers_are_gap_free_and_shared(s: &dyn Store) {
    let got: Vec<u64> = write(s, |tx| -> Result<_, StoreError> {
        Ok(vec![tx.next_seq()?, tx.next_seq()?])
    })
    .unwrap();
    assert_eq!(got, vec![1, 2]);
    let third = write(s, |tx| tx.next_seq()).unwrap();
    assert_eq!(third, 3);
    assert_eq!(read(s, |tx| tx.head_seq()).unwrap(), 3);
}

pub(super) fn a_failed_write_leaves_nothing_behind(s: &dyn Store) {
    let res: Result<(), StoreError> = write(s, |tx| {
        tx.next_seq()?;
        tx.insert_user(&user("ann", Role::Rep, None, None, 1))?;
        Err(StoreError::Corrupt("boom".into()))
    });
    assert!(res.is_err());
    assert_eq!(read(s, |tx| tx.head_seq()).unwrap(), 0);
    assert!(read(s, |tx| tx.user_by_name("ann")).unwrap().is_none());
}

pub(super) fn stored_ops_replay_byte_for_byte(s: &dyn Store) {
    let row = OpRow {
        device_id: DeviceId::new_v7(at(1)),
        device_seq: 1,
        op_id: OpId::new_v7(at(1)),
        user_id: UserId::new_v7(at(1)),
        op: "{\"a\":1}".into(),
        outcome: "{\"status\":\"applied\"}".into(),
        at: "2027-01-01T00:00:00.000Z".into(),
    };
    write(s, |tx| tx.add_op(&row)).unwrap();
    assert_eq!(
        read(s, |tx| tx.op(row.device_id, 1)).unwrap(),
        Some(row.clone())
    );
    assert!(
        write(s, |tx| tx.add_op(&row)).is_err(),
        "(device, seq) is unique"
    );
}

pub(super) fn ops_are_found_by_id_among_their_users_ops(s: &dyn Store) {
    let (ann, bob) = (UserId::new_v7(at(1)), UserId::new_v7(at(2)));
    let (old, new) = (DeviceId::new_v7(at(1)), DeviceId::new_v7(at(2)));
    let (x, y, z) = (
        OpId::new_v7(at(1)),
        OpId::new_v7(at(2)),
        OpId::new_v7(at(3)),
    );
    let row = |device, device_seq, op_id, user_id| OpRow {
        device_id: device,
        device_seq,
        op_id,
        user_id,
        op: format!("{{\"seq\":{device_seq}}}"),
        outcome: "{\"status\":\"applied\"}".into(),
        at: "2027-01-01T00:00:00.000Z".into(),
    };
    // x was sent by the old device, and again by the new one under its own
    // number; y is another user's.
    let rows = [
        row(old, 1, x, ann),
        row(new, 1, x, ann),
        row(old, 2, y, bob),
        row(old, 3, z, ann),
    ];
    write(s, |tx| -> Result<(), StoreError> {
        for r in &rows {
            tx.add_op(r)?;
        }
        Ok(())
    })
    .unwrap();
    let mut found = read(s, |tx| tx.ops_with_ids(ann, &[x, y])).unwrap();
    found.sort_by_key(|r| r.device_id);
    assert_eq!(found, vec![rows[0].clone(), rows[1].clone()]);
    assert!(read(s, |tx| tx.ops_with_ids(ann, &[])).unwrap().is_empty());
    assert_eq!(
        read(s, |tx| tx.ops_with_ids(bob, &[y, z])).unwrap(),
        vec![rows[2].clone()]
    );
}

pub(super) fn problems_filter_by_user_newest_first(s: &dyn Store) {
    let (a, b) = (UserId::new_v7(at(1)), UserId::new_v7(at(2)));
    let ops = [
        OpId::new_v7(at(7)),
        OpId::new_v7(at(8)),
        OpId::new_v7(at(9)),
    ];
    let p = |u, i: usize| ProblemRow {
        id: 0,
        user_id: u,
        device_id: DeviceId::new_v7(at(1)),
        op: "{}".into(),
        code: "forbidden".into(),
        message: "m".into(),
        field: None,
        created_at: "x".into(),
        op_id: ops[i],
        decision: None,
    };
    let ids: Vec<i64> = write(s, |tx| -> Result<_, StoreError> {
        Ok(vec![
            tx.add_problem(&p(a, 0))?,
            tx.add_problem(&p(b, 1))?,
            tx.add_problem(&p(a, 2))?,
        ])
    })
    .unwrap();
    let mine = read(s, |tx| tx.problems(Some(&[a]), false)).unwrap();
    assert_eq!(
        mine.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    assert_eq!(read(s, |tx| tx.problems(None, false)).unwrap().len(), 3);
    assert!(
        read(s, |tx| tx.problems(Some(&[]), false))
            .unwrap()
            .is_empty()
    );

    // A decision is recorded once, and read back by number and by op.
    let decision = DecisionRow {
        verdict: Verdict::Discarded,
        by: b,
        at: "y".into(),
        reason: Some("a duplicate".into()),
    };
    let first = write(s, |tx| tx.decide_problem(ids[0], &decision)).unwrap();
    let again = write(s, |tx| {
        tx.decide_problem(
            ids[0],
            &DecisionRow {
                verdict: Verdict::Applied,
                ..decision.clone()
            },
        )
    })
    .unwrap();
    assert_eq!((first, again), (true, false));
    let got = read(s, |tx| tx.problem(ids[0])).unwrap().expect("problem");
    assert_eq!((got.op_id, got.decision), (ops[0], Some(decision.clone())));
    assert_eq!(read(s, |tx| tx.problem(-1)).unwrap(), None);
    let open = read(s, |tx| tx.problems(Some(&[a]), true)).unwrap();
    assert_eq!(open.iter().map(|p| p.id).collect::<Vec<_>>(), vec![ids[2]]);
    let decided = read(s, |tx| tx.decided_problems(a, &ops)).unwrap();
    assert_eq!(
        decided.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert!(
        read(s, |tx| tx.decided_problems(b, &ops))
            .unwrap()
            .is_empty()
    );
    assert!(
        read(s, |tx| tx.decided_problems(a, &[]))
            .unwrap()
            .is_empty()
    );
}

pub(super) fn open_conflicts_filter_by_side_newest_first(s: &dyn Store) {
    let (a, b, c) = (
        UserId::new_v7(at(1)),
        UserId::new_v7(at(2)),
        UserId::new_v7(at(3)),
    );
    let laptop = DeviceId::new_v7(at(4));
    let side = |u: Option<UserId>| Side {
        user: u,
        device: u.map(|_| laptop),
    };
    let conflict = |loser: UserId, winner: Option<UserId>, settled: bool| ConflictRow {
        id: 0,
        record_id: RecordId::new_v7(at(5)),
        collection: "customers".into(),
        op_id: OpId::new_v7(at(6)),
        user_id: loser,
        field: "phone".into(),
        losing_value: "\"021-1111\"".into(),
        winning_value: "\"021-2222\"".into(),
        losing_hlc: "h1".into(),
        winning_hlc: "h2".into(),
        created_at: "2027-01-01T00:00:00.000Z".into(),
        loser: side(Some(loser)),
        winner: side(winner),
        resolved_at: settled.then(|| "2027-01-02T00:00:00.000Z".into()),
        resolution: settled.then(|| "theirs".into()),
    };
    write(s, |tx| -> Result<(), StoreError> {
        tx.add_conflict(&conflict(a, Some(b), false))?;
        tx.add_conflict(&conflict(b, None, false))?;
        tx.add_conflict(&conflict(c, Some(a), false))?;
        tx.add_conflict(&conflict(a, Some(c), true))
    })
    .unwrap();
    let (only_a, nobody) = ([a], []);
    let losers = |f| -> Vec<Option<UserId>> {
        read(s, |tx| tx.open_conflicts(f, 10))
            .unwrap()
            .iter()
            .map(|c| c.loser.user)
            .collect()
    };
    assert_eq!(losers(ConflictFilter::All), [Some(c), Some(b), Some(a)]);
    assert_eq!(
        losers(ConflictFilter::Involving(&only_a)),
        [Some(c), Some(a)]
    );
    assert_eq!(losers(ConflictFilter::LostBy(b)), [Some(b)]);
    assert!(losers(ConflictFilter::Involving(&nobody)).is_empty());
    let all = read(s, |tx| tx.open_conflicts(ConflictFilter::All, 2)).unwrap();
    assert_eq!(all.len(), 2, "at most the limit");
    assert!(all[0].id > all[1].id);
    assert_eq!(all[1].winner, side(None));
    assert_eq!(all[0].winner, side(Some(a)));
}

pub(super) fn previous_check_in_is_the_latest_earlier_one(s: &dyn Store) {
    let u = UserId::new_v7(at(1));
    let ci = |n: i64, t: i64| check_in(u, n, t);
    let (a, b, c) = (ci(1, 1_000), ci(2, 2_000), ci(3, 3_000));
    write(s, |tx| -> Result<(), StoreError> {
        tx.put_check_in(&a)?;
        tx.put_check_in(&b)?;
        tx.put_check_in(&c)
    })
    .unwrap();
    assert_eq!(
        read(s, |tx| tx.previous_check_in(u, 2_500, c.visit_id)).unwrap(),
        Some(b)
    );
    assert_eq!(
        read(s, |tx| tx.previous_check_in(u, 2_000, b.visit_id)).unwrap(),
        Some(a)
    );
    assert_eq!(
        read(s, |tx| tx.previous_check_in(u, 1_000, a.visit_id)).unwrap(),
        None
    );
}

/// What a push reads after it wrote, inside the same transaction (a store
/// may keep writes behind and answer from them), with and without the
/// prefetch hints, and what the next transaction sees.
pub(super) fn a_write_transaction_reads_its_own_writes(s: &dyn Store) {
    let u = UserId::new_v7(at(1));
    let other = UserId::new_v7(at(2));
    let ci = |n: i64, t: i64| check_in(u, n, t);
    let (stored, customer, missing) = (
        RecordId::new_v7(at(10)),
        RecordId::new_v7(at(11)),
        RecordId::new_v7(at(12)),
    );
    let early = ci(20, 1_000);
    write(s, |tx| -> Result<(), StoreError> {
        rec(tx, stored, "customers", RecordScope::default());
        tx.set_customer_owner(stored, other)?;
        tx.put_check_in(&early)
    })
    .unwrap();
    let (late, moved) = (ci(21, 3_000), ci(22, 2_000));
    for hinted in [false, true] {
        let seen = write(s, |tx| -> Result<_, StoreError> {
            if hinted {
                tx.prefetch_records(&[stored, customer, missing])?;
                tx.prefetch_customer_owners(&[stored, customer, missing])?;
                tx.prefetch_previous_check_ins(
                    u,
                    &[(2_500, missing), (5_000, missing), (1_500, early.visit_id)],
                )?;
            }
            let before = tx.record(stored)?.map(|r| r.seq);
            // Owners as the previous transaction left them (the first
            // pass hands the customer over), neither with a user row.
            let owner = if hinted { u } else { other };
            assert_eq!(tx.customer_owner(stored)?, Some(owner), "{hinted}");
            assert_eq!(tx.customer_owner(missing)?, None, "{hinted}");
            assert_eq!(tx.user(owner)?, None, "{hinted}");
            let head = tx.head_seq()?;
            // Overwrite one record twice and create another.
            rec(tx, stored, "customers", RecordScope::default());
            let second = rec(tx, stored, "customers", RecordScope::default());
            let created = rec(tx, customer, "customers", RecordScope::default());
            tx.set_customer_owner(customer, u)?;
            tx.set_customer_owner(stored, u)?;
            tx.put_check_in(&late)?;
            let previous = (
                tx.previous_check_in(u, 2_500, missing)?,
                tx.previous_check_in(u, 5_000, missing)?,
                tx.previous_check_in(u, 5_000, late.visit_id)?,
            );
            // A check-in moved earlier in the same transaction.
            tx.put_check_in(&CheckIn {
                started_at_ms: 500,
                ..early
            })?;
            let after_move = tx.previous_check_in(u, 1_500, missing)?;
            tx.put_check_in(&early)?;
            tx.put_check_in(&moved)?;
            let now = tx.head_seq()?;
            let all = ScopeFilter {
                all: true,
                ..ScopeFilter::default()
            };
            let changes = tx.changes(&all, head, now, 100)?;
            Ok((
                before,
                head,
                tx.record(stored)?.map(|r| r.seq),
                second,
                tx.record(customer)?.map(|r| r.seq),
                created,
                tx.record(missing)?,
                (tx.customer_owner(customer)?, tx.customer_owner(stored)?),
                previous,
                after_move,
                seqs(&changes),
                tx.head_seq()?,
            ))
        })
        .unwrap();
        let (before, head, stored_seq, second, customer_seq, created, none, owners) = (
            seen.0, seen.1, seen.2, seen.3, seen.4, seen.5, seen.6, seen.7,
        );
        assert!(before.is_some_and(|b| b <= head), "{hinted}");
        assert_eq!(stored_seq, Some(second), "the latest write wins ({hinted})");
        assert_eq!(customer_seq, Some(created), "{hinted}");
        assert_eq!(none, None, "{hinted}");
        assert_eq!(owners, (Some(u), Some(u)), "{hinted}");
        let (p1, p2, p3) = seen.8;
        let expect_early = if hinted { moved } else { early };
        assert_eq!(p1, Some(expect_early), "stored one, before {hinted}");
        assert_eq!(p2, Some(late), "written in this transaction ({hinted})");
        assert_eq!(p3, Some(expect_early), "{hinted}");
        assert_eq!(seen.9.map(|c| c.started_at_ms), Some(500), "{hinted}");
        assert_eq!(seen.10, vec![second, created], "{hinted}");
        assert_eq!(seen.11, created, "{hinted}");
        // The next transaction sees what was written.
        let (rec_seq, owner, prev, head_now) = read(s, |tx| -> Result<_, StoreError> {
            Ok((
                tx.record(customer)?.map(|r| r.seq),
                tx.customer_owner(stored)?,
                tx.previous_check_in(u, 2_500, missing)?,
                tx.head_seq()?,
            ))
        })
        .unwrap();
        assert_eq!(rec_seq, Some(created), "{hinted}");
        assert_eq!(owner, Some(u), "{hinted}");
        assert_eq!(prev, Some(moved), "{hinted}");
        assert_eq!(head_now, created, "{hinted}");
    }
}
