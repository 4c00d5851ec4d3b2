//! `fieldsync-server migrate-store`: copy a server's whole state (users,
//! devices and their token hashes, records with their change numbers, the op
//! log, problems, conflicts, evictions, check-ins, login failures and the
//! server's own identity and clock) from a SQLite file (or another
//! PostgreSQL database) into an empty PostgreSQL database.
//!
//! The source is read in one read-only snapshot and never written. The
//! target is filled in one transaction that holds the store's write lock;
//! before it commits, every table's row count and SHA-256 checksum (over
//! every column of every row, in primary-key order) are recomputed from the
//! target and compared with the source's. Any difference rolls everything
//! back, so the target is either a verified copy or still empty.

use super::postgres::{OpenError, WRITE_LOCK, connect, parse_url};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use rusqlite::OpenFlags;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why copying failed. The target is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The SQLite source does not exist.
    #[error("no SQLite database at {0}")]
    SourceMissing(PathBuf),
    /// The SQLite source could not be read.
    #[error("cannot read the SQLite source: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL database could not be read or written.
    #[error("PostgreSQL error")]
    Postgres(#[from] postgres::Error),
    /// The target could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading a schema version or migrating the target failed.
    #[error(transparent)]
    Migrate(#[from] migrations::MigrationError),
    /// The source's schema is not the one this binary writes.
    #[error(
        "the source is at schema version {found}, this program copies version {known}; run the matching fieldsync-server on it first"
    )]
    SourceSchema {
        /// The source's version.
        found: u32,
        /// This binary's.
        known: u32,
    },
    /// The target already holds data.
    #[error("the target database is not empty: table {table} has {rows} rows")]
    TargetNotEmpty {
        /// First non-empty table.
        table: &'static str,
        /// Its rows.
        rows: u64,
    },
    /// Source and target are the same database.
    #[error("the source and the target are the same database")]
    SameDatabase,
    /// The copy differs from the source (nothing was committed).
    #[error(
        "verification failed for table {table}: source {source_rows} rows ({source_sum}), target {target_rows} rows ({target_sum}); nothing was committed"
    )]
    Mismatch {
        /// Table.
        table: &'static str,
        /// Rows in the source.
        source_rows: u64,
        /// Rows in the target.
        target_rows: u64,
        /// Source checksum.
        source_sum: String,
        /// Target checksum.
        target_sum: String,
    },
}

/// Where to copy from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A SQLite `server.db` (or a data directory holding one).
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Source {
    /// `postgres://…`/`postgresql://…` is PostgreSQL; anything else is a
    /// path (a directory means its `server.db`).
    pub fn parse(s: &str) -> Self {
        if is_postgres_url(s) {
            return Source::Postgres(s.to_owned());
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            Source::Sqlite(p.join("server.db"))
        } else {
            Source::Sqlite(p)
        }
    }
}

/// Whether `s` is a PostgreSQL connection URL.
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// One table's verified copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableReport {
    /// Table.
    pub table: &'static str,
    /// Rows copied.
    pub rows: u64,
    /// SHA-256 (hex) over every row, equal in source and target.
    pub checksum: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Bool,
    Bytes,
    Real,
}

struct Table {
    name: &'static str,
    cols: &'static [(&'static str, Kind)],
    /// Primary-key columns, in order.
    key: &'static [&'static str],
}

use Kind::{Bool, Bytes, Int, Real, Text};

