//! The migration runner.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// One numbered schema change.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Version it brings the database to (1, 2, 3, ... with no gaps).
    pub version: u32,
    /// Short name, recorded with the version.
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// Why migrating failed. The database is left at the last fully applied version.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// The database was written by a newer binary.
    #[error(
        "the database is at schema version {db}, newer than this program knows ({known}); upgrade fieldsync instead of using an older version"
    )]
    TooNew {
        /// The database's version.
        db: u32,
        /// The newest version this binary has.
        known: u32,
    },
    /// The migration list itself is malformed (a programming error).
    #[error("migration list is not numbered 1, 2, 3, ...: found {found} at position {position}")]
    BadList {
        /// The version found.
        found: u32,
        /// Its position.
        position: usize,
    },
    /// A migration's SQL failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Failed {
        /// Which.
        version: u32,
        /// Its name.
        name: &'static str,
        /// The database error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing the version table failed.
    #[error("cannot read or record the schema version: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL migration's SQL failed.
    #[cfg(feature = "postgres")]
    #[error("migration {version} ({name}) failed")]
    PostgresFailed {
        /// Which.
        version: u32,
        /// Its name.
        name: &'static str,
        /// The database error.
        #[source]
        source: postgres::Error,
    },
    /// Reading or writing the PostgreSQL version table failed.
    #[cfg(feature = "postgres")]
    #[error("cannot read or record the schema version")]
    Postgres(#[from] postgres::Error),
    /// Another process held a lock the migration needed (the migration
    /// lock of another instance migrating, or a table lock) for longer
    /// than the deadline.
    #[cfg(feature = "postgres")]
    #[error(
        "gave up after {} s waiting for a lock held by another server instance (is one stuck migrating?)",
        waited.as_secs()
    )]
    LockTimeout {
        /// The deadline that passed.
        waited: std::time::Duration,
    },
}

/// What [`apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// Version before.
    pub from: u32,
    /// Version after.
    pub to: u32,
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";

/// Refuse a list not numbered 1, 2, 3, ...
pub(crate) fn check_list(list: &[Migration]) -> Result<(), MigrationError> {
    for (i, m) in list.iter().enumerate() {
        if m.version as usize != i + 1 {
            return Err(MigrationError::BadList {
                found: m.version,
                position: i,
            });
        }
    }
    Ok(())
}

/// The database's schema version (0 for a new database).
pub fn current_version(conn: &Connection) -> Result<u32, MigrationError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    let v: Option<i64> = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0) as u32)
}

