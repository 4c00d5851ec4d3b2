//! Accounts: unique names, devices, login failures, dashboard sessions, teams.

use super::{at, laptop, rec, user};
use crate::store::{DeviceRow, RecordScope, Store, StoreError, TeamRow, read, write};
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, Hlc, RecordId, TeamId, UserId};

pub(super) fn usernames_and_team_names_are_unique(s: &dyn Store) {
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

pub(super) fn devices_are_found_by_token_hash_and_keep_their_ack_on_reregistration(s: &dyn Store) {
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

pub(super) fn device_bookkeeping_and_meta_read_back_in_the_same_write(s: &dyn Store) {
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

pub(super) fn login_failures_are_counted_per_name_and_address_within_the_window(s: &dyn Store) {
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

pub(super) fn dashboard_sessions_end_one_by_one_or_per_user_and_expire(s: &dyn Store) {
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

/// A customer owner's user row read with announced reads, then changed in
/// the same transaction, reads back changed.
pub(super) fn a_user_changed_after_announced_reads_reads_back_changed(s: &dyn Store) {
    let owner = user("olga", Role::Rep, None, None, 1);
    let customer = RecordId::new_v7(at(10));
    let clock = Hlc {
        millis: 1_798_848_000_456,
        counter: 2,
        node: DeviceId::new_v7(at(11)),
    };
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
        tx.set_user_deactivated(owner.id, Some(clock))?;
        let after = tx.user(owner.id)?.map(|u| u.active);
        tx.set_password(owner.id, "y")?;
        Ok((before, after, tx.user(owner.id)?.map(|u| u.password_hash)))
    })
    .unwrap();
    assert_eq!((before, after), (Some(true), Some(false)));
    assert_eq!(hash.as_deref(), Some("y"));
    assert_eq!(
        read(s, |tx| tx.deactivated_at(owner.id)).unwrap(),
        Some(clock)
    );
    write(s, |tx| tx.set_user_deactivated(owner.id, None)).unwrap();
    let (active, at) = read(s, |tx| -> Result<_, StoreError> {
        Ok((
            tx.user(owner.id)?.map(|u| u.active),
            tx.deactivated_at(owner.id)?,
        ))
    })
    .unwrap();
    assert_eq!((active, at), (Some(true), None), "reactivated");
}

pub(super) fn team_members_by_team_or_supervisor(s: &dyn Store) {
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
