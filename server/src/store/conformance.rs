#![allow(clippy::many_single_char_names)]
//! One list of tests that every [`Store`] must pass. Each test gets a fresh,
//! migrated, empty store. Run against SQLite below; a PostgreSQL store adds
//! one more `#[test]` calling [`run_all`] with its own factory.

use super::{
    ChangeRow, CheckIn, DeviceRow, OpRow, ProblemRow, RecordRow, RecordScope, ScopeFilter, Store,
    StoreError, TeamRow, UserRow, read, write,
};
use chrono::{TimeZone, Utc};
use sync_protocol::geo::LatLon;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, OpId, RecordId, TeamId, UserId};

type Test = fn(&dyn Store);

/// Every conformance test, by name.
pub const ALL: &[(&str, Test)] = &[
    (
        "a_user_changed_after_announced_reads_reads_back_changed",
        a_user_changed_after_announced_reads_reads_back_changed,
    ),
    (
        "change_numbers_are_gap_free_and_shared",
        change_numbers_are_gap_free_and_shared,
    ),
    (
        "a_failed_write_leaves_nothing_behind",
        a_failed_write_leaves_nothing_behind,
    ),
    (
        "usernames_and_team_names_are_unique",
        usernames_and_team_names_are_unique,
    ),
    (
        "devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration",
        devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration,
    ),
    (
        "login_failures_are_counted_per_name_and_address_within_the_window",
        login_failures_are_counted_per_name_and_address_within_the_window,
    ),
    (
        "dashboard_sessions_end_one_by_one_or_per_user_and_expire",
        dashboard_sessions_end_one_by_one_or_per_user_and_expire,
    ),
    (
        "changes_honour_cursor_head_limit_and_scope",
        changes_honour_cursor_head_limit_and_scope,
    ),
    (
        "evictions_reach_only_the_previous_owners_scope",
        evictions_reach_only_the_previous_owners_scope,
    ),
    (
        "stored_ops_replay_byte_for_byte",
        stored_ops_replay_byte_for_byte,
    ),
    (
        "problems_filter_by_user_newest_first",
        problems_filter_by_user_newest_first,
    ),
    (
        "previous_check_in_is_the_latest_earlier_one",
        previous_check_in_is_the_latest_earlier_one,
    ),
    (
        "a_write_transaction_reads_its_own_writes",
        a_write_transaction_reads_its_own_writes,
    ),
    (
        "device_bookkeeping_and_meta_read_back_in_the_same_write",
        device_bookkeeping_and_meta_read_back_in_the_same_write,
    ),
    (
        "team_members_by_team_or_supervisor",
        team_members_by_team_or_supervisor,
    ),
    (
        "a_pull_during_concurrent_writes_never_skips_a_change",
        a_pull_during_concurrent_writes_never_skips_a_change,
    ),
    (
        "report_facts_follow_puts_archives_and_reassignment",
        report_facts_follow_puts_archives_and_reassignment,
    ),
    (
        "stale_report_facts_are_derived_again",
        stale_report_facts_are_derived_again,
    ),
];

/// Run every test, each on a fresh store from `make`, and fail naming
/// every test that failed.
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    let mut failed = Vec::new();
    for (name, test) in ALL {
        let store = make();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(store.as_ref())));
        if res.is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "store conformance tests failed: {failed:?}"
    );
}

fn at(sec: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + sec, 0).single().unwrap()
}

fn user(name: &str, role: Role, team: Option<TeamId>, sup: Option<UserId>, n: i64) -> UserRow {
    UserRow {
        id: UserId::new_v7(at(n)),
        username: name.into(),
        password_hash: "x".into(),
        role,
        team_id: team,
        supervisor_id: sup,
        active: true,
        created_at: "2027-01-01T00:00:00.000Z".into(),
    }
}

fn rec(tx: &mut dyn super::WriteTx, id: RecordId, collection: &str, scope: RecordScope) -> u64 {
    let seq = tx.next_seq().unwrap();
    tx.put_record(&RecordRow {
        id,
        collection: collection.into(),
        seq,
        state: format!("{{\"id\":\"{id}\"}}"),
        scope,
    })
    .unwrap();
    seq
}

