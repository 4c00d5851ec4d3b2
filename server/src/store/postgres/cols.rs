//! [`Cols`] for the driver's binary rows and for the text rows of a simple
//! query (a transaction's first round trip, `opening.rs`), so each row
//! shape is read by one function whichever way it arrived.

use crate::store::StoreError;
use crate::store::decode::{Cols, bad_column as column};
use postgres::{Row, SimpleQueryRow};

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
    fn bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
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
    fn bytes(&self, i: usize) -> Result<Option<&[u8]>, StoreError> {
        // `bytea` arrives hex-encoded in text rows; no opening read asks for one.
        Err(column(i, "binary columns are not read from text rows"))
    }
}