/// Every table, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "meta",
        cols: &[("key", Text), ("value", Text)],
        key: &["key"],
    },
    Table {
        name: "change_seq",
        cols: &[("id", Int), ("head", Int)],
        key: &["id"],
    },
    Table {
        name: "teams",
        cols: &[
            ("id", Text),
            ("name", Text),
            ("region", Text),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "users",
        cols: &[
            ("id", Text),
            ("username", Text),
            ("password_hash", Text),
            ("role", Text),
            ("team_id", Text),
            ("supervisor_id", Text),
            ("active", Bool),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "devices",
        cols: &[
            ("id", Text),
            ("user_id", Text),
            ("name", Text),
            ("token_hash", Bytes),
            ("created_at", Text),
            ("last_seen_at", Text),
            ("revoked_at", Text),
            ("logged_out_at", Text),
            ("acked_through", Int),
            ("clock_drift_ms", Int),
        ],
        key: &["id"],
    },
    Table {
        name: "login_failures",
        cols: &[
            ("id", Int),
            ("username", Text),
            ("address", Text),
            ("at_ms", Int),
        ],
        key: &["id"],
    },
    Table {
        name: "dashboard_sessions",
        cols: &[
            ("id_hash", Bytes),
            ("user_id", Text),
            ("expires_at_ms", Int),
        ],
        key: &["id_hash"],
    },
    Table {
        name: "records",
        cols: &[
            ("id", Text),
            ("collection", Text),
            ("seq", Int),
            ("state", Text),
            ("customer_id", Text),
            ("subject_user", Text),
            ("subject_team", Text),
            ("public", Bool),
        ],
        key: &["id"],
    },
    Table {
        name: "customer_owners",
        cols: &[("customer_id", Text), ("owner_id", Text)],
        key: &["customer_id"],
    },
    Table {
        name: "evictions",
        cols: &[
            ("seq", Int),
            ("customer_id", Text),
            ("from_owner", Text),
            ("to_owner", Text),
            ("at", Text),
        ],
        key: &["seq"],
    },
    Table {
        name: "ops",
        cols: &[
            ("device_id", Text),
            ("device_seq", Int),
            ("op_id", Text),
            ("user_id", Text),
            ("op", Text),
            ("outcome", Text),
            ("at", Text),
        ],
        key: &["device_id", "device_seq"],
    },
    Table {
        name: "problems",
        cols: &[
            ("id", Int),
            ("user_id", Text),
            ("device_id", Text),
            ("op", Text),
            ("code", Text),
            ("message", Text),
            ("field", Text),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "conflicts",
        cols: &[
            ("id", Int),
            ("record_id", Text),
            ("collection", Text),
            ("op_id", Text),
            ("user_id", Text),
            ("field", Text),
            ("losing_value", Text),
            ("winning_value", Text),
            ("losing_hlc", Text),
            ("winning_hlc", Text),
            ("created_at", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "check_ins",
        cols: &[
            ("visit_id", Text),
            ("user_id", Text),
            ("started_at_ms", Int),
            ("lat", Real),
            ("lon", Real),
        ],
        key: &["visit_id"],
    },
    Table {
        name: "report_customers",
        cols: &[
            ("customer_id", Text),
            ("owner_id", Text),
            ("created_us", Int),
        ],
        key: &["customer_id"],
    },
    Table {
        name: "report_facts",
        cols: &[
            ("record_id", Bytes),
            ("kind", Text),
            ("at_us", Int),
            ("customer_id", Bytes),
            ("amends", Bytes),
            ("minor", Int),
            ("minor_digits", Int),
            ("voided", Int),
            ("feedback_kind", Text),
            ("csat", Int),
            ("nps", Int),
            ("resolved_us", Int),
        ],
        key: &["record_id"],
    },
];

/// Tables whose `id` is a PostgreSQL serial that must continue after the copy.
const SERIALS: &[&str] = &["login_failures", "problems", "conflicts"];

/// Rows per INSERT statement.
const CHUNK: usize = 500;

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
    Real(f64),
}

impl Val {
    fn hash_into(&self, h: &mut Sha256) {
        match self {
            Val::Null => h.update(b"n;"),
            Val::Text(s) => {
                h.update(format!("t{}:", s.len()).as_bytes());
                h.update(s.as_bytes());
            }
            Val::Int(i) => h.update(format!("i{i};").as_bytes()),
            Val::Bool(b) => h.update(if *b { b"b1;" } else { b"b0;" }),
            Val::Bytes(b) => {
                h.update(format!("x{}:", b.len()).as_bytes());
                h.update(b);
            }
            Val::Real(f) => h.update(format!("r{:016x};", f.to_bits()).as_bytes()),
        }
    }

    /// The value as a parameter; a NULL is typed by its column's kind.
    fn as_sql(&self, kind: Kind) -> &(dyn ToSql + Sync) {
        match self {
            Val::Null => match kind {
                Text => &None::<String>,
                Int => &None::<i64>,
                Bool => &None::<bool>,
                Bytes => &None::<Vec<u8>>,
                Real => &None::<f64>,
            },
            Val::Text(s) => s,
            Val::Int(i) => i,
            Val::Bool(b) => b,
            Val::Bytes(b) => b,
            Val::Real(f) => f,
        }
    }
}

/// Running count and checksum of one table.
struct Summer {
    rows: u64,
    hash: Sha256,
}

impl Summer {
    fn new() -> Self {
        Self {
            rows: 0,
            hash: Sha256::new(),
        }
    }

    fn add(&mut self, row: &[Val]) {
        self.rows += 1;
        for v in row {
            v.hash_into(&mut self.hash);
        }
        self.hash.update(b"\n");
    }

    fn finish(self) -> (u64, String) {
        let mut hex = String::with_capacity(64);
        for b in self.hash.finalize() {
            let _ = write!(hex, "{b:02x}");
        }
        (self.rows, hex)
    }
}

fn sqlite_rows(
    c: &rusqlite::Connection,
    t: &Table,
    f: &mut dyn FnMut(Vec<Val>) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let cols: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        t.key.join(", ")
    );
    let mut st = c.prepare(&sql)?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let mut out = Vec::with_capacity(t.cols.len());
        for (i, (_, kind)) in t.cols.iter().enumerate() {
            out.push(match kind {
                Text => r.get::<_, Option<String>>(i)?.map_or(Val::Null, Val::Text),
                Int => r.get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int),
                Bool => r
                    .get::<_, Option<i64>>(i)?
                    .map_or(Val::Null, |b| Val::Bool(b != 0)),
                Bytes => r
                    .get::<_, Option<Vec<u8>>>(i)?
                    .map_or(Val::Null, Val::Bytes),
                Real => r.get::<_, Option<f64>>(i)?.map_or(Val::Null, Val::Real),
            });
        }
        f(out)?;
    }
    Ok(())
}

