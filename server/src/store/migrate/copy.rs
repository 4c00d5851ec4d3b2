//! Reading rows from either store, checksumming them, and inserting them in chunks.

use super::MigrateError;
use super::tables::Kind::{Bool, Bytes, Int, Real, Text};
use super::tables::{Kind, Table};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use sha2::Digest;
use sha2::Sha256;
use std::fmt::Write as _;

/// Rows per INSERT statement.
pub(super) const CHUNK: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Val {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
    Real(f64),
}

impl Val {
    pub(super) fn hash_into(&self, h: &mut Sha256) {
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
    pub(super) fn as_sql(&self, kind: Kind) -> &(dyn ToSql + Sync) {
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
pub(super) struct Summer {
    pub(super) rows: u64,
    pub(super) hash: Sha256,
}

impl Summer {
    pub(super) fn new() -> Self {
        Self {
            rows: 0,
            hash: Sha256::new(),
        }
    }

    pub(super) fn add(&mut self, row: &[Val]) {
        self.rows += 1;
        for v in row {
            v.hash_into(&mut self.hash);
        }
        self.hash.update(b"\n");
    }

    pub(super) fn finish(self) -> (u64, String) {
        let mut hex = String::with_capacity(64);
        for b in self.hash.finalize() {
            let _ = write!(hex, "{b:02x}");
        }
        (self.rows, hex)
    }
}

pub(super) fn sqlite_rows(
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

pub(super) fn pg_rows(
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

pub(super) fn pg_type(k: Kind) -> &'static str {
    match k {
        Text => "text",
        Int => "bigint",
        Bool => "boolean",
        Bytes => "bytea",
        Real => "float8",
    }
}

/// Insert `rows` into `t` with one statement.
pub(super) fn insert_chunk(
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

pub(super) type RowSource<'a> = dyn FnMut(&mut dyn FnMut(Vec<Val>) -> Result<(), MigrateError>) -> Result<(), MigrateError>
    + 'a;

/// Stream one table from the source into the target; returns the source's count and checksum.
pub(super) fn copy_table(
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
