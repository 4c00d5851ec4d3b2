//! Planner statistics after bulk writes.

use super::*;

/// A refresh runs only while the statistics of `records` are at least
/// twice off: never taken, or the table has doubled since.
#[test]
fn a_refresh_runs_only_when_the_statistics_are_twice_off() {
    let db = TempDatabase::new();
    drop(PostgresStore::open_with_pool(&db.url(), 1).unwrap());
    let config = parse_url(&db.url()).unwrap();
    let (mut writer, mut c) = (connect(&config).unwrap(), connect(&config).unwrap());
    let mut next = 1;
    // Insert `n` records, then wait until the statistics count them all.
    let mut insert = |c: &mut Client, n: i64| {
        writer
            .batch_execute(&format!(
                "INSERT INTO records (id, collection, seq, state) \
                 SELECT 'r' || g, 'visits', g, '{{}}' FROM generate_series({next}, {}) g",
                next + n - 1
            ))
            .unwrap();
        next += n;
        writer
            .query_one("SELECT pg_stat_force_next_flush()", &[])
            .unwrap();
        let total = next - 1;
        let counted = (0..400).any(|_| {
            let live: i64 = c
                .query_one(
                    "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'records'",
                    &[],
                )
                .unwrap()
                .get(0);
            if live < total {
                std::thread::sleep(Duration::from_millis(25));
            }
            live >= total
        });
        assert!(counted, "the statistics count {total} rows within 10 s");
    };
    assert!(refresh(&mut c).unwrap(), "never analysed");
    insert(&mut c, 10);
    assert!(refresh(&mut c).unwrap(), "10 rows after an empty table");
    insert(&mut c, 3);
    assert!(!refresh(&mut c).unwrap(), "13 rows after 10");
    insert(&mut c, 7);
    assert!(refresh(&mut c).unwrap(), "20 rows after 10");
}

/// Enough written records refresh the planner statistics in the
/// background; fewer do not.
#[test]
fn bulk_writes_refresh_planner_statistics() {
    use std::sync::atomic::Ordering;
    let db = TempDatabase::new();
    let mut store = PostgresStore::open_with_pool(&db.url(), 2).unwrap();
    store.analyzer = Analyzer::new(3);
    let analyzed = |store: &PostgresStore| -> bool {
        let mut pooled = store.checkout().unwrap();
        let (client, _) = pooled.parts().unwrap();
        client
            .query_one(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'records'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let put = |store: &PostgresStore, n: u128| {
        store
            .write(&mut |tx| {
                let id = RecordId(uuid::Uuid::from_u128(n));
                let seq = tx.next_seq()?;
                tx.put_record(&RecordRow {
                    id,
                    collection: "customers".into(),
                    seq,
                    state: "{}".into(),
                    scope: RecordScope::default(),
                })
            })
            .unwrap();
    };
    put(&store, 1);
    put(&store, 2);
    assert!(!analyzed(&store), "two records are below the threshold");
    put(&store, 3);
    let mut seen = false;
    for _ in 0..200 {
        if analyzed(&store) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(seen, "the third record starts a run within 5 s");
    // The next run waits for as many records again as were written.
    let idle = (0..200).any(|_| {
        let done = !store.analyzer.running.load(Ordering::Acquire);
        if !done {
            std::thread::sleep(Duration::from_millis(25));
        }
        done
    });
    assert!(idle, "the run ends within 5 s");
    assert_eq!(store.analyzer.next.load(Ordering::Relaxed), 3);
    for n in 4..=5 {
        put(&store, n);
    }
    assert!(
        !store.analyzer.running.load(Ordering::Acquire),
        "two more records start no run"
    );
}
