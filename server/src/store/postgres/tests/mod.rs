use super::super::waits::{self, SIGNAL, assert_timed_out, once};
use super::behind::Behind;
use super::opening::{read_opening, write_opening};
use super::planner::{Analyzer, refresh};
use super::pool::session_deadlines;
use super::testing::TempDatabase;
use super::*;
use super::{PostgresStore, Tx, WRITE_LOCK, backend, connect, lock, parse_url};
use crate::store::{AccountRead, ReadTx, RecordWrite};
use crate::store::{CheckIn, ProblemRow, RecordRow, RecordScope, StoreError, UserRow};
use postgres::{Client, NoTls};
use std::time::{Duration, Instant};
use sync_protocol::geo::LatLon;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, RecordId, UserId};

mod group_commit;
mod planner;

/// On every pooled connection, the one left over from migrating
/// included, read transactions plan each execution with its parameters
/// (unless a pull says its reads are keyed) and everything else may
/// keep generic plans; a transaction's opening
/// reads the head and the server's meta values, and a transaction left
/// open is rolled back when dropped.
#[test]
fn transactions_open_in_one_round_trip_with_their_plan_mode() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
    crate::store::write(&store, |tx| {
        tx.set_meta(crate::store::META_CLOCK, "c1")?;
        tx.set_meta("other", "o1")?;
        tx.next_seq().map(drop)
    })
    .unwrap();
    let mut first = store.checkout().unwrap();
    let mut second = store.checkout().unwrap();
    let show =
        |c: &mut Client| -> String { c.query_one("SHOW plan_cache_mode", &[]).unwrap().get(0) };
    for pooled in [&mut first, &mut second] {
        let (client, statements) = pooled.parts().unwrap();
        assert_eq!(show(client), "auto");
        // (opening, a pull's hint first, plan mode, write-behind)
        for (opening, reuse, mode, behind) in [
            (read_opening(false), false, "force_custom_plan", None),
            (read_opening(false), true, "auto", None),
            (write_opening(), false, "auto", Some(Behind::default())),
        ] {
            let mut tx = Tx::new(client, statements, opening, behind);
            if reuse {
                tx.reuse_plans();
            }
            assert_eq!(tx.head_seq().unwrap(), 1);
            assert_eq!(show(tx.t), mode);
            assert_eq!(tx.opening_meta.get(crate::store::META_CLOCK).unwrap(), "c1");
            assert!(!tx.opening_meta.contains_key("other"));
            assert_eq!(tx.meta("other").unwrap().as_deref(), Some("o1"));
            drop(tx);
            // Rolled back: its SET LOCAL and its lock are gone.
            assert_eq!(show(client), "auto");
            let locks: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0);
            assert_eq!(locks, 0);
        }
    }
    drop((first, second));
    drop(store);
}

/// Wait (at most 10 s) until `n` writers wait for their turn.
fn wait_until_queued(store: &PostgresStore, n: usize) {
    let ok = (0..10_000).any(|_| {
        std::thread::sleep(Duration::from_millis(1));
        store.writers.waiting() == n
    });
    assert!(ok, "{n} writers queued within 10 s");
}

fn meta_of(store: &PostgresStore, key: &str) -> Option<String> {
    waits::meta_of(store, key)
}

fn head(store: &PostgresStore) -> u64 {
    waits::head(store)
}

/// A store on a fresh database whose waits give up after `wait`.
fn impatient_store(wait: Duration) -> (TempDatabase, PostgresStore) {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 2)
        .unwrap()
        .with_wait_deadline(wait)
        .unwrap();
    (db, store)
}

/// A request waits for a pooled connection only until its deadline.
#[test]
fn a_read_waits_for_a_pooled_connection_only_until_its_deadline() {
    let wait = Duration::from_millis(300);
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 1)
        .unwrap()
        .with_wait_deadline(wait)
        .unwrap();
    let held = store.checkout().unwrap();
    let start = Instant::now();
    let res = store.ping();
    assert_timed_out(&res, "a pooled connection", start.elapsed(), wait);
    assert_eq!(store.turns.waiting(), 0, "it left the line");
    drop(held);
    store.ping().unwrap();
}

/// Every store connection carries the session deadlines, and a
/// statement cancelled by its deadline is a `TimedOut`.
#[test]
fn store_connections_carry_the_session_deadlines() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 1)
        .unwrap()
        .with_wait_deadline(Duration::from_millis(1500))
        .unwrap();
    let show = |c: &mut Client, name: &str| -> String {
        c.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
    };
    crate::store::write(&store, |tx| once(tx, "w")).unwrap();
    let writer = &mut lock(&store.writer);
    let mut pooled = store.checkout().unwrap();
    for client in [
        &mut writer.conn.as_mut().unwrap().client,
        pooled.parts().unwrap().0,
    ] {
        assert_eq!(show(client, "lock_timeout"), "1500ms");
        assert_eq!(
            show(client, "idle_in_transaction_session_timeout"),
            "1500ms"
        );
        assert_eq!(show(client, "statement_timeout"), "1min");
        client.batch_execute("SET statement_timeout = 50").unwrap();
        let res = client.batch_execute("SELECT pg_sleep(5)").map_err(backend);
        assert!(
            matches!(
                res,
                Err(StoreError::TimedOut {
                    what: "a statement to finish",
                    ..
                })
            ),
            "{res:?}"
        );
        client
            .batch_execute(&session_deadlines(Duration::from_millis(1500)))
            .unwrap();
    }
}

