use super::read::changes_sql;
use super::*;
use super::{READERS, SqliteStore, lock};
use crate::store::waits::{self, SIGNAL, assert_timed_out, once, retry_twice, stuck_writer};
use crate::store::{ScopeFilter, StoreError};
use rusqlite::{Connection, params_from_iter};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use sync_protocol::{TeamId, UserId};

/// Issue 7: a pull walked every change after the cursor and tested scope
/// per row. Its plan must seek indexes only, never scan `records`.
#[test]
fn pull_query_seeks_indexes_instead_of_scanning_records() {
    let mut c = Connection::open_in_memory().expect("open");
    migrations::apply(&mut c, migrations::SERVER_SQLITE).expect("migrate");
    let now = chrono::Utc::now();
    let scope = ScopeFilter {
        all: false,
        users: vec![UserId::new_v7(now), UserId::new_v7(now)],
        teams: vec![TeamId::new_v7(now)],
    };
    let mut args: Vec<rusqlite::types::Value> = vec![0_i64.into(), 10_i64.into(), 5_i64.into()];
    args.extend(scope.users.iter().map(|u| u.to_string().into()));
    args.extend(scope.teams.iter().map(|t| t.to_string().into()));
    let sql = format!("EXPLAIN QUERY PLAN {}", changes_sql(&scope));
    let mut st = c.prepare(&sql).expect("prepare");
    let plan: Vec<String> = st
        .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
        .expect("plan")
        .collect::<Result<_, _>>()
        .expect("rows");
    for index in [
        "records_public_seq",
        "records_subject_user_seq",
        "records_subject_team_seq",
        "records_customer_seq",
    ] {
        assert!(plan.iter().any(|d| d.contains(index)), "{index}: {plan:#?}");
    }
    // The old plan walked the whole seq range of `records`
    // (`SEARCH r USING INDEX sqlite_autoindex_records_2 (seq>? AND seq<?)`).
    assert!(
        !plan.iter().any(|d| d.starts_with("SCAN r")
            || (d.contains("sqlite_autoindex_records_2") && d.contains("seq>?"))),
        "{plan:#?}"
    );
}
fn temp_store() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.db");
    let store = SqliteStore::open(&path).expect("open");
    (dir, path, store)
}

fn meta_of(store: &SqliteStore, key: &str) -> Option<String> {
    super::super::read(store, |tx| tx.meta(key)).expect("read")
}

/// Batches stay open for queued writers however long they take.
fn keep_batches_open(store: &SqliteStore) {
    lock(&store.writer).commit_cost = Duration::from_hours(24);
}

fn commits(store: &SqliteStore) -> u64 {
    lock(&store.writer).commits
}

/// Wait (bounded) until `n` writers queue for the writer connection.
fn until_queued(store: &SqliteStore, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.queued.load(Ordering::SeqCst) < n {
        assert!(std::time::Instant::now() < deadline, "writers never queued");
        std::thread::yield_now();
    }
}

/// A store whose waits give up after `wait`.
fn impatient_store(wait: Duration) -> (tempfile::TempDir, SqliteStore) {
    let (dir, _, store) = temp_store();
    (dir, store.with_wait_deadline(wait).expect("deadline"))
}

fn head(store: &SqliteStore) -> u64 {
    waits::head(store)
}

#[test]
fn a_writer_behind_a_stuck_writer_gives_up_at_its_deadline_and_applies_nothing() {
    let wait = Duration::from_millis(300);
    let (_dir, store) = impatient_store(wait);
    waits::a_writer_behind_a_stuck_writer_gives_up_and_applies_nothing(&store, wait);
    // SQLite committed the stuck writer when it went on.
    assert!(meta_of(&store, "stuck").is_some());
}

