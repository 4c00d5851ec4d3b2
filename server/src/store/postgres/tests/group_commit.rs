//! Writers of one instance that share a transaction, and their deadlines.

use super::*;

/// Another instance holding the write lock (here: a plain connection)
/// makes a writer give up after `lock_timeout`; once it lets go, the
/// retry applies the work once.
#[test]
fn a_writer_gives_up_on_a_write_lock_held_elsewhere_and_its_retry_applies_once() {
    let wait = Duration::from_millis(300);
    let (db, store) = impatient_store(wait);
    let mut other = Client::connect(&db.url(), NoTls).unwrap();
    other
        .execute("SELECT pg_advisory_lock($1)", &[&WRITE_LOCK])
        .unwrap();
    let start = Instant::now();
    let res = crate::store::write(&store, |tx| once(tx, "w"));
    assert_timed_out(&res, "a database lock", start.elapsed(), wait);
    other
        .execute("SELECT pg_advisory_unlock($1)", &[&WRITE_LOCK])
        .unwrap();
    waits::retry_twice(&store, "w");
    assert_eq!(meta_of(&store, "w").as_deref(), Some("1"));
    assert_eq!(head(&store), 1);
}

#[test]
fn a_writer_behind_a_stuck_writer_gives_up_at_its_deadline_and_applies_nothing() {
    let wait = Duration::from_millis(300);
    let (_db, store) = impatient_store(wait);
    waits::a_writer_behind_a_stuck_writer_gives_up_and_applies_nothing(&store, wait);
    // The stuck writer sat idle in its transaction past the deadline:
    // its session was ended, its lock released and its work undone.
    assert_eq!(meta_of(&store, "stuck"), None);
}

/// A writer whose work joined a group waits for the group's COMMIT,
/// which the writer after it runs. When that writer stalls, the first
/// gives up at its deadline; the stalled transaction is ended by the
/// database, and a retry applies the work exactly once.
#[test]
fn a_group_member_gives_up_when_the_writer_after_it_stalls_and_its_retry_applies_once() {
    let wait = Duration::from_secs(1);
    let (_db, store) = impatient_store(wait);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let stalling = std::thread::scope(|s| {
        let member = s.spawn(|| {
            let start = Instant::now();
            let res = crate::store::write(&store, |tx| {
                once(tx, "member")?;
                started_tx.send(()).unwrap();
                // Stay until the stalling writer queues: the group's
                // transaction is then left open for it.
                wait_until_queued(&store, 1);
                Ok(())
            });
            (res, start.elapsed())
        });
        started.recv_timeout(SIGNAL).unwrap();
        let store = &store;
        let stalling = s.spawn(move || {
            crate::store::write(store, |tx| {
                inside.send(()).unwrap();
                released.recv_timeout(SIGNAL).unwrap();
                once(tx, "stalling")
            })
        });
        entered.recv_timeout(SIGNAL).unwrap();
        let (res, waited) = member.join().unwrap();
        assert_timed_out(&res, "its group's COMMIT", waited, wait);
        release.send(()).unwrap();
        stalling.join().unwrap()
    });
    // Whatever became of the group, each key is there exactly when its
    // writer was told so, and a retry leaves one copy.
    assert_eq!(meta_of(&store, "stalling").is_some(), stalling.is_ok());
    crate::store::write(&store, |tx| once(tx, "member")).unwrap();
    crate::store::write(&store, |tx| once(tx, "member")).unwrap();
    assert!(meta_of(&store, "member").is_some());
    let expected = 1 + u64::from(meta_of(&store, "stalling").is_some());
    assert_eq!(head(&store), expected, "each applied exactly once");
}

