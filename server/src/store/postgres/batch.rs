//! Several data-modifying statements sent as one.
//!
//! A write transaction's flush used to send one statement per table, each
//! a round trip under the lock every writer waits for. A [`Batch`] sends
//! them together: `WITH w0 AS (…), w1 AS (…) SELECT 1`. Every part runs on
//! the statement's snapshot and no part sees another's rows, so the parts
//! must touch disjoint rows: the write-behind keeps one latest value per
//! key, and a table's removals and upserts take disjoint keys.

use postgres::types::ToSql;

/// One argument of a part.
pub type Arg<'a> = Box<dyn ToSql + Sync + 'a>;

/// Statements to send together, with their arguments.
#[derive(Default)]
pub struct Batch<'a> {
    parts: Vec<String>,
    args: Vec<Arg<'a>>,
}

impl<'a> Batch<'a> {
    /// Add a statement whose placeholders are numbered from `$1`.
    pub fn add(&mut self, sql: &str, args: Vec<Arg<'a>>) {
        self.parts.push(renumber(sql, self.args.len()));
        self.args.extend(args);
    }

    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The one statement.
    pub fn sql(&self) -> String {
        if let [only] = self.parts.as_slice() {
            return only.clone();
        }
        let parts: Vec<String> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("w{i} AS ({p})"))
            .collect();
        format!("WITH {} SELECT 1", parts.join(", "))
    }

    /// Its arguments, in placeholder order.
    pub fn args(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `sql` with every `$n` placeholder moved up by `by`.
fn renumber(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            out.push_str(&(n + by).to_string());
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_parts() {
        let mut b = Batch::default();
        b.add("UPDATE t SET a = $1 WHERE id = 1", vec![Box::new(1_i64)]);
        b.add(
            "INSERT INTO u SELECT * FROM unnest($1::text[], $2::bigint[])",
            vec![Box::new(vec!["x"]), Box::new(vec![2_i64])],
        );
        assert_eq!(
            b.sql(),
            "WITH w0 AS (UPDATE t SET a = $1 WHERE id = 1), \
             w1 AS (INSERT INTO u SELECT * FROM unnest($2::text[], $3::bigint[])) SELECT 1"
        );
        assert_eq!(b.args().len(), 3);
    }

    #[test]
    fn one_part_is_sent_as_it_is() {
        let mut b = Batch::default();
        assert!(b.is_empty());
        b.add(
            "DELETE FROM t WHERE id = ANY($1)",
            vec![Box::new(vec![1_i64])],
        );
        assert_eq!(b.sql(), "DELETE FROM t WHERE id = ANY($1)");
        assert_eq!(renumber("$1, $10, $2", 9), "$10, $19, $11");
    }
}
