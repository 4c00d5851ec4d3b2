//! Column access shared by the driver's binary rows and the text rows of a
//! simple query (a transaction's first round trip, `opening.rs`), so each
//! row shape is read by one function whichever way it arrived.

use crate::store::StoreError;
use postgres::{Row, SimpleQueryRow};

/// The columns of one row, by position.
pub trait Cols {
    /// A text column (`None`: NULL).
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError>;
    /// A `BIGINT` column.
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    /// A `DOUBLE PRECISION` column.
    fn float(&self, i: usize) -> Result<Option<f64>, StoreError>;
    /// A `BOOLEAN` column.
    fn flag(&self, i: usize) -> Result<Option<bool>, StoreError>;

    /// A text column that may not be NULL.
    fn string(&self, i: usize) -> Result<String, StoreError> {
        self.text(i).and_then(|v| present(v, i)).map(str::to_owned)
    }
    /// A text column that may be NULL.
    fn opt_string(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.text(i)?.map(str::to_owned))
    }
    /// A `BIGINT` column that may not be NULL.
    fn i64(&self, i: usize) -> Result<i64, StoreError> {
        self.int(i).and_then(|v| present(v, i))
    }
    /// A `DOUBLE PRECISION` column that may not be NULL.
    fn f64(&self, i: usize) -> Result<f64, StoreError> {
        self.float(i).and_then(|v| present(v, i))
    }
    /// A `BOOLEAN` column that may not be NULL.
    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        self.flag(i).and_then(|v| present(v, i))
    }
}

fn present<T>(v: Option<T>, i: usize) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
}

fn column(i: usize, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("column {i}: {e}"))
}

impl Cols for Row {
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.try_get(i).map_err(|e| column(i, e))
    }
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.try_get(i).map_err(|e| column(i, e))
    }
    fn float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.try_get(i).map_err(|e| column(i, e))
    }
    fn flag(&self, i: usize) -> Result<Option<bool>, StoreError> {
        self.try_get(i).map_err(|e| column(i, e))
    }
}

/// Text-format values as PostgreSQL writes them.
impl Cols for SimpleQueryRow {
    fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        self.try_get(i).map_err(|e| column(i, e))
    }
    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        self.text(i)?
            .map(|s| s.parse().map_err(|e| column(i, format!("{e}: {s:?}"))))
            .transpose()
    }
    fn float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        // Since PostgreSQL 12 a float8 is written in the shortest form
        // that reads back exactly (`extra_float_digits` 1, the default).
        self.text(i)?
            .map(|s| s.parse().map_err(|e| column(i, format!("{e}: {s:?}"))))
            .transpose()
    }
    fn flag(&self, i: usize) -> Result<Option<bool>, StoreError> {
        self.text(i)?
            .map(|s| match s {
                "t" => Ok(true),
                "f" => Ok(false),
                _ => Err(column(i, format!("not a boolean: {s:?}"))),
            })
            .transpose()
    }
}