fn pg_rows(
    c: &mut impl postgres::GenericClient,
    t: &Table,
    f: &mut dyn FnMut(Vec<Val>) -> Result<(), MigrateError>,
) -> Result<(), MigrateError> {
    let cols: Vec<String> = t
        .cols
        .iter()
        .map(|(c, k)| match k {
            Int => format!("{c}::bigint"),
            _ => (*c).to_owned(),
        })
        .collect();
    let key: Vec<String> = t
        .key
        .iter()
        .map(|k| {
            let text = t.cols.iter().any(|(c, kind)| c == k && *kind == Text);
            if text {
                format!("{k} COLLATE \"C\"")
            } else {
                (*k).to_owned()
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        key.join(", ")
    );
    let mut rows = c.query_raw(sql.as_str(), std::iter::empty::<&(dyn ToSql + Sync)>())?;
    while let Some(r) = rows.next()? {
        let mut out = Vec::with_capacity(t.cols.len());
        for (i, (_, kind)) in t.cols.iter().enumerate() {
            out.push(match kind {
                Text => r
                    .try_get::<_, Option<String>>(i)?
                    .map_or(Val::Null, Val::Text),
                Int => r.try_get::<_, Option<i64>>(i)?.map_or(Val::Null, Val::Int),
                Bool => r
                    .try_get::<_, Option<bool>>(i)?
                    .map_or(Val::Null, Val::Bool),
                Bytes => r
                    .try_get::<_, Option<Vec<u8>>>(i)?
                    .map_or(Val::Null, Val::Bytes),
                Real => r.try_get::<_, Option<f64>>(i)?.map_or(Val::Null, Val::Real),
            });
        }
        f(out)?;
    }
    Ok(())
}

fn pg_type(k: Kind) -> &'static str {
    match k {
        Text => "text",
        Int => "bigint",
        Bool => "boolean",
        Bytes => "bytea",
        Real => "float8",
    }
}

/// Insert `rows` into `t` with one statement.
fn insert_chunk(
    tx: &mut postgres::Transaction<'_>,
    t: &Table,
    rows: &[Vec<Val>],
) -> Result<(), MigrateError> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", t.name, cols.join(", "));
    let mut n = 0;
    for (ri, _) in rows.iter().enumerate() {
        if ri > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (ci, (_, k)) in t.cols.iter().enumerate() {
            n += 1;
            if ci > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${n}::{}", pg_type(*k));
        }
        sql.push(')');
    }
    let args: Vec<&(dyn ToSql + Sync)> = rows
        .iter()
        .flat_map(|row| row.iter().zip(t.cols).map(|(v, (_, k))| v.as_sql(*k)))
        .collect();
    tx.execute(sql.as_str(), &args)?;
    Ok(())
}