/// A writer whose work joined a batch waits for the batch's COMMIT,
/// which the writer after it runs. When that writer is stuck, the
/// first gives up at its deadline (it cannot know whether its work
/// will be committed); the batch commits later, and a retry finds the
/// work there instead of applying it again.
#[test]
fn a_batch_member_gives_up_when_the_writer_after_it_stalls_and_its_retry_applies_once() {
    let wait = Duration::from_millis(300);
    let (_dir, store) = impatient_store(wait);
    keep_batches_open(&store);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let before = commits(&store);
    std::thread::scope(|s| {
        let member = s.spawn(|| {
            let start = Instant::now();
            let res = super::super::write(&store, |tx| {
                once(tx, "member")?;
                started_tx.send(()).expect("signal");
                // Stay until the stalling writer queues: the batch is
                // then left open for it.
                until_queued(&store, 1);
                Ok(())
            });
            (res, start.elapsed())
        });
        started.recv_timeout(SIGNAL).expect("the member is inside");
        let store = &store;
        let stalling = s.spawn(move || stuck_writer(store, "stalling", inside, &released));
        entered
            .recv_timeout(SIGNAL)
            .expect("the stalling writer is inside");
        let (res, waited) = member.join().expect("member");
        assert_timed_out(&res, "its group's COMMIT", waited, wait);
        release.send(()).expect("release");
        stalling.join().expect("stalling").expect("committed");
    });
    // One COMMIT held both, the member's work included.
    assert_eq!(commits(&store), before + 1);
    assert_eq!(meta_of(&store, "member").as_deref(), Some("1"));
    super::super::write(&store, |tx| once(tx, "member")).expect("the retry");
    assert_eq!(meta_of(&store, "member").as_deref(), Some("1"));
    assert_eq!(head(&store), 2, "applied exactly once");
    assert!(lock(&store.ends).failed.is_empty());
    assert_eq!(lock(&store.ends).waiting, 0);
}

#[test]
fn a_write_blocked_by_another_process_holding_the_file_gives_up_and_its_retry_applies_once() {
    let wait = Duration::from_millis(300);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("server.db");
    let store = SqliteStore::open(&path)
        .expect("open")
        .with_wait_deadline(wait)
        .expect("deadline");
    let other = Connection::open(&path).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let start = Instant::now();
    let res = super::super::write(&store, |tx| once(tx, "w"));
    assert_timed_out(&res, "the database file's lock", start.elapsed(), wait);
    other.execute_batch("ROLLBACK").expect("unlock");
    retry_twice(&store, "w");
    assert_eq!(meta_of(&store, "w").as_deref(), Some("1"));
    assert_eq!(head(&store), 1);
}

#[test]
fn a_read_waits_for_a_connection_only_until_its_deadline() {
    let wait = Duration::from_millis(300);
    let (_dir, store) = impatient_store(wait);
    let (inside, entered) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    std::thread::scope(|s| {
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let (store, inside, released) = (&store, inside.clone(), &released);
            readers.push(s.spawn(move || {
                super::super::read(store, |_| {
                    inside.send(()).expect("signal");
                    lock(released).recv_timeout(SIGNAL).expect("released");
                    Ok::<(), StoreError>(())
                })
            }));
            entered.recv_timeout(SIGNAL).expect("a reader is inside");
        }
        let start = Instant::now();
        let res = store.ping();
        assert_timed_out(&res, "a read connection", start.elapsed(), wait);
        for _ in 0..READERS {
            release.send(()).expect("release");
        }
        for r in readers {
            r.join().expect("reader").expect("read");
        }
    });
    store.ping().expect("connections are free again");
}