/// Bring the database up to the newest version in `list`. Re-running is a
/// no-op; a database newer than `list` is refused untouched.
pub fn apply(conn: &mut Connection, list: &[Migration]) -> Result<Report, MigrationError> {
    check_list(list)?;
    let known = list.len() as u32;
    let from = current_version(conn)?;
    if from > known {
        return Err(MigrationError::TooNew { db: from, known });
    }
    for m in &list[from as usize..] {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(VERSION_TABLE)?;
        // Another process may have migrated while we waited for the lock.
        let now: Option<i64> =
            tx.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })?;
        if now.unwrap_or(0) as u32 >= m.version {
            continue;
        }
        tx.execute_batch(m.sql)
            .map_err(|source| MigrationError::Failed {
                version: m.version,
                name: m.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![m.version, m.name],
        )?;
        tx.commit()?;
    }
    Ok(Report {
        from,
        to: current_version(conn)?.max(from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CLIENT, SERVER_POSTGRES, SERVER_SQLITE};

    const TOY: &[Migration] = &[
        Migration {
            version: 1,
            name: "a",
            sql: "CREATE TABLE a (x INTEGER);",
        },
        Migration {
            version: 2,
            name: "b",
            sql: "ALTER TABLE a ADD COLUMN y TEXT;",
        },
        Migration {
            version: 3,
            name: "c",
            sql: "CREATE TABLE c (z INTEGER); INSERT INTO c VALUES (1);",
        },
    ];

    #[test]
    fn applies_every_real_migration_to_an_empty_database() {
        for list in [CLIENT, SERVER_SQLITE] {
            let mut c = Connection::open_in_memory().unwrap();
            let r = apply(&mut c, list).unwrap();
            assert_eq!(
                r,
                Report {
                    from: 0,
                    to: list.len() as u32
                }
            );
            assert_eq!(
                apply(&mut c, list).unwrap(),
                Report {
                    from: r.to,
                    to: r.to
                },
                "re-running is a no-op"
            );
        }
    }

    #[test]
    fn upgrades_a_database_created_at_every_earlier_version() {
        for list in [TOY, CLIENT, SERVER_SQLITE] {
            for start in 0..list.len() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("db.sqlite");
                let mut c = Connection::open(&path).unwrap();
                apply(&mut c, &list[..start]).unwrap();
                drop(c);
                let mut c = Connection::open(&path).unwrap();
                let r = apply(&mut c, list).unwrap();
                assert_eq!((r.from, r.to), (start as u32, list.len() as u32));
            }
        }
    }

    #[test]
    fn client_view_rows_without_pending_ops_give_up_their_copy_of_the_state() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, &CLIENT[..1]).unwrap();
        c.execute_batch(
            "INSERT INTO server_records VALUES ('a', 'customers', 'a', '{\"s\":1}');
             INSERT INTO records (id, collection, customer_id, name, pending, state)
               VALUES ('a', 'customers', 'a', 'Acme', 0, '{\"s\":1}'),
                      ('b', 'customers', 'b', 'Globex', 1, '{\"v\":2}');",
        )
        .unwrap();
        apply(&mut c, CLIENT).unwrap();
        let rows: Vec<(String, Option<String>, Option<String>)> = c
            .prepare(
                "SELECT r.id, r.name, coalesce(r.state, s.state) FROM records r \
                 LEFT JOIN server_records s ON s.id = r.id ORDER BY r.id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("a".into(), Some("Acme".into()), Some("{\"s\":1}".into())),
                ("b".into(), Some("Globex".into()), Some("{\"v\":2}".into())),
            ]
        );
        let own: Option<String> = c
            .query_row("SELECT state FROM records WHERE id = 'a'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(own, None, "the synced record reads the server's copy");
        let refused = c.execute(
            "INSERT INTO records (id, collection, pending) VALUES ('c', 'customers', 1)",
            [],
        );
        assert!(refused.is_err(), "a pending record keeps its own state");
    }

    #[test]
    fn client_view_learns_open_visits_corrections_and_utc_instants() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, &CLIENT[..2]).unwrap();
        let visit = |ended: &str, extra: &str| {
            format!(
                r#"{{"collection":"visits","fields":{{"started_at":{{"value":"2026-11-02T09:00:00.000Z"}}{ended}{extra}}}}}"#
            )
        };
        let open = visit("", "");
        let ended = visit(r#","ended_at":{"value":"2026-11-02T10:00:00.000Z"}"#, "");
        let nulled = visit(r#","ended_at":{"value":null}"#, "");
        let fix = visit("", r#","amends":{"value":"v1"}"#);
        c.execute_batch(&format!(
            "INSERT INTO server_records VALUES ('v1', 'visits', 'c', '{open}'), ('v2', 'visits', 'c', '{ended}');
             INSERT INTO records (id, collection, customer_id, at, pending, state) VALUES
               ('v1', 'visits', 'c', '2026-11-02T09:00:00.000Z', 0, NULL),
               ('v2', 'visits', 'c', '2026-11-02T09:00:00.000Z', 0, NULL),
               ('v3', 'visits', 'c', '2026-11-02T09:00:00.000Z', 1, '{nulled}'),
               ('v4', 'visits', 'c', '2026-11-02T09:00:00.000Z', 1, '{fix}'),
               ('s1', 'sales', 'c', '2026-11-02T17:30:00+08:00', 1, '{{}}'),
               ('s2', 'sales', 'c', '2026-11-02', 1, '{{}}');"
        ))
        .unwrap();
        apply(&mut c, CLIENT).unwrap();
        let rows: Vec<(String, i64, Option<String>, String)> = c
            .prepare("SELECT id, open, amends, at FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let at = "2026-11-02T09:00:00.000Z".to_owned();
        assert_eq!(
            rows,
            [
                ("s1".into(), 0, None, "2026-11-02T09:30:00.000Z".into()),
                ("s2".into(), 0, None, "2026-11-02".into()),
                ("v1".into(), 1, None, at.clone()),
                ("v2".into(), 0, None, at.clone()),
                ("v3".into(), 1, None, at.clone()),
                ("v4".into(), 1, Some("v1".into()), at),
            ]
        );
    }

    #[test]
    fn client_view_learns_who_pulled_work_is_credited_to() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, &CLIENT[..6]).unwrap();
        let credited = r#"{"collection":"visits","fields":{"credited_to":{"value":"u1"}}}"#;
        let sale = r#"{"collection":"sales","fields":{"credited_to":{"value":"u2"}}}"#;
        let feedback = r#"{"collection":"feedback","fields":{"credited_to":{"value":"u3"}}}"#;
        c.execute_batch(&format!(
            "INSERT INTO server_records VALUES ('v1', 'visits', 'c', '{credited}'), ('f1', 'feedback', 'c', '{feedback}');
             INSERT INTO records (id, collection, customer_id, pending, state) VALUES
               ('v1', 'visits', 'c', 0, NULL),
               ('s1', 'sales', 'c', 1, '{sale}'),
               ('v2', 'visits', 'c', 1, '{{}}'),
               ('f1', 'feedback', 'c', 0, NULL);"
        ))
        .unwrap();
        apply(&mut c, CLIENT).unwrap();
        let rows: Vec<(String, Option<String>)> = c
            .prepare("SELECT id, credited_to FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("f1".into(), None),
                ("s1".into(), Some("u2".into())),
                ("v1".into(), Some("u1".into())),
                ("v2".into(), None),
            ]
        );
    }

    #[test]
    fn server_problems_written_before_decisions_learn_their_op_ids() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, &SERVER_SQLITE[..10]).unwrap();
        c.execute_batch(
            "INSERT INTO problems (user_id, device_id, op, code, message, created_at) \
               VALUES ('u', 'd', '{\"op_id\":\"0193a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b\",\"x\":1}', 'out_of_scope', 'm', 't');",
        )
        .unwrap();
        apply(&mut c, SERVER_SQLITE).unwrap();
        let (op_id, decision): (Option<String>, Option<String>) = c
            .query_row("SELECT op_id, decision FROM problems", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (op_id.as_deref(), decision),
            (Some("0193a1b2-c3d4-7e8f-9a0b-1c2d3e4f5a6b"), None),
            "an old problem can be asked about by its op id, and is undecided"
        );
    }

    #[test]
    fn refuses_a_newer_database_without_touching_it() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c, TOY).unwrap();
        let err = apply(&mut c, &TOY[..2]).unwrap_err();
        assert!(
            matches!(err, MigrationError::TooNew { db: 3, known: 2 }),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this program knows"));
        let n: i64 = c
            .query_row("SELECT count(*) FROM c", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let bad = [
            TOY[0],
            Migration {
                version: 2,
                name: "broken",
                sql: "CREATE TABLE q (x); SELECT nonsense FROM nowhere;",
            },
        ];
        let mut c = Connection::open_in_memory().unwrap();
        let err = apply(&mut c, &bad).unwrap_err();
        assert!(matches!(err, MigrationError::Failed { version: 2, .. }));
        assert_eq!(current_version(&c).unwrap(), 1);
        let q: Option<i64> = c
            .query_row("SELECT 1 FROM sqlite_master WHERE name = 'q'", [], |r| {
                r.get(0)
            })
            .optional()
            .unwrap();
        assert!(q.is_none(), "half-applied migration must roll back");
    }

    #[test]
    fn the_postgres_list_is_numbered_and_mirrors_the_sqlite_tables() {
        check_list(SERVER_POSTGRES).unwrap();
        assert_eq!(SERVER_POSTGRES.len(), SERVER_SQLITE.len());
        let tables = |sql: &str| -> Vec<String> {
            sql.lines()
                .filter_map(|l| l.strip_prefix("CREATE TABLE "))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect()
        };
        for (p, s) in SERVER_POSTGRES.iter().zip(SERVER_SQLITE) {
            assert_eq!(tables(p.sql), tables(s.sql), "migration {}", p.version);
        }
    }

    #[test]
    fn rejects_a_misnumbered_list() {
        let bad = [TOY[1]];
        let mut c = Connection::open_in_memory().unwrap();
        assert!(matches!(
            apply(&mut c, &bad),
            Err(MigrationError::BadList { .. })
        ));
    }
}