/// A write does not queue for a pooled connection: with every pooled
/// connection held by reads, it still commits (on the writer's own).
#[test]
fn a_write_needs_no_pooled_connection() {
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
    let held = store.checkout().unwrap();
    let (done, wrote) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = crate::store::write(&store, |tx| tx.set_meta("k", "v"));
            let _ = done.send(r);
        });
        let r = wrote.recv_timeout(Duration::from_secs(20));
        drop(held);
        r.expect("the write finished while the pool was held")
            .unwrap();
    });
    let v = crate::store::read(&store, |tx| tx.meta("k")).unwrap();
    assert_eq!(v.as_deref(), Some("v"));
}

/// Reads a push announces travel in the round trip that begins the
/// transaction (the first read, here the device), and later reads are
/// answered from what it brought; a pull's token look-up begins its
/// read transaction the same way.
#[test]
fn announced_reads_travel_with_the_opening() {
    use crate::store::{DeviceRow, RecordScope};
    let db = TempDatabase::new();
    let store = PostgresStore::open_with_pool(&db.url(), 1).unwrap();
    let at = "2027-01-01T00:00:00.000Z".to_owned();
    let owner = UserRow {
        id: UserId(uuid::Uuid::from_u128(1)),
        username: "olga".into(),
        password_hash: "x".into(),
        role: Role::Rep,
        team_id: None,
        supervisor_id: None,
        active: true,
        created_at: at.clone(),
    };
    let device = DeviceRow {
        id: DeviceId(uuid::Uuid::from_u128(2)),
        user_id: owner.id,
        name: "laptop".into(),
        created_at: at,
        last_seen_at: None,
        revoked_at: None,
        logged_out_at: None,
        acked_through: 3,
        clock_drift_ms: Some(-4),
    };
    let (customer, missing) = (
        RecordId(uuid::Uuid::from_u128(3)),
        RecordId(uuid::Uuid::from_u128(4)),
    );
    let check_in = CheckIn {
        visit_id: RecordId(uuid::Uuid::from_u128(5)),
        user_id: owner.id,
        started_at_ms: 1_000,
        at: LatLon {
            lat: 52.520_008,
            lon: -13.404_954_1,
        },
    };
    crate::store::write(&store, |tx| {
        tx.insert_user(&owner)?;
        tx.upsert_device(&device, b"token")?;
        let seq = tx.next_seq()?;
        tx.put_record(&RecordRow {
            id: customer,
            collection: "customers".into(),
            seq,
            state: "{\"name\":\"it's \\\"quoted\\\"\"}".into(),
            scope: RecordScope {
                customer_id: Some(customer),
                ..RecordScope::default()
            },
        })?;
        tx.set_customer_owner(customer, owner.id)?;
        tx.put_check_in(&check_in)
    })
    .unwrap();
    let stored = crate::store::read(&store, |tx| tx.record(customer)).unwrap();

    let mut pooled = store.checkout().unwrap();
    let (client, statements) = pooled.parts().unwrap();
    let mut tx = Tx::new(client, statements, write_opening(), Some(Behind::default()));
    tx.prefetch_records(&[customer, missing]).unwrap();
    tx.prefetch_customer_owners(&[customer, missing]).unwrap();
    tx.prefetch_previous_check_ins(owner.id, &[(2_000, missing), (500, missing)])
        .unwrap();
    assert!(tx.unsent.is_some(), "nothing is sent before the first read");
    assert_eq!(tx.device(device.id).unwrap(), Some(device.clone()));
    assert!(tx.unsent.is_none());
    let known = &tx.behind.as_ref().unwrap().known;
    assert_eq!(known.records.get(&customer), Some(&stored));
    assert_eq!(known.records.get(&missing), Some(&None));
    assert_eq!(known.owners.get(&customer), Some(&Some(owner.id)));
    assert_eq!(known.owners.get(&missing), Some(&None));
    assert_eq!(known.users.get(&owner.id), Some(&Some(owner.clone())));
    let previous = |ms| known.previous.get(&(owner.id, ms, missing)).copied();
    assert_eq!(
        previous(2_000),
        Some(Some(check_in)),
        "floats read back exactly"
    );
    assert_eq!(previous(500), Some(None));
    // A hint after the opening is read at once.
    let later = RecordId(uuid::Uuid::from_u128(6));
    tx.prefetch_records(&[later]).unwrap();
    assert_eq!(
        tx.behind.as_ref().unwrap().known.records.get(&later),
        Some(&None)
    );
    drop(tx);

    let mut tx = Tx::new(client, statements, read_opening(false), None);
    let found = tx.device_with_user(b"token").unwrap();
    assert!(tx.unsent.is_none());
    assert_eq!(found, Some((device.clone(), Some(owner.clone()))));
    assert_eq!(tx.device_with_user(b"other").unwrap(), None);
    tx.end("COMMIT").unwrap();
}