#[test]
fn concurrent_writers_are_all_durable_and_failed_ones_leave_nothing() {
    let (_dir, path, store) = temp_store();
    keep_batches_open(&store);
    let ok: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..8 {
            let (store, ok, failed) = (&store, &ok, &failed);
            s.spawn(move || {
                for i in 0..40 {
                    let key = format!("k-{t}-{i}");
                    let fail = i % 7 == 3;
                    let res = super::super::write(store, |tx| {
                        let seq = tx.next_seq()?;
                        tx.set_meta(&key, &seq.to_string())?;
                        if fail {
                            return Err(StoreError::Rollback);
                        }
                        Ok(seq)
                    });
                    match res {
                        Ok(seq) => lock(ok).push((key, seq)),
                        Err(StoreError::Rollback) if fail => lock(failed).push(key),
                        Err(e) => panic!("{key}: {e}"),
                    }
                }
            });
        }
    });
    let ok = ok.into_inner().expect("ok");
    let failed = failed.into_inner().expect("failed");
    assert_eq!(ok.len(), 8 * 34);
    assert_eq!(failed.len(), 8 * 6);
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    for (key, seq) in &ok {
        assert_eq!(meta_of(&store, key), Some(seq.to_string()), "{key}");
    }
    for key in &failed {
        assert_eq!(meta_of(&store, key), None, "{key}");
    }
    // Failed writers' numbers were rolled back with them: the committed
    // ones are exactly 1..=n, each taken once.
    let mut seqs: Vec<u64> = ok.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=ok.len() as u64).collect::<Vec<_>>());
    let head = super::super::read(&store, |tx| tx.head_seq()).expect("head");
    assert_eq!(head, ok.len() as u64);
}

#[test]
fn failing_writer_in_a_shared_batch_rolls_back_only_its_own_work() {
    let (_dir, path, store) = temp_store();
    keep_batches_open(&store);
    let before = commits(&store);
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            super::super::write(&store, |tx| {
                tx.set_meta("a", "1")?;
                started_tx.send(()).expect("signal");
                // Stay in the batch until both others queue behind it.
                until_queued(&store, 2);
                Ok::<_, StoreError>(())
            })
        });
        started.recv_timeout(SIGNAL).expect("first writer started");
        let failing = s.spawn(|| {
            super::super::write(&store, |tx| {
                tx.set_meta("b", "2")?;
                Err::<(), _>(StoreError::Taken("b".into()))
            })
        });
        let third = s.spawn(|| super::super::write(&store, |tx| tx.set_meta("c", "3")));
        assert!(first.join().expect("first").is_ok());
        assert!(matches!(
            failing.join().expect("failing"),
            Err(StoreError::Taken(_))
        ));
        assert!(third.join().expect("third").is_ok());
    });
    // One COMMIT covered both successful writers.
    assert_eq!(commits(&store), before + 1);
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(meta_of(&store, "a").as_deref(), Some("1"));
    assert_eq!(meta_of(&store, "b"), None);
    assert_eq!(meta_of(&store, "c").as_deref(), Some("3"));
}

#[test]
fn failed_commit_fails_every_writer_in_the_batch() {
    let (_dir, path, store) = temp_store();
    keep_batches_open(&store);
    lock(&store.writer)
        .conn
        .execute_batch(
            "CREATE TABLE gc_parent (id INTEGER PRIMARY KEY);
             CREATE TABLE gc_child (parent INTEGER REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .expect("tables");
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let first = s.spawn(|| {
            super::super::write(&store, |tx| {
                tx.set_meta("a", "1")?;
                started_tx.send(()).expect("signal");
                until_queued(&store, 1);
                Ok::<_, StoreError>(())
            })
        });
        started.recv_timeout(SIGNAL).expect("first writer started");
        // Its deferred foreign key fails only at COMMIT, which it runs
        // for the batch as the last writer.
        let orphan = s.spawn(|| {
            store.write_conn(&mut |c| {
                c.execute("INSERT INTO gc_child (parent) VALUES (42)", [])?;
                Ok(())
            })
        });
        let first = first.join().expect("first");
        let orphan = orphan.join().expect("orphan");
        for res in [first, orphan] {
            let Err(StoreError::Backend(e)) = res else {
                panic!("expected the COMMIT's error, got {res:?}");
            };
            assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        }
    });
    // The store goes on with the next batch.
    super::super::write(&store, |tx| tx.set_meta("after", "ok")).expect("next write");
    drop(store);
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(meta_of(&store, "a"), None);
    assert_eq!(meta_of(&store, "after").as_deref(), Some("ok"));
    let orphans: i64 = lock(&store.writer)
        .conn
        .query_row("SELECT count(*) FROM gc_child", [], |r| r.get(0))
        .expect("count");
    assert_eq!(orphans, 0);
}