fn seqs(rows: &[ChangeRow]) -> Vec<u64> {
    rows.iter().map(ChangeRow::seq).collect()
}

fn change_numbers_are_gap_free_and_shared(s: &dyn Store) {
    let got: Vec<u64> = write(s, |tx| -> Result<_, StoreError> {
        Ok(vec![tx.next_seq()?, tx.next_seq()?])
    })
    .unwrap();
    assert_eq!(got, vec![1, 2]);
    let third = write(s, |tx| tx.next_seq()).unwrap();
    assert_eq!(third, 3);
    assert_eq!(read(s, |tx| tx.head_seq()).unwrap(), 3);
}

fn a_failed_write_leaves_nothing_behind(s: &dyn Store) {
    let res: Result<(), StoreError> = write(s, |tx| {
        tx.next_seq()?;
        tx.insert_user(&user("ann", Role::Rep, None, None, 1))?;
        Err(StoreError::Corrupt("boom".into()))
    });
    assert!(res.is_err());
    assert_eq!(read(s, |tx| tx.head_seq()).unwrap(), 0);
    assert!(read(s, |tx| tx.user_by_name("ann")).unwrap().is_none());
}

fn usernames_and_team_names_are_unique(s: &dyn Store) {
    write(s, |tx| {
        tx.insert_user(&user("ann", Role::Rep, None, None, 1))
    })
    .unwrap();
    let again = write(s, |tx| {
        tx.insert_user(&user("ann", Role::Rep, None, None, 2))
    });
    assert!(matches!(again, Err(StoreError::Taken(_))), "{again:?}");
    let t = TeamRow {
        id: TeamId::new_v7(at(1)),
        name: "north".into(),
        region: None,
        created_at: "x".into(),
    };
    write(s, |tx| tx.insert_team(&t)).unwrap();
    let t2 = TeamRow {
        id: TeamId::new_v7(at(2)),
        ..t.clone()
    };
    assert!(matches!(
        write(s, |tx| tx.insert_team(&t2)),
        Err(StoreError::Taken(_))
    ));
    assert_eq!(read(s, |tx| tx.team_by_name("north")).unwrap(), Some(t));
}

/// A fresh device of `user`, never seen, acknowledged nothing.
fn laptop(user: UserId) -> DeviceRow {
    DeviceRow {
        id: DeviceId::new_v7(at(1)),
        user_id: user,
        name: "laptop".into(),
        created_at: "2027-01-01T00:00:00.000Z".into(),
        last_seen_at: None,
        revoked_at: None,
        logged_out_at: None,
        acked_through: 0,
        clock_drift_ms: None,
    }
}

fn devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration(s: &dyn Store) {
    let u = user("ann", Role::Rep, None, None, 1);
    let d = laptop(u.id);
    write(s, |tx| {
        tx.insert_user(&u)?;
        tx.upsert_device(&d, b"hash-1")?;
        tx.set_acked_through(d.id, 7)?;
        tx.log_out_device(d.id, "2027-01-02T00:00:00.000Z")
    })
    .unwrap();
    let found = read(s, |tx| tx.device_by_token(b"hash-1"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.acked_through, found.logged_out_at.is_some()),
        (7, true)
    );
    write(s, |tx| {
        tx.upsert_device(
            &DeviceRow {
                name: "laptop2".into(),
                ..found.clone()
            },
            b"hash-2",
        )
    })
    .unwrap();
    assert!(
        read(s, |tx| tx.device_by_token(b"hash-1"))
            .unwrap()
            .is_none()
    );
    let again = read(s, |tx| tx.device_by_token(b"hash-2"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            again.acked_through,
            again.logged_out_at,
            again.name.as_str()
        ),
        (7, None, "laptop2")
    );
    write(s, |tx| tx.revoke_device(d.id, "2027-01-03T00:00:00.000Z")).unwrap();
    assert_eq!(read(s, |tx| tx.active_device_count()).unwrap(), 0);
    // A device with its user, in one look-up: in a transaction and alone.
    let separately = read(s, |tx| -> Result<_, StoreError> {
        let device = tx.device_by_token(b"hash-2")?.expect("device");
        let user = tx.user(device.user_id)?;
        Ok((device, user))
    })
    .unwrap();
    assert_eq!(separately.1.as_ref().map(|u| u.id), Some(u.id));
    assert_eq!(
        read(s, |tx| tx.device_with_user(b"hash-2")).unwrap(),
        Some(separately.clone())
    );
    assert_eq!(s.device_with_user(b"hash-2").unwrap(), Some(separately));
    assert_eq!(s.device_with_user(b"hash-unknown").unwrap(), None);
    assert_eq!(read(s, |tx| tx.device_with_user(b"hash-1")).unwrap(), None);
}