/// Writers that queue while another is inside share its transaction:
/// one commit for the group, every part numbered on from the last. One
/// that fails is undone alone (its statements, its writes kept behind,
/// the numbers it took) and gets its own error; the others commit.
#[test]
fn waiting_writers_share_a_transaction_and_a_failed_one_is_undone_alone() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
    let problem = |i: usize| ProblemRow {
        id: 0,
        user_id: UserId(uuid::Uuid::from_u128(1)),
        device_id: DeviceId(uuid::Uuid::from_u128(2)),
        op: "{}".into(),
        code: format!("w{i}"),
        message: "m".into(),
        field: None,
        created_at: "2027-01-01T00:00:00.000Z".into(),
        op_id: sync_protocol::OpId::new_v7(chrono::Utc::now()),
        decision: None,
    };
    let write = |i: usize| {
        crate::store::write(&store, |tx| {
            tx.set_meta(&format!("w{i}"), "x")?;
            tx.next_seq()?;
            tx.add_problem(&problem(i))?;
            if i == 2 {
                return Err(StoreError::Taken(format!("w{i}")));
            }
            Ok(())
        })
    };
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let queued = |n: usize| wait_until_queued(&store, n);
    let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
        let (store, inside) = (&store, inside);
        let first = s.spawn(move || {
            crate::store::write(store, |tx| {
                tx.set_meta("w0", "x")?;
                tx.next_seq()?;
                inside.send(()).unwrap();
                released.recv_timeout(SIGNAL).unwrap();
                Ok(())
            })
        });
        entered.recv_timeout(SIGNAL).unwrap();
        // They queue in this order, so the failing one is in the middle.
        let mut all = vec![first];
        for i in 1..4 {
            all.push(s.spawn(move || write(i)));
            queued(i);
        }
        release.send(()).unwrap();
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
    assert!(matches!(&results[2], Err(StoreError::Taken(w)) if w == "w2"));
    let mut c = Client::connect(&db.url(), NoTls).unwrap();
    let keys: Vec<String> = c
        .query("SELECT key FROM meta WHERE key LIKE 'w%' ORDER BY key", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["w0", "w1", "w3"]);
    let codes: Vec<String> = c
        .query("SELECT code FROM problems ORDER BY code", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(codes, ["w1", "w3"]);
    // The number the failed writer took was taken again: none is missing.
    let head: i64 = c
        .query_one("SELECT head FROM change_seq", &[])
        .unwrap()
        .get(0);
    assert_eq!(head, 3);
    // One transaction wrote the values kept behind (one statement).
    let writers: i64 = c
        .query_one(
            "SELECT count(DISTINCT xmin::text) FROM meta WHERE key LIKE 'w%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(writers, 1);
}

/// A writer that panics inside a group's transaction rolls it back:
/// the writers waiting in the group get an error instead of waiting
/// forever, and the next writer begins a transaction of its own.
#[test]
fn a_panicking_writer_fails_its_group_and_the_next_writer_goes_on() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let queued = |n: usize| wait_until_queued(&store, n);
    let (first, panicked, last) = std::thread::scope(|s| {
        let (store, inside) = (&store, inside);
        let first = s.spawn(move || {
            crate::store::write(store, |tx| {
                tx.set_meta("w0", "x")?;
                inside.send(()).unwrap();
                released.recv_timeout(SIGNAL).unwrap();
                Ok::<(), StoreError>(())
            })
        });
        entered.recv_timeout(SIGNAL).unwrap();
        let panicking = s.spawn(move || {
            crate::store::write(store, |tx| -> Result<(), StoreError> {
                tx.set_meta("w1", "x")?;
                panic!("a writer's bug");
            })
        });
        queued(1);
        let last = s.spawn(move || crate::store::write(store, |tx| tx.set_meta("w2", "x")));
        queued(2);
        release.send(()).unwrap();
        (
            first.join().unwrap(),
            panicking.join().is_err(),
            last.join().unwrap(),
        )
    });
    assert!(first.is_err(), "the group the first writer was in failed");
    assert!(panicked);
    assert!(last.is_ok());
    let mut c = Client::connect(&db.url(), NoTls).unwrap();
    let keys: Vec<String> = c
        .query("SELECT key FROM meta WHERE key LIKE 'w%' ORDER BY key", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["w2"]);
}

/// When the database drops the writer's connection, the write that
/// finds out fails, and the next one connects again.
#[test]
fn the_writer_connects_again_after_its_connection_is_dropped() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
    crate::store::write(&store, |tx| tx.set_meta("k", "1")).unwrap();
    let mut admin = Client::connect(&db.url(), NoTls).unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    // The request that finds its connection gone fails; the next
    // one connects again (reads alike, on the pool).
    let wrote = (0..2).any(|_| crate::store::write(&store, |tx| tx.set_meta("k", "2")).is_ok());
    assert!(wrote, "a write succeeds within two attempts");
    let read = (0..2).find_map(|_| crate::store::read(&store, |tx| tx.meta("k")).ok());
    assert_eq!(read, Some(Some("2".to_owned())));
}