/// A source opened for one consistent read.
enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

/// Copy everything from `from` into the empty PostgreSQL database at `to`
/// (migrating it first), verify, and commit. Returns one line per table.
pub fn migrate_store(from: &Source, to: &str) -> Result<Vec<TableReport>, MigrateError> {
    let target_config = parse_url(to)?;
    let mut reader = match from {
        Source::Sqlite(path) => {
            if !path.is_file() {
                return Err(MigrateError::SourceMissing(path.clone()));
            }
            let c = rusqlite::Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            let found = migrations::current_version(&c)?;
            let known = migrations::SERVER_SQLITE.len() as u32;
            if found != known {
                return Err(MigrateError::SourceSchema { found, known });
            }
            Reader::Sqlite(c)
        }
        Source::Postgres(url) => {
            let config = parse_url(url)?;
            if super::postgres::describe(&config) == super::postgres::describe(&target_config) {
                return Err(MigrateError::SameDatabase);
            }
            let mut c = connect(&config)?;
            let found = migrations::current_version_postgres(&mut c)?;
            let known = migrations::SERVER_POSTGRES.len() as u32;
            if found != known {
                return Err(MigrateError::SourceSchema { found, known });
            }
            Reader::Postgres(c)
        }
    };

    let mut target = connect(&target_config)?;
    migrations::apply_postgres(&mut target, migrations::SERVER_POSTGRES)?;
    let mut tx = target.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    check_empty(&mut tx)?;
    tx.execute("DELETE FROM change_seq", &[])?;

    // One snapshot of the source for the whole copy.
    let mut source_sums = Vec::with_capacity(TABLES.len());
    match &mut reader {
        Reader::Sqlite(c) => {
            let snapshot = c.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            for t in TABLES {
                source_sums.push(copy_table(t, &mut tx, &mut |f| {
                    sqlite_rows(&snapshot, t, f)
                })?);
            }
            snapshot.finish()?;
        }
        Reader::Postgres(c) => {
            let mut snapshot = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            for t in TABLES {
                source_sums.push(copy_table(t, &mut tx, &mut |f| {
                    pg_rows(&mut snapshot, t, f)
                })?);
            }
            snapshot.commit()?;
        }
    }

    for table in SERIALS {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
            ),
            &[],
        )?;
    }

    let mut report = Vec::with_capacity(TABLES.len());
    for (t, (source_rows, source_sum)) in TABLES.iter().zip(source_sums) {
        let mut sum = Summer::new();
        pg_rows(&mut tx, t, &mut |row| {
            sum.add(&row);
            Ok(())
        })?;
        let (target_rows, target_sum) = sum.finish();
        if target_rows != source_rows || target_sum != source_sum {
            return Err(MigrateError::Mismatch {
                table: t.name,
                source_rows,
                target_rows,
                source_sum,
                target_sum,
            });
        }
        report.push(TableReport {
            table: t.name,
            rows: target_rows,
            checksum: target_sum,
        });
    }
    tx.commit()?;
    // Planner statistics for the freshly loaded tables, instead of waiting
    // for autovacuum: with none, a pull's plan scans a customer's whole
    // history instead of stopping at a page.
    target.batch_execute("ANALYZE")?;
    Ok(report)
}

