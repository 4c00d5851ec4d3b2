use super::{MigrateError, Source, TableReport, migrate_store};
use crate::store::postgres::{PostgresStore, testing::TempDatabase};
use crate::store::sqlite::SqliteStore;
use crate::store::{
    CheckIn, ConflictRow, DeviceRow, OpRow, ProblemRow, RecordRow, RecordScope, ScopeFilter, Store,
    StoreError, TeamRow, UserRow, read, write,
};
use sync_protocol::geo::LatLon;
use sync_protocol::ownership::Reassignment;
use sync_protocol::schema::Role;
use sync_protocol::{DeviceId, Hlc, OpId, RecordId, TeamId, UserId};

fn at(n: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000 + n, 0).unwrap()
}

/// A server with a row in every table, written through the store API.
fn fill(s: &dyn Store) -> (UserId, DeviceId, RecordId) {
    let team = TeamRow {
        id: TeamId::new_v7(at(1)),
        name: "north".into(),
        region: Some("North".into()),
        created_at: "2027-01-01T00:00:00.000Z".into(),
    };
    let user = |name: &str, n: i64, sup: Option<UserId>| UserRow {
        id: UserId::new_v7(at(n)),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        role: Role::Rep,
        team_id: Some(team.id),
        supervisor_id: sup,
        active: true,
        created_at: "2027-01-01T00:00:00.000Z".into(),
    };
    // The supervisor's id sorts after the rep's: the copy must cope.
    let sup = user("sue", 9, None);
    let rep = user("ann", 2, Some(sup.id));
    let dev = DeviceRow {
        id: DeviceId::new_v7(at(3)),
        user_id: rep.id,
        name: "laptop".into(),
        created_at: "2027-01-01T00:00:00.000Z".into(),
        last_seen_at: None,
        revoked_at: None,
        logged_out_at: None,
        acked_through: 0,
        clock_drift_ms: Some(-12),
    };
    let cust = RecordId::new_v7(at(4));
    write(s, |tx| -> Result<(), StoreError> {
        tx.set_meta("server_clock", "hlc-1")?;
        tx.insert_team(&team)?;
        tx.insert_user(&sup)?;
        tx.insert_user(&rep)?;
        tx.upsert_device(&dev, &[0, 159, 255, 7])?;
        tx.set_acked_through(dev.id, 2)?;
        tx.add_login_failure("ann", "10.0.0.1", 1_000, 0)?;
        tx.start_dashboard_session(&[1, 2, 3], sup.id, i64::MAX, 0)?;
        let seq = tx.next_seq()?;
        tx.put_record(&RecordRow {
            id: cust,
            collection: "customers".into(),
            seq,
            state: "{\"name\":\"Acme \\u00e9\"}".into(),
            scope: RecordScope {
                customer_id: Some(cust),
                subject_user: None,
                subject_team: Some(team.id),
                public: false,
            },
        })?;
        tx.set_customer_owner(cust, rep.id)?;
        tx.put_report_fact(
            cust,
            true,
            Some(&super::super::facts::FactRow::Customer {
                owner_id: Some(rep.id.to_string()),
                created_us: Some(1_000),
            }),
        )?;
        tx.put_report_fact(
            RecordId::new_v7(at(7)),
            false,
            Some(&super::super::facts::FactRow::Fact(
                super::super::facts::FactColumns::new("visit", 5_000_000, cust),
            )),
        )?;
        let seq = tx.next_seq()?;
        let change = Reassignment {
            hlc: Hlc {
                millis: 1_798_848_000_000,
                counter: 3,
                node: dev.id,
            },
            from: sup.id,
            to: rep.id,
        };
        tx.add_eviction(seq, cust, &change, "2027-01-02T00:00:00.000Z")?;
        tx.add_op(&OpRow {
            device_id: dev.id,
            device_seq: 1,
            op_id: OpId::new_v7(at(5)),
            user_id: rep.id,
            op: "{\"op\":1}".into(),
            outcome: "{\"status\":\"applied\"}".into(),
            at: "2027-01-01T00:00:00.000Z".into(),
        })?;
        for code in ["out_of_scope", "stale_transition"] {
            tx.add_problem(&ProblemRow {
                id: 0,
                user_id: rep.id,
                device_id: dev.id,
                op: "{}".into(),
                code: code.into(),
                message: "m".into(),
                field: None,
                created_at: "2027-01-01T00:00:00.000Z".into(),
                op_id: OpId::new_v7(at(6)),
                decision: None,
            })?;
        }
        tx.add_conflict(&ConflictRow {
            id: 0,
            record_id: cust,
            collection: "customers".into(),
            op_id: OpId::new_v7(at(6)),
            user_id: rep.id,
            field: "name".into(),
            losing_value: "\"A\"".into(),
            winning_value: "\"B\"".into(),
            losing_hlc: "h1".into(),
            winning_hlc: "h2".into(),
            created_at: "2027-01-01T00:00:00.000Z".into(),
            loser: crate::store::Side {
                user: Some(rep.id),
                device: None,
            },
            winner: crate::store::Side::default(),
            resolved_at: Some("2027-01-02T00:00:00.000Z".into()),
            resolution: Some("theirs".into()),
        })?;
        tx.put_check_in(&CheckIn {
            visit_id: RecordId::new_v7(at(7)),
            user_id: rep.id,
            started_at_ms: 5_000,
            at: LatLon {
                lat: 31.230_416_7,
                lon: 121.473_701,
            },
        })
    })
    .unwrap();
    (rep.id, dev.id, cust)
}

