//! CSV rendering of a report table: RFC 4180 (CRLF line ends, fields with
//! commas, quotes or line breaks quoted, quotes doubled), UTF-8.

use super::Table;
use serde_json::Value;

/// Render `table` (its totals row last, when it has one) as CSV.
pub fn render(table: &Table) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(&table.columns)?;
    for row in table.rows.iter().chain(table.totals.iter()) {
        w.write_record(row.iter().map(cell))?;
    }
    w.into_inner()
        .map_err(|e| ::csv::Error::from(e.into_error()))
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_commas_quotes_and_newlines_and_keeps_utf8() {
        let t = Table {
            name: "rows".into(),
            columns: vec!["rep".into(), "note".into(), "n".into()],
            rows: vec![vec![json!("张伟"), json!("a, \"b\"\nc"), json!(1.5)]],
            totals: Some(vec![json!("total"), Value::Null, json!(2)]),
        };
        let out = String::from_utf8(render(&t).unwrap()).unwrap();
        assert_eq!(
            out,
            "rep,note,n\r\n张伟,\"a, \"\"b\"\"\nc\",1.5\r\ntotal,,2\r\n"
        );
    }
}