type RowSource<'a> = dyn FnMut(&mut dyn FnMut(Vec<Val>) -> Result<(), MigrateError>) -> Result<(), MigrateError>
    + 'a;

/// Stream one table from the source into the target; returns the source's count and checksum.
fn copy_table(
    t: &Table,
    tx: &mut postgres::Transaction<'_>,
    rows: &mut RowSource<'_>,
) -> Result<(u64, String), MigrateError> {
    let mut sum = Summer::new();
    let mut chunk: Vec<Vec<Val>> = Vec::with_capacity(CHUNK);
    // A supervisor may sort after the users it supervises: insert users
    // without supervisors first, then set them.
    let supervisor = (t.name == "users").then(|| {
        t.cols
            .iter()
            .position(|(c, _)| *c == "supervisor_id")
            .unwrap_or(0)
    });
    let mut supervisors: Vec<(Val, Val)> = Vec::new();
    rows(&mut |mut row| {
        sum.add(&row);
        if let Some(i) = supervisor
            && row[i] != Val::Null
        {
            supervisors.push((row[0].clone(), std::mem::replace(&mut row[i], Val::Null)));
        }
        chunk.push(row);
        if chunk.len() == CHUNK {
            insert_chunk(tx, t, &chunk)?;
            chunk.clear();
        }
        Ok(())
    })?;
    insert_chunk(tx, t, &chunk)?;
    for (id, sup) in &supervisors {
        tx.execute(
            "UPDATE users SET supervisor_id = $2::text WHERE id = $1::text",
            &[id.as_sql(Text), sup.as_sql(Text)],
        )?;
    }
    Ok(sum.finish())
}

fn check_empty(tx: &mut postgres::Transaction<'_>) -> Result<(), MigrateError> {
    for t in TABLES {
        let rows: i64 = if t.name == "change_seq" {
            tx.query_one("SELECT coalesce(max(head), 0) FROM change_seq", &[])?
                .get(0)
        } else {
            tx.query_one(&format!("SELECT count(*) FROM {}", t.name), &[])?
                .get(0)
        };
        if rows != 0 {
            return Err(MigrateError::TargetNotEmpty {
                table: t.name,
                rows: rows as u64,
            });
        }
    }
    Ok(())
}

/// Render a report as the lines `migrate-store` prints.
pub fn render(report: &[TableReport]) -> String {
    let mut out = String::new();
    for t in report {
        let _ = writeln!(out, "{:<16} {:>10}  sha256:{}", t.table, t.rows, t.checksum);
    }
    out
}

/// The SQLite database file of a data directory or path.
pub fn sqlite_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("server.db")
    } else {
        p.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::{PostgresStore, testing::TempDatabase};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{
        CheckIn, ConflictRow, DeviceRow, OpRow, ProblemRow, RecordRow, RecordScope, ScopeFilter,
        Store, StoreError, TeamRow, UserRow, read, write,
    };
    use sync_protocol::geo::LatLon;
    use sync_protocol::schema::Role;
    use sync_protocol::{DeviceId, OpId, RecordId, TeamId, UserId};

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
            tx.add_eviction(seq, cust, sup.id, rep.id, "2027-01-02T00:00:00.000Z")?;
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
                })?;
            }
            tx.add_conflict(&ConflictRow {
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
                tx.problems(Some(&[rep]))?,
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
        let sum = |r: &[TableReport], t: &str| {
            r.iter().find(|x| x.table == t).map(|x| x.checksum.clone())
        };
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
}