fn device_bookkeeping_and_meta_read_back_in_the_same_write(s: &dyn Store) {
    let u = user("cy", Role::Rep, None, None, 1);
    let d = laptop(u.id);
    let seen = "2027-01-05T00:00:00.000Z";
    let inside = write(s, |tx| -> Result<_, StoreError> {
        tx.insert_user(&u)?;
        tx.upsert_device(&d, b"hash-bk")?;
        tx.set_meta("k1", "one")?;
        tx.set_meta("k1", "two")?;
        tx.set_acked_through(d.id, 5)?;
        tx.set_clock_drift(d.id, -40)?;
        tx.touch_device(d.id, seen)?;
        tx.set_acked_through(d.id, 6)?;
        let metas = tx.metas(&["k1", "absent"])?;
        let row = tx.device(d.id)?.expect("device");
        Ok((metas, tx.meta("k1")?, row))
    })
    .unwrap();
    assert_eq!(inside.0, [Some("two".to_owned()), None]);
    assert_eq!(inside.1.as_deref(), Some("two"));
    let want = (6, Some(-40), Some(seen.to_owned()));
    let got = |r: &DeviceRow| (r.acked_through, r.clock_drift_ms, r.last_seen_at.clone());
    assert_eq!(got(&inside.2), want, "read back before commit");
    let after = read(s, |tx| tx.device_by_token(b"hash-bk"))
        .unwrap()
        .unwrap();
    assert_eq!(got(&after), want, "kept after commit");
    assert_eq!(
        read(s, |tx| tx.metas(&["absent", "k1"])).unwrap(),
        [None, Some("two".to_owned())]
    );
    // Bookkeeping does not undo a revocation made in the same write.
    write(s, |tx| {
        tx.touch_device(d.id, "2027-01-06T00:00:00.000Z")?;
        tx.revoke_device(d.id, "2027-01-06T00:00:00.000Z")?;
        tx.set_acked_through(d.id, 9)
    })
    .unwrap();
    let last = read(s, |tx| tx.device(d.id)).unwrap().unwrap();
    assert_eq!(
        (
            last.acked_through,
            last.revoked_at.is_some(),
            last.last_seen_at.as_deref()
        ),
        (9, true, Some("2027-01-06T00:00:00.000Z"))
    );
}

fn login_failures_are_counted_per_name_and_address_within_the_window(s: &dyn Store) {
    let ids = write(s, |tx| {
        Ok::<_, StoreError>([
            tx.add_login_failure("ann", "10.0.0.1", 100, 0)?,
            tx.add_login_failure("ann", "10.0.0.2", 200, 0)?,
            tx.add_login_failure("bob", "10.0.0.1", 300, 0)?,
        ])
    })
    .unwrap();
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
    let ann = |k: &str, at: i64| (k.to_owned(), at);
    assert_eq!(
        read(s, |tx| tx.login_failures("ann", "10.0.0.1", 0)).unwrap(),
        (vec![ann("10.0.0.1", 100), ann("10.0.0.2", 200)], 2)
    );
    assert_eq!(
        read(s, |tx| tx.login_failures("ann", "10.0.0.1", 150)).unwrap(),
        (vec![ann("10.0.0.2", 200)], 1)
    );
    // A reserved attempt whose password was right is forgotten.
    write(s, |tx| tx.forget_login_failure(ids[1])).unwrap();
    assert_eq!(
        read(s, |tx| tx.login_failures("ann", "10.0.0.2", 0)).unwrap(),
        (vec![ann("10.0.0.1", 100)], 0)
    );
}