/// Everything a running server reads, as one comparable value.
fn snapshot(s: &dyn Store, rep: UserId, dev: DeviceId, cust: RecordId) -> String {
    read(s, |tx| -> Result<String, StoreError> {
        let all = ScopeFilter {
            all: true,
            ..ScopeFilter::default()
        };
        Ok(format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            tx.meta("server_clock")?,
            tx.head_seq()?,
            tx.users()?,
            tx.teams()?,
            tx.device_by_token(&[0, 159, 255, 7])?,
            tx.login_failures("ann", "10.0.0.1", 0)?,
            tx.dashboard_session(&[1, 2, 3])?,
            tx.changes(&all, 0, 100, 100)?,
            tx.customer_owner(cust)?,
            tx.op(dev, 1)?,
            tx.problems(Some(&[rep]), false)?,
            tx.conflicts(cust)?,
            tx.previous_check_in(rep, 10_000, RecordId::new_v7(at(99)))?,
        ))
    })
    .unwrap()
}

#[test]
fn a_sqlite_server_is_copied_verified_and_reads_the_same_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.db");
    let sqlite = SqliteStore::open(&path).unwrap();
    let (rep, dev, cust) = fill(&sqlite);
    let want = snapshot(&sqlite, rep, dev, cust);
    drop(sqlite);
    let before = std::fs::read(&path).unwrap();

    let first = TempDatabase::new();
    let report = migrate_store(
        &Source::parse(&dir.path().display().to_string()),
        &first.url(),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the source is untouched"
    );
    let rows: Vec<(&str, u64)> = report.iter().map(|t| (t.table, t.rows)).collect();
    assert!(
        rows.contains(&("problems", 2)) && rows.contains(&("users", 2)),
        "{rows:?}"
    );
    assert!(
        report.iter().all(|t| t.rows > 0),
        "every table has a row: {rows:?}"
    );

    let pg = PostgresStore::open(&first.url()).unwrap();
    assert_eq!(snapshot(&pg, rep, dev, cust), want);
    // Numbers continue after the copied ones.
    assert_eq!(write(&pg, |tx| tx.next_seq()).unwrap(), 3);
    let id = write(&pg, |tx| {
        tx.add_problem(&ProblemRow {
            id: 0,
            user_id: rep,
            device_id: dev,
            op: "{}".into(),
            code: "c".into(),
            message: "m".into(),
            field: None,
            created_at: "x".into(),
            op_id: OpId::new_v7(at(6)),
            decision: None,
        })
    })
    .unwrap();
    assert_eq!(id, 3);

    // Copying into a database that holds data is refused, and changes nothing.
    let again = migrate_store(&Source::Sqlite(path.clone()), &first.url()).unwrap_err();
    assert!(
        matches!(again, MigrateError::TargetNotEmpty { .. }),
        "{again}"
    );
    assert_eq!(read(&pg, |tx| tx.head_seq()).unwrap(), 3);

    // PostgreSQL to PostgreSQL gives the same checksums for unchanged tables.
    let second = TempDatabase::new();
    let copy = migrate_store(&Source::parse(&first.url()), &second.url()).unwrap();
    let sum =
        |r: &[TableReport], t: &str| r.iter().find(|x| x.table == t).map(|x| x.checksum.clone());
    for t in [
        "users",
        "devices",
        "records",
        "ops",
        "conflicts",
        "check_ins",
    ] {
        assert_eq!(sum(&copy, t), sum(&report, t), "{t}");
    }
    assert_ne!(sum(&copy, "problems"), sum(&report, "problems"));
    assert!(matches!(
        migrate_store(&Source::parse(&first.url()), &first.url()),
        Err(MigrateError::SameDatabase)
    ));
}

#[test]
fn a_missing_source_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = TempDatabase::new();
    let missing = dir.path().join("nope.db");
    let err = migrate_store(&Source::Sqlite(missing.clone()), &target.url()).unwrap_err();
    assert!(matches!(err, MigrateError::SourceMissing(_)), "{err}");
    assert!(!missing.exists());
}
