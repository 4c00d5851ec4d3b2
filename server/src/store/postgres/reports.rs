//! Reads for reports (records in scope, report facts) and the report fact writes.

use super::Tx;
use super::read::scope_cond;
use super::rows::{col, ids};
use crate::store::{ReportRead, ReportWrite, ScopeFilter, StoreError};
use postgres::types::ToSql;
use sync_protocol::RecordId;
use sync_protocol::metrics::RecordFact;

impl ReportRead for Tx<'_> {
    fn scope_records(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
            scope_cond(scope, 1, 2)
        );
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![]
        } else {
            vec![&users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let c: &str = col(&r, 0)?;
            let st: &str = col(&r, 1)?;
            f(c, st);
        }
        Ok(())
    }

    fn scope_records_of(
        &mut self,
        scope: &ScopeFilter,
        collections: &[&str],
        f: &mut dyn FnMut(&str, &str),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let wanted: Vec<String> = collections.iter().map(|c| (*c).to_owned()).collect();
        let sql = format!(
            "SELECT r.collection, r.state FROM records r LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE r.collection = ANY($1) AND {}",
            scope_cond(scope, 2, 3)
        );
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![&wanted]
        } else {
            vec![&wanted, &users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let c: &str = col(&r, 0)?;
            let st: &str = col(&r, 1)?;
            f(c, st);
        }
        Ok(())
    }

    fn report_customers(
        &mut self,
        scope: &ScopeFilter,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        self.flush()?;
        let users = ids(&scope.users);
        let teams = ids(&scope.teams);
        let sql = if scope.all {
            "SELECT customer_id, owner_id, created_us FROM report_customers".to_owned()
        } else {
            format!(
                "SELECT c.customer_id, c.owner_id, c.created_us FROM report_customers c JOIN records r ON r.id = c.customer_id \
                 LEFT JOIN customer_owners o ON o.customer_id = r.customer_id WHERE {}",
                scope_cond(scope, 1, 2)
            )
        };
        let s = self.statement(&sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = if scope.all {
            vec![]
        } else {
            vec![&users, &teams]
        };
        let mut rows = self.t.query_raw(&s, args)?;
        while let Some(r) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            let (id, fact) = crate::store::facts::customer_row(&r)?;
            f(id, fact);
        }
        Ok(())
    }

    fn report_facts(
        &mut self,
        from_us: i64,
        to_us: i64,
        part: crate::store::facts::FactPart,
        f: &mut dyn FnMut(RecordId, RecordFact),
    ) -> Result<(), StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        self.flush()?;
        for (sql, a, b, visits) in part.queries(from_us, to_us) {
            let s = self.statement(sql)?;
            let args: Vec<&(dyn ToSql + Sync)> = vec![&a, &b];
            let mut rows = self.t.query_raw(&s, args)?;
            while let Some(r) = rows.next()? {
                let (record, cols) = crate::store::facts::fact_row(&r, visits)?;
                f(record, cols.to_fact(record)?);
            }
        }
        Ok(())
    }
}

impl ReportWrite for Tx<'_> {
    fn put_report_fact(
        &mut self,
        id: RecordId,
        customer: bool,
        row: Option<&crate::store::facts::FactRow>,
    ) -> Result<(), StoreError> {
        self.behind_mut()?.put_fact(id, customer, row.cloned());
        self.flush_if_full()
    }

    fn clear_report_facts(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.exec("DELETE FROM report_customers", &[])?;
        self.exec("DELETE FROM report_facts", &[])?;
        Ok(())
    }
}