fn dashboard_sessions_end_one_by_one_or_per_user_and_expire(s: &dyn Store) {
    let (ann, bob) = (
        user("ann", Role::Supervisor, None, None, 1),
        user("bob", Role::Supervisor, None, None, 2),
    );
    write(s, |tx| {
        tx.insert_user(&ann)?;
        tx.insert_user(&bob)?;
        tx.start_dashboard_session(b"a1", ann.id, 1_000, 0)?;
        tx.start_dashboard_session(b"a2", ann.id, 2_000, 0)?;
        tx.start_dashboard_session(b"b1", bob.id, 1_000, 0)
    })
    .unwrap();
    let live = |id: &[u8]| read(s, |tx| tx.dashboard_session(id)).unwrap();
    assert_eq!(live(b"a1"), Some((ann.id, 1_000)));
    write(s, |tx| tx.end_dashboard_session(b"a1")).unwrap();
    assert_eq!(live(b"a1"), None, "signed out");
    assert_eq!(
        live(b"a2"),
        Some((ann.id, 2_000)),
        "the other session stays"
    );
    write(s, |tx| tx.end_user_dashboard_sessions(ann.id)).unwrap();
    assert_eq!(live(b"a2"), None, "all of ann's sessions ended");
    assert_eq!(live(b"b1"), Some((bob.id, 1_000)), "bob's stays");
    // Starting a session forgets the expired ones.
    write(s, |tx| {
        tx.start_dashboard_session(b"b2", bob.id, 9_000, 1_000)
    })
    .unwrap();
    assert_eq!(live(b"b1"), None);
    assert_eq!(live(b"b2"), Some((bob.id, 9_000)));
}

fn changes_honour_cursor_head_limit_and_scope(s: &dyn Store) {
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

fn evictions_reach_only_the_previous_owners_scope(s: &dyn Store) {
    let (ann, bob, cid) = (
        UserId::new_v7(at(1)),
        UserId::new_v7(at(2)),
        RecordId::new_v7(at(3)),
    );
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
        tx.add_eviction(seq, cid, ann, bob, "x")?;
        let seq = tx.next_seq()?;
        tx.set_record_seq(cid, seq)
    })
    .unwrap();
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

