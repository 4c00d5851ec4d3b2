//! The statement cache, [`Cols`] for SQLite's rows (the decoders are
//! shared with PostgreSQL, `store::decode`), and small SQL helpers.

use crate::store::StoreError;
use crate::store::decode::{Cols, bad_column};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};

/// Running statements through the connection's statement cache.
pub(super) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize>;
    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T>;
    /// The first row of `sql`, decoded by `f` (`None` when there is none).
    fn decode_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError>;
    /// Every row of `sql`, decoded by `f`.
    fn decode_all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    fn row<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(
        &self,
        sql: &str,
        p: P,
        f: F,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }

    fn decode_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut st = self.prepare_cached(sql)?;
        let mut rows = st.query(p)?;
        rows.next()?.map(f).transpose()
    }

    fn decode_all<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
        f: impl Fn(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut st = self.prepare_cached(sql)?;
        let mut rows = st.query(p)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(f(r)?);
        }
        Ok(out)
    }
}

pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// SQLite's dynamic types as the shared decoders read them: booleans are
/// stored as integers, and a REAL column may hand back an integer.
impl Cols for Row<'_> {
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self.get_ref(i).map_err(|e| bad_column(i, e))? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Some)
                .map_err(|e| bad_column(i, e)),
            v => Err(bad_column(i, format!("not text: {:?}", v.data_type()))),
        }
    }
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.get(i).map_err(|e| bad_column(i, e))
    }
    fn float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.get(i).map_err(|e| bad_column(i, e))
    }
    fn flag(&self, i: usize) -> Result<Option<bool>, StoreError> {
        self.get(i).map_err(|e| bad_column(i, e))
    }
    fn bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        match self.get_ref(i).map_err(|e| bad_column(i, e))? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b)),
            v => Err(bad_column(i, format!("not a blob: {:?}", v.data_type()))),
        }
    }
}
