//! The migration runner for PostgreSQL: the same rules as [`crate::apply`]
//! (one transaction per migration, a version table, a newer database is
//! refused untouched), safe when several server instances start at once.

use crate::runner::{Migration, MigrationError, Report, check_list};
use postgres::error::SqlState;
use postgres::{Client, GenericClient};
use std::time::Duration;

/// Key of the transaction-scoped advisory lock that serialises migrations
/// between server instances starting at the same time.
const MIGRATION_LOCK: i64 = 0x6669_656c_6473_796e; // "fieldsyn"

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
)";

fn version_in(c: &mut impl GenericClient) -> Result<u32, MigrationError> {
    let exists = c
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> = c
        .query_one("SELECT max(version) FROM schema_migrations", &[])?
        .get(0);
    Ok(v.unwrap_or(0) as u32)
}

/// The database's schema version (0 for a new database).
pub fn current_version_postgres(c: &mut Client) -> Result<u32, MigrationError> {
    version_in(c)
}

/// How long a migration waits for a lock (the migration lock while
/// another instance migrates, or a table lock held by a running instance)
/// before giving up with [`MigrationError::LockTimeout`]. The slowest
/// migration measured takes seconds; one still holding its lock after
/// five minutes is stuck.
pub const MIGRATION_LOCK_WAIT: Duration = Duration::from_mins(5);

/// Bring a PostgreSQL database up to the newest version in `list`.
/// Re-running is a no-op; a database newer than `list` is refused untouched.
pub fn apply_postgres(c: &mut Client, list: &[Migration]) -> Result<Report, MigrationError> {
    apply_postgres_waiting(c, list, MIGRATION_LOCK_WAIT)
}

/// [`apply_postgres`] waiting at most `wait` for each lock.
pub fn apply_postgres_waiting(
    c: &mut Client,
    list: &[Migration],
    wait: Duration,
) -> Result<Report, MigrationError> {
    let lock_timeout = |e: postgres::Error| {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            MigrationError::LockTimeout { waited: wait }
        } else {
            MigrationError::Postgres(e)
        }
    };
    check_list(list)?;
    let known = list.len() as u32;
    let from = version_in(c)?;
    if from > known {
        return Err(MigrationError::TooNew { db: from, known });
    }
    for m in &list[from as usize..] {
        let mut tx = c.transaction()?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            wait.as_millis().max(1)
        ))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(lock_timeout)?;
        tx.batch_execute(VERSION_TABLE)?;
        // Another instance may have migrated while we waited for the lock.
        let now = version_in(&mut tx)?;
        if now > known {
            return Err(MigrationError::TooNew { db: now, known });
        }
        if now >= m.version {
            continue;
        }
        tx.batch_execute(m.sql).map_err(|source| {
            if source.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                return MigrationError::LockTimeout { waited: wait };
            }
            MigrationError::PostgresFailed {
                version: m.version,
                name: m.name,
                source,
            }
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&(m.version as i32), &m.name],
        )?;
        tx.commit()?;
    }
    Ok(Report {
        from,
        to: version_in(c)?.max(from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SERVER_POSTGRES;
    use postgres::NoTls;

    /// A uniquely named database, dropped at the end of the test.
    struct TempDb {
        admin: String,
        name: String,
    }

    impl TempDb {
        fn new(tag: &str) -> Self {
            let admin = std::env::var("FIELDSYNC_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("fs_mig_{tag}_{}", std::process::id());
            let mut c = Client::connect(&admin, NoTls).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            Self { admin, name }
        }

        fn client(&self) -> Client {
            let base = self.admin.rsplit_once('/').unwrap().0;
            Client::connect(&format!("{base}/{}", self.name), NoTls).unwrap()
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            if let Ok(mut c) = Client::connect(&self.admin, NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }

    const TOY: &[Migration] = &[
        Migration {
            version: 1,
            name: "a",
            sql: "CREATE TABLE a (x INTEGER);",
        },
        Migration {
            version: 2,
            name: "b",
            sql: "CREATE TABLE c (z INTEGER); INSERT INTO c VALUES (1);",
        },
    ];

    #[test]
    fn applies_the_server_schema_once_and_refuses_a_newer_database() {
        let db = TempDb::new("apply");
        let mut c = db.client();
        let r = apply_postgres(&mut c, SERVER_POSTGRES).unwrap();
        assert_eq!((r.from, r.to), (0, SERVER_POSTGRES.len() as u32));
        let again = apply_postgres(&mut c, SERVER_POSTGRES).unwrap();
        assert_eq!(
            (again.from, again.to),
            (r.to, r.to),
            "re-running is a no-op"
        );

        let toy = TempDb::new("newer");
        let mut c = toy.client();
        apply_postgres(&mut c, TOY).unwrap();
        let err = apply_postgres(&mut c, &TOY[..1]).unwrap_err();
        assert!(
            matches!(err, MigrationError::TooNew { db: 2, known: 1 }),
            "{err}"
        );
        let n: i64 = c.query_one("SELECT count(*) FROM c", &[]).unwrap().get(0);
        assert_eq!(n, 1, "a refused database is left untouched");
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let db = TempDb::new("fail");
        let mut c = db.client();
        let bad = [
            TOY[0],
            Migration {
                version: 2,
                name: "broken",
                sql: "CREATE TABLE q (x INTEGER); SELECT nonsense FROM nowhere;",
            },
        ];
        let err = apply_postgres(&mut c, &bad).unwrap_err();
        assert!(
            matches!(err, MigrationError::PostgresFailed { version: 2, .. }),
            "{err}"
        );
        assert_eq!(current_version_postgres(&mut c).unwrap(), 1);
        let q: bool = c
            .query_one("SELECT to_regclass('q') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        assert!(!q, "half-applied migration must roll back");
    }

    #[test]
    fn instances_starting_together_migrate_once() {
        let db = TempDb::new("race");
        let reports: Vec<Report> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| s.spawn(|| apply_postgres(&mut db.client(), SERVER_POSTGRES).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(reports.iter().all(|r| r.to == SERVER_POSTGRES.len() as u32));
        let n: i64 = db
            .client()
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, SERVER_POSTGRES.len() as i64);
    }

    /// An instance stuck while migrating (here: a connection holding the
    /// migration lock) makes the next one give up at its deadline with a
    /// clear error, migrating nothing; once the lock is free it migrates.
    #[test]
    fn a_migration_waits_for_another_instances_lock_only_until_its_deadline() {
        let db = TempDb::new("stuck");
        let mut stuck = db.client();
        stuck
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .unwrap();
        let wait = Duration::from_millis(300);
        let start = std::time::Instant::now();
        let err = apply_postgres_waiting(&mut db.client(), SERVER_POSTGRES, wait).unwrap_err();
        let waited = start.elapsed();
        assert!(matches!(err, MigrationError::LockTimeout { .. }), "{err}");
        assert!(err.to_string().contains("stuck migrating"), "{err}");
        assert!(
            waited >= wait && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert_eq!(current_version_postgres(&mut db.client()).unwrap(), 0);
        stuck
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .unwrap();
        let report = apply_postgres_waiting(&mut db.client(), SERVER_POSTGRES, wait).unwrap();
        assert_eq!(report.to, SERVER_POSTGRES.len() as u32);
    }
}