fn stored_ops_replay_byte_for_byte(s: &dyn Store) {
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

fn problems_filter_by_user_newest_first(s: &dyn Store) {
    let (a, b) = (UserId::new_v7(at(1)), UserId::new_v7(at(2)));
    let p = |u| ProblemRow {
        id: 0,
        user_id: u,
        device_id: DeviceId::new_v7(at(1)),
        op: "{}".into(),
        code: "forbidden".into(),
        message: "m".into(),
        field: None,
        created_at: "x".into(),
    };
    let ids: Vec<i64> = write(s, |tx| -> Result<_, StoreError> {
        Ok(vec![
            tx.add_problem(&p(a))?,
            tx.add_problem(&p(b))?,
            tx.add_problem(&p(a))?,
        ])
    })
    .unwrap();
    let mine = read(s, |tx| tx.problems(Some(&[a]))).unwrap();
    assert_eq!(
        mine.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    assert_eq!(read(s, |tx| tx.problems(None)).unwrap().len(), 3);
    assert!(read(s, |tx| tx.problems(Some(&[]))).unwrap().is_empty());
}

/// A check-in of `user` for a visit made at `at(n)`, started at `t` ms.
fn check_in(user: UserId, n: i64, t: i64) -> CheckIn {
    CheckIn {
        visit_id: RecordId::new_v7(at(n)),
        user_id: user,
        started_at_ms: t,
        at: LatLon {
            lat: 1.0,
            lon: n as f64,
        },
    }
}

fn previous_check_in_is_the_latest_earlier_one(s: &dyn Store) {
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
fn a_write_transaction_reads_its_own_writes(s: &dyn Store) {
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

/// A customer owner's user row read with announced reads, then changed in
/// the same transaction, reads back changed.
fn a_user_changed_after_announced_reads_reads_back_changed(s: &dyn Store) {
    let owner = user("olga", Role::Rep, None, None, 1);
    let customer = RecordId::new_v7(at(10));
    write(s, |tx| -> Result<(), StoreError> {
        tx.insert_user(&owner)?;
        rec(tx, customer, "customers", RecordScope::default());
        tx.set_customer_owner(customer, owner.id)
    })
    .unwrap();
    let (before, after, hash) = write(s, |tx| -> Result<_, StoreError> {
        tx.prefetch_customer_owners(&[customer])?;
        assert_eq!(tx.customer_owner(customer)?, Some(owner.id));
        let before = tx.user(owner.id)?.map(|u| u.active);
        tx.set_user_active(owner.id, false)?;
        let after = tx.user(owner.id)?.map(|u| u.active);
        tx.set_password(owner.id, "y")?;
        Ok((before, after, tx.user(owner.id)?.map(|u| u.password_hash)))
    })
    .unwrap();
    assert_eq!((before, after), (Some(true), Some(false)));
    assert_eq!(hash.as_deref(), Some("y"));
}

fn team_members_by_team_or_supervisor(s: &dyn Store) {
    let t = TeamRow {
        id: TeamId::new_v7(at(1)),
        name: "north".into(),
        region: None,
        created_at: "x".into(),
    };
    let sup = user("sue", Role::Supervisor, Some(t.id), None, 1);
    let a = user("ann", Role::Rep, Some(t.id), None, 2);
    let b = user("bob", Role::Rep, None, Some(sup.id), 3);
    let c = user("cat", Role::Rep, None, None, 4);
    write(s, |tx| -> Result<(), StoreError> {
        tx.insert_team(&t)?;
        for u in [&sup, &a, &b, &c] {
            tx.insert_user(u)?;
        }
        Ok(())
    })
    .unwrap();
    let mut got = read(s, |tx| tx.team_members(Some(t.id), Some(sup.id))).unwrap();
    got.sort();
    let mut want = vec![sup.id, a.id, b.id];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        read(s, |tx| tx.team_members(None, None)).unwrap(),
        Vec::<UserId>::new()
    );
}

/// Writers on several threads create records while a reader pulls with a
/// cursor: every page must continue exactly where the last one ended, so the
/// reader ends holding every change exactly once.
fn a_pull_during_concurrent_writes_never_skips_a_change(s: &dyn Store) {
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

/// A canonical record state: `fields` written by one create (or patch) op,
/// archived when asked.
fn state(
    prev: Option<sync_protocol::RecordState>,
    collection: &str,
    id: RecordId,
    fields: serde_json::Value,
    archive: bool,
    n: i64,
) -> sync_protocol::RecordState {
    use sync_protocol::{Hlc, Op, OpKind, RecordState};
    let device = DeviceId(uuid::Uuid::from_u128(7));
    let mut st = prev.unwrap_or_else(|| RecordState::new(id, collection));
    let serde_json::Value::Object(fields) = fields else {
        panic!("fields must be an object")
    };
    let kind = if st.created.is_some() {
        OpKind::Patch
    } else {
        OpKind::Create
    };
    for (kind, fields) in [(kind, fields.into_iter().collect())]
        .into_iter()
        .chain(archive.then(|| (OpKind::Archive, sync_protocol::Fields::default())))
    {
        st.apply(&Op {
            op_id: OpId::new_v7(at(n)),
            device_id: device,
            device_seq: 1,
            hlc: Hlc::from_wall(at(n), device),
            schema_version: sync_protocol::version::SCHEMA_VERSION,
            collection: collection.into(),
            record_id: id,
            kind,
            fields,
            transition: None,
        });
    }
    st
}

fn put_state(s: &dyn Store, st: &sync_protocol::RecordState, customer: RecordId) {
    write(s, |tx| {
        let seq = tx.next_seq()?;
        tx.put_record(&RecordRow {
            id: st.id,
            collection: st.collection.clone(),
            seq,
            state: sync_protocol::integrity::canonical_json(st),
            scope: RecordScope {
                customer_id: Some(customer),
                ..RecordScope::default()
            },
        })
    })
    .unwrap();
}

type Facts = Vec<(RecordId, sync_protocol::metrics::RecordFact)>;

fn report_facts(s: &dyn Store, scope: &ScopeFilter) -> (Facts, Facts) {
    use super::facts::FactPart;
    read(s, |tx| {
        let (mut customers, mut facts) = (Vec::new(), Vec::new());
        tx.report_customers(scope, &mut |id, f| customers.push((id, f)))?;
        let (from, to) = (at(0).timestamp_micros(), at(3600).timestamp_micros());
        tx.report_facts(from, to, FactPart::All, &mut |id, f| facts.push((id, f)))?;
        // The two parts a report may read on two threads are, together,
        // exactly the whole (split inside the window and at its start).
        for mid in [at(150).timestamp_micros(), from] {
            let mut parts = Vec::new();
            for part in [FactPart::VisitsBefore(mid), FactPart::AllFrom(mid)] {
                tx.report_facts(from, to, part, &mut |id, f| parts.push((id, f)))?;
            }
            parts.sort_by_key(|(id, _)| *id);
            let mut whole = facts.clone();
            whole.sort_by_key(|(id, _)| *id);
            assert_eq!(parts, whole, "split at {mid}");
        }
        customers.sort_by_key(|(id, _)| *id);
        facts.sort_by_key(|(id, _)| *id);
        Ok::<_, StoreError>((customers, facts))
    })
    .unwrap()
}

/// Store customer "Acme" owned by `owner`, created at 10 s; its state.
fn put_acme(s: &dyn Store, customer: RecordId, owner: UserId) -> sync_protocol::RecordState {
    let created = sync_protocol::time::format_ts(at(10));
    let c = state(
        None,
        "customers",
        customer,
        serde_json::json!({"name": "Acme", "owner_id": owner.to_string(), "created_at": created}),
        false,
        10,
    );
    put_state(s, &c, customer);
    c
}

fn report_facts_follow_puts_archives_and_reassignment(s: &dyn Store) {
    use serde_json::json;
    use sync_protocol::metrics::RecordFact;
    let (ann, bob) = (UserId::new_v7(at(1)), UserId::new_v7(at(2)));
    let ts = |n: i64| sync_protocol::time::format_ts(at(n));
    let customer = RecordId::new_v7(at(3));
    let c0 = put_acme(s, customer, ann);
    write(s, |tx| tx.set_customer_owner(customer, ann)).unwrap();
    let visit = RecordId::new_v7(at(4));
    let v = state(
        None,
        "visits",
        visit,
        json!({"customer_id": customer.to_string(), "started_at": ts(100)}),
        false,
        100,
    );
    put_state(s, &v, customer);
    // An amendment outside the window is still read: it replaces a visit inside.
    let amendment = RecordId::new_v7(at(5));
    put_state(
        s,
        &state(
            None,
            "visits",
            amendment,
            json!({"customer_id": customer.to_string(), "started_at": ts(7200), "amends": visit.to_string()}),
            false,
            7200,
        ),
        customer,
    );
    // A visit outside the window, amending nothing, is not.
    put_state(
        s,
        &state(
            None,
            "visits",
            RecordId::new_v7(at(6)),
            json!({"customer_id": customer.to_string(), "started_at": ts(9000)}),
            false,
            9000,
        ),
        customer,
    );
    let complaint = RecordId::new_v7(at(7));
    let fb = state(
        None,
        "feedback",
        complaint,
        json!({"customer_id": customer.to_string(), "kind": "complaint", "text": "late",
               "opened_at": ts(-7200), "status": "resolved", "resolved_at": ts(200)}),
        false,
        200,
    );
    put_state(s, &fb, customer);
    let sale = RecordId::new_v7(at(8));
    put_state(
        s,
        &state(
            None,
            "sales",
            sale,
            json!({"customer_id": customer.to_string(), "amount": {"minor": 1250, "currency": "CNY"},
                   "product": "tea", "sold_at": ts(300)}),
            false,
            300,
        ),
        customer,
    );

    let all = ScopeFilter {
        all: true,
        ..ScopeFilter::default()
    };
    let (customers, facts) = report_facts(s, &all);
    assert_eq!(
        customers,
        vec![(
            customer,
            RecordFact::Customer {
                owner: Some(ann),
                created_at: Some(at(10))
            }
        )]
    );
    let ids: Vec<RecordId> = facts.iter().map(|(id, _)| *id).collect();
    let mut want = vec![visit, amendment, complaint, sale];
    want.sort();
    assert_eq!(ids, want, "the visit at 9000 s is outside the window");
    for (id, f) in &facts {
        let stored = read(s, |tx| tx.record(*id)).unwrap().unwrap();
        let row = super::facts::derive(&stored.collection, &stored.state);
        assert_eq!(
            row,
            Some((*id, super::facts::FactRow::from_fact(f))),
            "a stored fact reads back as derived"
        );
    }

    // Reassigning the customer rewrites its row only; visits follow it.
    let c1 = state(
        Some(c0),
        "customers",
        customer,
        json!({"owner_id": bob.to_string()}),
        false,
        20,
    );
    put_state(s, &c1, customer);
    write(s, |tx| tx.set_customer_owner(customer, bob)).unwrap();
    let bobs = ScopeFilter {
        users: vec![bob],
        ..ScopeFilter::default()
    };
    let anns = ScopeFilter {
        users: vec![ann],
        ..ScopeFilter::default()
    };
    let (customers, _) = report_facts(s, &bobs);
    assert!(
        matches!(customers.as_slice(), [(c, RecordFact::Customer { owner: Some(o), .. })] if *c == customer && *o == bob)
    );
    assert!(
        report_facts(s, &anns).0.is_empty(),
        "no longer in ann's scope"
    );

    // Reopening the complaint drops its resolution; archiving drops rows.
    put_state(
        s,
        &state(
            Some(fb),
            "feedback",
            complaint,
            json!({"status": "open"}),
            false,
            400,
        ),
        customer,
    );
    put_state(
        s,
        &state(Some(v), "visits", visit, json!({}), true, 500),
        customer,
    );
    let (_, facts) = report_facts(s, &all);
    let ids: Vec<RecordId> = facts.iter().map(|(id, _)| *id).collect();
    let mut want = vec![amendment, sale];
    want.sort();
    assert_eq!(
        ids, want,
        "an archived visit has no fact; an open complaint opened before the window is not read"
    );
    put_state(
        s,
        &state(Some(c1), "customers", customer, json!({}), true, 600),
        customer,
    );
    assert!(
        report_facts(s, &all).0.is_empty(),
        "an archived customer has no row"
    );
}

/// A store whose fact rows follow an older derivation (a database
/// upgraded by a migration that reshaped the tables) derives them again.
fn stale_report_facts_are_derived_again(s: &dyn Store) {
    use super::facts::{VERSION, VERSION_KEY, rebuild_if_stale};
    use serde_json::json;
    let ann = UserId::new_v7(at(1));
    let ts = |n: i64| sync_protocol::time::format_ts(at(n));
    let customer = RecordId::new_v7(at(3));
    put_acme(s, customer, ann);
    for (n, amends) in [(4, None), (5, Some(RecordId::new_v7(at(4))))] {
        let mut fields = json!({"customer_id": customer.to_string(), "started_at": ts(100 + n)});
        if let Some(a) = amends {
            fields["amends"] = json!(a.to_string());
        }
        put_state(
            s,
            &state(
                None,
                "visits",
                RecordId::new_v7(at(n)),
                fields,
                false,
                100 + n,
            ),
            customer,
        );
    }
    let all = ScopeFilter {
        all: true,
        ..ScopeFilter::default()
    };
    let before = report_facts(s, &all);
    assert_eq!((before.0.len(), before.1.len()), (1, 2));
    write(s, |tx| {
        tx.clear_report_facts()?;
        tx.set_meta(VERSION_KEY, "0")
    })
    .unwrap();
    assert!(report_facts(s, &all).1.is_empty());
    rebuild_if_stale(s).unwrap();
    assert_eq!(report_facts(s, &all), before);
    let version = read(s, |tx| tx.meta(VERSION_KEY)).unwrap();
    assert_eq!(version.as_deref(), Some(VERSION));
}

#[test]
fn sqlite_store_passes_the_conformance_suite() {
    let dirs = std::cell::RefCell::new(Vec::new());
    run_all(&|| {
        let dir = tempfile::tempdir().unwrap();
        let store = super::sqlite::SqliteStore::open(&dir.path().join("server.db")).unwrap();
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn postgres_store_passes_the_conformance_suite() {
    use super::postgres::{PostgresStore, testing::TempDatabase};
    let dbs = std::cell::RefCell::new(Vec::new());
    run_all(&|| {
        let db = TempDatabase::new();
        let store = PostgresStore::open(&db.url()).unwrap();
        dbs.borrow_mut().push(db);
        Box::new(store)
    });
}
